# VideoMAE V2 ViT-g/14 pre-training (OpenGVLab/VideoMAEv2: scripts/pretrain/vit_g_hybrid_pt.sh;
# docs/pretraining.md#encoder-and-decoder-sizes, docs/pretraining.md#recipe): C = 1408, 40 blocks, patch 14,
# decoder 512-d; 64 GPUs x 32 videos, --lr 6e-4 (effective 6e-4 x 2048 / 256 = 4.8e-3, the paper's
# 1.5e-4 x 8192 / 256 counting the 4 views), gradient clipping 0.02, activation checkpointing.
_base_ = ['vit-huge-p16_videomaev2-pt-300e_16x4x1_unlabeled-hybrid.py']

model = dict(arch='vit_giant', with_cp=True)  # 16 x 224 x 224 -> 8 x 16 x 16 = 2048 tokens (patch 14)

# Masks on the 8 x 16 x 16 grid: int(0.9 x 256) = 230 masked per slice -> 208 visible tokens; 1024 decoded.
train_dataloader = dict(dataset=dict(patch_size=14))

# official --clip_grad 0.02 (the base has none: _delete_ replaces its None)
# lr = the official --lr 6e-4 (per 256 videos) x 2048 / 256, for the script's 64 GPUs x 32 videos (base_batch_size,
# from the ViT-H config). Another total batch keeps it unless tools/train.py --auto-scale-lr.
optim_wrapper = dict(optimizer=dict(lr=4.8e-3), clip_grad=dict(_delete_=True, max_norm=0.02, norm_type=2))

# warmup_lr and min_lr keep their defaults (1e-6, 1e-5, scaled with the lr), so with --lr 6e-4 the ratios are
# start_factor = 1e-6 / 6e-4 = 1/600 and eta_min_ratio = 1e-5 / 6e-4 = 1/60.
param_scheduler = [
    dict(type='LinearLR', start_factor=1 / 600, end_factor=1.0, by_epoch=True, begin=0, end=30,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1 / 60, by_epoch=True, begin=30, end=300, T_max=270,
         convert_to_iter_based=True),
]
