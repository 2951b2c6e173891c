# Runtime of the pre-training configs: the shared runtime plus the loss-curve hook, epoch checkpoints and seeding.
_base_ = ['default_runtime.py']

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    # The official scripts save every 20 epochs (--save_ckpt_freq 20) and at the end; `last_checkpoint` in the work
    # directory lets `tools/train.py --resume` find the newest one. No validation, hence no "best" checkpoint.
    checkpoint=dict(type='CheckpointHook', interval=20, save_last=True, save_best=None))

# loss_curve.png / loss_curve.json (loss of the global batch and lr per iteration) and skipped_videos.txt in the
# work directory.
custom_hooks = [dict(type='PretrainLossCurveHook', interval=50)]

# Clips of one fixed size: cuDNN's search for the fastest convolution (the patch embedding) runs once and pays off.
env_cfg = dict(cudnn_benchmark=True)

# Process r seeds its global generators with seed + r (diff_rank_seed, as the official run_mae_pretraining.py), so
# each GPU draws its own drop-path masks. The sampler's shuffle (one seed, broadcast from rank 0) and the initial
# weights (rank 0's) are shared, and the data of a sample, masks included, depends only on (dataset seed, epoch,
# index), not on the rank that loads it (docs/classification.md#seeding-across-processes).
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)

# Pre-training has no evaluation loop.
val_cfg = None
test_cfg = None
