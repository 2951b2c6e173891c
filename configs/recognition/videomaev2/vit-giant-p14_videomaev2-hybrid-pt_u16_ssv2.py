# ViT-g/14 on SSv2 (scripts/finetune/vit_g_ssv2_ft.sh; docs/classification.md#fine-tuning-recipe): 32 GPUs x 3,
# --lr 3e-4, layer decay 0.9, drop path 0.25, wd 0.05, 20 epochs, checkpointing. Reported top-1: 77.0 / top-5 95.9
# (V2 paper; model zoo). K710 post-pre-training hurt SSv2, so it starts from the pre-trained encoder.
_base_ = ['vit-base-p16_videomaev2-hybrid-pt_u16_ssv2.py']

model = dict(
    backbone=dict(arch='vit_giant', drop_path_rate=0.25, head_drop_rate=0.0, with_cp=True),
    pretrained='checkpoints/videomaev2/mae-g/vit_g_hybrid_pt_1200e.pth')
train_dataloader = dict(batch_size=3)
train_cfg = dict(max_epochs=20)
# lr = the official --lr 3e-4 (per 256 videos) x 96 / 256, for the script's 32 GPUs x 3 videos
# (base_batch_size). Another total batch keeps it unless tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=96)
optim_wrapper = dict(optimizer=dict(lr=1.125e-4, weight_decay=0.05), paramwise_cfg=dict(layer_decay_rate=0.9))
# warmup_lr / lr and min_lr / lr with the official defaults 1e-8 and 1e-6; 5 warmup epochs
# (docs/classification.md#fine-tuning-recipe).
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-8 / 3e-4, end_factor=1.0, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / 3e-4, by_epoch=True, begin=5, end=20, T_max=15,
         convert_to_iter_based=True),
]
