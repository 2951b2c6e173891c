# The tiny CPU pre-training run (vit-test-p16_videomaev2-pt-2e_8x2x1_synthetic.py) with 8-px patches and 40x the
# iterations: long enough for the reconstructions to show where things are, ~30-40 min on 2 cores. Same data, masks
# (tube 0.9 + running cell 0.5), loss tokens, optimiser and schedule shape as the recipe.
#
#   python tools/train.py configs/pretrain/videomaev2/<this file> --work-dir work_dirs/pt-tiny-p8
#   python tools/visualize_reconstruction.py configs/pretrain/videomaev2/<this file> \
#       work_dirs/pt-tiny-p8/epoch_80.pth data/synthetic/classification/videos/556.mp4 --out recon.png
#
# Why 8-px patches: at 96 px / patch 16 the grid is 6 x 6 and tube masking at 0.9 leaves the encoder 4 positions per
# clip, from which the layout of the other 32 cannot be recovered (interpolating the visible patches' true colours
# is worse than the clip's mean colour), so even a perfect model draws flat colour there. At patch 8 the grid is
# 12 x 12 and 15 positions stay visible, as in the paper's regime (19 of 196 at 224 px).
#
# Measured (default preset, seed 0, 2-core VM, 29 min): loss (mean of 400 iterations) 0.025 at the start, 0.0089 at
# iteration 1600, 0.0075 at 4000, 0.0065 at the end. On video 556 (docs/images/pretrain-p8-80e_reconstruction.png)
# the reconstruction's pixel MSE is 0.0097 against 0.0126 for the clip's flat mean colour: the objects show as
# darker blobs of roughly their colour where they are, on the background's colour. "Spatial std" below is the std
# over the loss tokens of each predicted token's mean colour (0.09 for the truth): the model first learns one colour
# per clip and stays on that plateau for thousands of iterations while it learns to use positions (through the
# recipe's fixed 1-D sinusoid table, a position 12 or 144 tokens away is not "near"): spatial std 0.003 after 2400
# iterations (pixel MSE 0.0133), 0.06 after 4800 (0.0117), 0.07 at the end (0.0097). The 240-iteration demo run at
# patch 16 predicts nearly one grey for every token. Its features still probe at chance on the temporal-order
# classes (linear 0.08, k-NN 0.14 vs 0.10 / 0.12 for random init): where things are, not yet how they move.
_base_ = ['./vit-test-p16_videomaev2-pt-2e_8x2x1_synthetic.py']

model = dict(patch_size=8)  # 8 frames / 2 x (96 / 8)^2 = 4 x 12 x 12 = 576 tokens, 60 visible

train_dataloader = dict(dataset=dict(patch_size=8))  # the masks' token grid

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=80)  # 80 x 120 = 9600 iterations

# 5e-3 at 4 videos per step (auto_scale_lr: 0.32 x 4 / 256), as the 7-epoch config.
optim_wrapper = dict(optimizer=dict(lr=0.32))
# warmup_lr / lr and min_lr / lr as in the recipe; 40 warmup iterations of 9600.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=False, begin=0, end=40),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=False, begin=40, end=9600, T_max=9560),
]

default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=2))
