# ViT-H/16 on Kinetics-400 (scripts/finetune/vit_h_k400_ft.sh; docs/classification.md#fine-tuning-recipe): 32 GPUs x 4,
# --lr 1e-3 (effective 5e-4), layer decay 0.8, drop path 0.2, head dropout 0.5, 40 epochs, activation checkpointing.
# Reported top-1: 86.9.
_base_ = ['vit-base-p16_videomaev2-hybrid-pt_16x4x1_kinetics-400.py']

model = dict(
    backbone=dict(arch='vit_huge', drop_path_rate=0.2, head_drop_rate=0.5, with_cp=True),
    pretrained='checkpoints/videomaev2/mae-h/pytorch_model.bin')
train_dataloader = dict(batch_size=4)
train_cfg = dict(max_epochs=40)
# lr = the official --lr 1e-3 (per 256 videos) x 128 / 256, for the script's 32 GPUs x 4 videos
# (base_batch_size). Another total batch keeps it unless tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=128)
optim_wrapper = dict(optimizer=dict(lr=5e-4, weight_decay=0.05), paramwise_cfg=dict(layer_decay_rate=0.8))
# warmup_lr / lr and min_lr / lr with the official defaults 1e-8 and 1e-6; 5 warmup epochs
# (docs/classification.md#fine-tuning-recipe).
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-8 / 1e-3, end_factor=1.0, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / 1e-3, by_epoch=True, begin=5, end=40, T_max=35,
         convert_to_iter_based=True),
]
