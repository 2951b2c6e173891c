# ActionFormer on the THUMOS-like synthetic benchmark (tasks/data/synthetic, preset `default`: 4 training + 3 test
# videos of 60 s at 30 fps, 6 classes), with features of the tiny `vit_test` backbone: 120 steps + test cost about 60
# CPU-seconds with one torch thread (docs/experiments.md#tiny-thumos-run). Same detector, assignment, losses,
# post-processing, optimiser, EMA and clipping as the THUMOS14 recipe; the sizes, the epochs, the lr and the EMA decay
# differ (each is commented).
#
#   python tools/make_synthetic.py --out data/synthetic --preset default
#   python tools/extract_features.py data/synthetic/thumos/videos --out work_dirs/demo/thumos_vit-test_16x4.h5 \
#       --arch vit_test --checkpoint <pre-trained vit_test> --resize 96x128
#   python tools/train.py configs/localization/thumos14/<this file> --work-dir work_dirs/tad_synthetic
#   python tools/test.py configs/localization/thumos14/<this file> work_dirs/tad_synthetic/epoch_60.pth  # EMA weights
_base_ = ['./actionformer_vit-giant-p14_videomaev2-k710-ft-feat_16x4_thumos14.py']

data_root = 'data/synthetic/thumos'
ann_file = f'{data_root}/annotations/thumos14.json'
feature_store = 'work_dirs/demo/thumos_vit-test_16x4.h5'  # 64-d (vit_test): model.in_dim below
# 60-s videos at 30 fps give (1800 - 16) / 4 + 1 = 447 rows; 448 = 14 x 32 holds a whole video, so training crops
# come only from crop_ratio (0.9-1.0), as for most THUMOS14 videos under 2304 rows.
max_seq_len = 448

model = dict(
    in_dim=64,  # vit_test width
    num_classes=6,
    embed_dim=64,  # 512 in the recipe; 4 training videos need far less
    head_dim=64,
    drop_path=0.0,  # no regularisation beyond the EMA for a 60-epoch run on 4 videos
    data_preprocessor=dict(max_seq_len=max_seq_len))

train_dataloader = dict(
    num_workers=0,  # 4 videos of 447 x 64 floats: reading them is cheaper than starting workers
    persistent_workers=False,
    pin_memory=False,  # CPU runs: nothing to copy to
    # The default preset's 4 training videos make 2 whole batches; the tiny preset's 1 makes one (the recipe drops a
    # last partial batch, which would leave it none).
    drop_last=False,
    dataset=dict(ann_file=ann_file, feature_store=feature_store, max_seq_len=max_seq_len))
test_dataloader = dict(
    num_workers=0,
    pin_memory=False,
    dataset=dict(ann_file=ann_file, feature_store=feature_store))

# 2 iterations per epoch (4 videos, batch 2): 60 epochs = 120 steps, 10 of them warm-up. lr 1e-3 instead of 1e-4:
# with 120 steps the recipe's lr does not get the classifier off its 0.01 prior.
warmup_epochs, cosine_epochs = 5, 55
train_cfg = dict(max_epochs=warmup_epochs + cosine_epochs)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-8, by_epoch=True, begin=warmup_epochs,
         end=warmup_epochs + cosine_epochs, T_max=cosine_epochs, convert_to_iter_based=True),
]
# EMA decay 0.95 per step instead of 0.999: the average starts from the weights after step 1, which keep a share of
# decay^steps in it: 0.999^120 = 0.89 (the EMA model would be mostly untrained), 0.95^120 = 0.002. (The recipe's
# 3500 steps leave 0.999^3500 = 0.03.)
custom_hooks = [dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.05, update_buffers=False)]

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=60, max_keep_ckpts=1))
