# The tiny CPU pre-training run (vit-test-p16_videomaev2-pt-2e_8x2x1_synthetic.py) trained long enough for its
# reconstructions to reach what its masks allow: 840 iterations (7 epochs of 120) at a 5x higher lr, ~2-4 min on
# 2 cores. Same data, masks (tube 0.9 + running cell 0.5), loss tokens, optimiser and schedule shape.
#
#   python tools/train.py configs/pretrain/videomaev2/<this file> --work-dir work_dirs/pt-tiny
#   python tools/visualize_reconstruction.py configs/pretrain/videomaev2/<this file> \
#       work_dirs/pt-tiny/epoch_7.pth data/synthetic/classification/videos/1.mp4 --out recon.png
#
# Why longer and faster, and why a 6 x 6 token grid with 4 visible positions cannot show more than each clip's
# colour: docs/experiments.md#tiny-pre-training.
_base_ = ['./vit-test-p16_videomaev2-pt-2e_8x2x1_synthetic.py']

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=7)

# 5e-3 at 4 videos per step (0.32 per 256 videos; base_batch_size 4).
optim_wrapper = dict(optimizer=dict(lr=5e-3))
# warmup_lr / lr and min_lr / lr as in the recipe; 40 warmup iterations of 840.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=False, begin=0, end=40),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=False, begin=40, end=840, T_max=800),
]

default_hooks = dict(checkpoint=dict(interval=7))
