# Runtime shared by every config in this repository (mmengine Runner settings, no model or data).
# Type names resolve in mmaction2's registries first, then fall back to mmengine's (DumpResults, LoggerHook, ...).
default_scope = 'mmaction'

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    # Kinetics-400 val has 19,796 videos (docs/classification.md#data): a line every 100 videos keeps the log readable.
    logger=dict(type='LoggerHook', interval=100, ignore_last=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Only used by training configs; test-only runs never save a checkpoint.
    checkpoint=dict(type='CheckpointHook', interval=1, save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    sync_buffers=dict(type='SyncBuffersHook'))

env_cfg = dict(
    # cuDNN tries its convolution algorithms for every new input shape: worth it only where shapes are fixed, so the
    # fixed-shape classification and pre-training runtimes turn it on (finetune_runtime.py, pretrain_runtime.py). Off
    # here for AVA (test frames keep their aspect ratio: sizes vary) and THUMOS (test sequences of every length).
    cudnn_benchmark=False,
    # opencv_num_threads=0: decoding workers already run in parallel; OpenCV threads inside them only oversubscribe.
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

# TF32 for float32 matmuls and convolutions on Ampere and newer GPUs (tasks.engine.runner.apply_tf32, applied by
# tools/train.py and tools/test.py before the Runner is built): several times faster, with inputs rounded to 10
# mantissa bits (about 1e-3 relative error per product), so float32 results differ from full-precision ones at that
# level. --cfg-options tf32=False keeps full float32; None leaves torch's settings. No effect on the CPU.
tf32 = True

log_processor = dict(type='LogProcessor', window_size=20, by_epoch=True)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='ActionVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
# Children set the checkpoint to evaluate; None here would silently test random weights, so every test config
# overrides it (or mmaction2's tools/test.py does, from its CHECKPOINT argument).
load_from = None
resume = False
