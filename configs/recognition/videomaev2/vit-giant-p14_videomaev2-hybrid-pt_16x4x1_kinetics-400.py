# ViT-g/14 on Kinetics-400, direct fine-tuning (scripts/finetune/vit_g_k400_ft.sh;
# docs/classification.md#fine-tuning-recipe): 64 GPUs x 3, --lr 1e-3 (effective 7.5e-4), layer decay 0.9, drop path 0.2,
# wd 0.1, 30 epochs, checkpointing. Reported top-1: 87.2 (V2 paper; model zoo 87.2 / 97.4). The K710 route (88.4) is the
# chain *_kinetics-710.py -> *k710-ft*.
_base_ = ['vit-base-p16_videomaev2-hybrid-pt_16x4x1_kinetics-400.py']

model = dict(
    backbone=dict(arch='vit_giant', drop_path_rate=0.2, head_drop_rate=0.0, with_cp=True),
    pretrained='checkpoints/videomaev2/mae-g/vit_g_hybrid_pt_1200e.pth')
train_dataloader = dict(batch_size=3)
train_cfg = dict(max_epochs=30)
# lr = the official --lr 1e-3 (per 256 videos) x 192 / 256, for the script's 64 GPUs x 3 videos
# (base_batch_size). Another total batch keeps it unless tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=192)
optim_wrapper = dict(optimizer=dict(lr=7.5e-4, weight_decay=0.1), paramwise_cfg=dict(layer_decay_rate=0.9))
# warmup_lr / lr and min_lr / lr with the official defaults 1e-8 and 1e-6; 5 warmup epochs
# (docs/classification.md#fine-tuning-recipe).
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-8 / 1e-3, end_factor=1.0, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / 1e-3, by_epoch=True, begin=5, end=30, T_max=25,
         convert_to_iter_based=True),
]
