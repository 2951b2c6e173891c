# VideoMAE V2 ViT-H/16 pre-training (OpenGVLab/VideoMAEv2: scripts/pretrain/vit_h_hybrid_pt.sh;
# docs/pretraining.md#recipe): C = 1280, 32 blocks, decoder 512-d; 64 GPUs x 32 videos
# (effective lr 1e-3 x 2048 / 256 = 8e-3), 300 epochs, activation checkpointing (--with_checkpoint).
_base_ = ['vit-large-p16_videomaev2-pt-300e_16x4x1_unlabeled-hybrid.py']

model = dict(arch='vit_huge', with_cp=True)

# lr = the official --lr 1e-3 (per 256 videos) x 2048 / 256, for the script's 64 GPUs x 32 videos (base_batch_size).
# Another total batch keeps it unless tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=2048)
optim_wrapper = dict(optimizer=dict(lr=8e-3))
