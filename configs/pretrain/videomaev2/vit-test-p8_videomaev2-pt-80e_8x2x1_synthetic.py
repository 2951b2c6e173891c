# The tiny CPU pre-training run (vit-test-p16_videomaev2-pt-2e_8x2x1_synthetic.py) with 8-px patches and 40x the
# iterations: long enough for the reconstructions to show where things are, ~30-40 min on 2 cores. Same data, masks
# (tube 0.9 + running cell 0.5), loss tokens, optimiser and schedule shape as the recipe.
#
#   python tools/train.py configs/pretrain/videomaev2/<this file> --work-dir work_dirs/pt-tiny-p8
#   python tools/visualize_reconstruction.py configs/pretrain/videomaev2/<this file> \
#       work_dirs/pt-tiny-p8/epoch_80.pth data/synthetic/classification/videos/556.mp4 --out recon.png
#
# Why 8-px patches: at 96 px / patch 16 the grid is 6 x 6 and tube masking at 0.9 leaves the encoder 4 positions per
# clip, from which the layout of the other 32 cannot be recovered, so even a perfect model draws flat colour there. At
# patch 8 the grid is 12 x 12 and 15 positions stay visible, as in the paper's regime (19 of 196 at 224 px). The loss,
# reconstruction and probe measurements of this run: docs/experiments.md#tiny-pre-training-with-8-px-patches.
_base_ = ['./vit-test-p16_videomaev2-pt-2e_8x2x1_synthetic.py']

model = dict(patch_size=8)  # 8 frames / 2 x (96 / 8)^2 = 4 x 12 x 12 = 576 tokens, 60 visible

train_dataloader = dict(dataset=dict(patch_size=8))  # the masks' token grid

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=80)  # 80 x 120 = 9600 iterations

# 5e-3 at 4 videos per step (0.32 per 256 videos; base_batch_size 4), as the 7-epoch config.
optim_wrapper = dict(optimizer=dict(lr=5e-3))
# warmup_lr / lr and min_lr / lr as in the recipe; 40 warmup iterations of 9600.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=False, begin=0, end=40),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=False, begin=40, end=9600, T_max=9560),
]

default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=2))
