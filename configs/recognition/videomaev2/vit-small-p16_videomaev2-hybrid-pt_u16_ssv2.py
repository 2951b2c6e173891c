# ViT-S/16 on SSv2: no official ViT-S script exists; the ViT-B recipe on the output of our ViT-S pre-training config.
_base_ = ['vit-base-p16_videomaev2-hybrid-pt_u16_ssv2.py']

model = dict(
    backbone=dict(arch='vit_small', drop_path_rate=0.1, head_drop_rate=0.0, with_cp=False),
    pretrained='work_dirs/vit-small-p16_videomaev2-pt-200e_16x4x1_unlabeled-hybrid/epoch_200.pth')
train_dataloader = dict(batch_size=16)
train_cfg = dict(max_epochs=25)
# lr = the official --lr 2e-3 (per 256 videos) x 256 / 256, for the script's 16 GPUs x 16 videos, the ViT-B script
# (base_batch_size). Another total batch keeps it unless tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=256)
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.05), paramwise_cfg=dict(layer_decay_rate=0.65))
# warmup_lr / lr and min_lr / lr with the official defaults 1e-8 and 1e-6; 5 warmup epochs
# (docs/classification.md#fine-tuning-recipe).
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-8 / 2e-3, end_factor=1.0, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / 2e-3, by_epoch=True, begin=5, end=25, T_max=20,
         convert_to_iter_based=True),
]
