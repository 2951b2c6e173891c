# Runtime of the fine-tuning configs: the shared runtime, a checkpoint every 5 epochs (the last 3 kept, plus the last
# and the best by the validation metric), seeding.
_base_ = ['default_runtime.py']

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=3, save_last=True, save_best='auto'))

# One seed for model init, Mixup draws and sampler shuffling, the same in every process; the data of a sample depends
# only on (dataset seed, epoch, index).
randomness = dict(seed=0, diff_rank_seed=False, deterministic=False)
