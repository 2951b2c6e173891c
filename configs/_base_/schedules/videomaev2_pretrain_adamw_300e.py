# The ViT-L/H/g schedule (OpenGVLab/VideoMAEv2: scripts/pretrain/vit_{l,h,g}_hybrid_pt.sh;
# docs/pretraining.md#recipe): 300 epochs (x 4 views = the paper's "1200 epochs") with 30 warmup epochs; everything
# else as the 200-epoch file.
_base_ = ['videomaev2_pretrain_adamw_200e.py']

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=300)

# Ratios as in the 200-epoch file: start_factor = warmup_lr / lr = 1e-6 / 1e-3,
# eta_min_ratio = min_lr / lr = 1e-5 / 1e-3.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=True, begin=0, end=30,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=True, begin=30, end=300, T_max=270,
         convert_to_iter_based=True),
]
