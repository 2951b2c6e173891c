# Runtime of the fine-tuning configs: the shared runtime, a checkpoint every 5 epochs (the last 3 kept, plus the last
# and the best by the validation metric), seeding.
_base_ = ['default_runtime.py']

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=3, save_last=True, save_best='auto'))

# Clips of one fixed size in training, validation and test: cuDNN's search for the fastest convolution (the patch
# embedding) runs once per shape and pays off.
env_cfg = dict(cudnn_benchmark=True)

# Process r seeds its global generators with seed + r (diff_rank_seed, as the official run_class_finetuning.py), so
# each GPU draws its own Mixup/CutMix lambda and box, drop-path masks and erasing noise. The same in every process:
# the sampler's shuffle (one seed, broadcast from rank 0), the initial weights (rank 0's, broadcast) and the data of a
# sample, which depends only on (dataset seed, epoch, index) (docs/classification.md#seeding-across-processes).
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)
