# ViT-S/16 (C = 384, 6 heads) on Kinetics-400. No official ViT-S fine-tuning script or pre-trained ViT-S exists (the
# released ViT-S is distilled from ViT-g, docs/checkpoints.md#released-files,
# docs/classification.md#reported-accuracies); this applies the ViT-B recipe to the output of our ViT-S pre-training
# config.
_base_ = ['vit-base-p16_videomaev2-hybrid-pt_16x4x1_kinetics-400.py']

model = dict(
    backbone=dict(arch='vit_small', drop_path_rate=0.1, head_drop_rate=0.0, with_cp=False),
    pretrained='work_dirs/vit-small-p16_videomaev2-pt-200e_16x4x1_unlabeled-hybrid/epoch_200.pth')
train_dataloader = dict(batch_size=16)
train_cfg = dict(max_epochs=90)
# lr = the official --lr 7e-4 (per 256 videos) x 512 / 256, for the script's 32 GPUs x 16 videos, the ViT-B script
# (base_batch_size). Another total batch keeps it unless tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=512)
optim_wrapper = dict(optimizer=dict(lr=1.4e-3, weight_decay=0.05), paramwise_cfg=dict(layer_decay_rate=0.75))
# warmup_lr / lr and min_lr / lr with the official defaults 1e-8 and 1e-6; 5 warmup epochs
# (docs/classification.md#fine-tuning-recipe).
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-8 / 7e-4, end_factor=1.0, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / 7e-4, by_epoch=True, begin=5, end=90, T_max=85,
         convert_to_iter_based=True),
]
