# VideoMAE V2 ViT-L/16 pre-training (OpenGVLab/VideoMAEv2: scripts/pretrain/vit_l_hybrid_pt.sh;
# docs/pretraining.md#recipe): C = 1024, 24 blocks, decoder 512-d; 48 GPUs x 32 videos
# (effective lr 1e-3 x 1536 / 256 = 6e-3), 300 epochs (1200 with the views), 30 warmup epochs.
_base_ = [
    '../../_base_/models/videomaev2_pretrain_vit-base-p16.py',
    '../../_base_/datasets/unlabeled-hybrid_videos_pretrain_16x4.py',
    '../../_base_/schedules/videomaev2_pretrain_adamw_300e.py',
    '../../_base_/pretrain_runtime.py',
]

# ~52 GiB per GPU in fp32 without checkpointing (README.md#gpu-memory-per-recipe): fits an 80 GB card; on a 40 GB
# card set with_cp=True here (~14 GiB) or train in bf16.
model = dict(arch='vit_large')

# lr = the official --lr 1e-3 (per 256 videos) x 1536 / 256, for the script's 48 GPUs x 32 videos (base_batch_size).
# Another total batch keeps it unless tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=1536)
optim_wrapper = dict(optimizer=dict(lr=6e-3))
