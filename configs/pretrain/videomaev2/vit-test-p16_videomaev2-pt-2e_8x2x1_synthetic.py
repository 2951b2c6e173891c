# Tiny pre-training run for a CPU: the `vit_test` ViT (64-d, 2 blocks; 32-d, 2-block decoder) on the classification
# videos of the synthetic benchmark, a few minutes on 2 cores (~250 iterations). Same pipeline, masks, optimiser and
# schedule shape as the real recipe; sizes, lengths, the lr and the target normalisation differ (each is commented).
#
#   python tools/make_synthetic.py --out data/synthetic --preset default      # 480 training videos of 64 frames
#   python tools/train.py configs/pretrain/videomaev2/<this file> --work-dir work_dirs/pt_tiny
#   python tools/visualize_reconstruction.py configs/pretrain/videomaev2/<this file> \
#       work_dirs/pt_tiny/epoch_2.pth data/synthetic/classification/videos/1.mp4 --out recon.png
_base_ = [
    '../../_base_/models/videomaev2_pretrain_vit-base-p16.py',
    '../../_base_/datasets/unlabeled-hybrid_videos_pretrain_16x4.py',
    '../../_base_/schedules/videomaev2_pretrain_adamw_200e.py',
    '../../_base_/pretrain_runtime.py',
]

model = dict(
    arch='vit_test',
    img_size=96,  # the synthetic videos are 128x96: crops of 96 (and .875/.75/.66 of it) resized to 96
    all_frames=8,  # 8 frames / 2 x (96 / 16)^2 = 4 x 6 x 6 = 144 tokens
    decoder_depth=2,  # the vit_test preset's decoder (the base file sets the recipe's 4)
    # Raw [0, 1] pixel targets (official --normlize_target False): with the recipe's per-patch normalised targets
    # this model stays at the loss of predicting every patch's own mean for the whole run, so the curve would show
    # nothing; raw targets let it learn the clips' colours (docs/experiments.md#tiny-pre-training).
    normalize_target=False)

data_root = 'data/synthetic/classification'
train_dataloader = dict(
    batch_size=4,  # 4 videos x 4 views = 16 clips per step; 480 videos -> 120 steps per epoch, 240 in all
    num_workers=2,
    persistent_workers=True,
    pin_memory=False,
    dataset=dict(
        ann_file=f'{data_root}/train_list_videos.txt',  # written by tools/make_synthetic.py (`path label` lines)
        data_prefix=data_root,
        clip_len=8,
        # 8 frames every 2nd frame = a 16-frame window, which also fits the 16-frame videos of the `tiny` preset.
        frame_interval=2,
        input_size=96,
        # T' = 4 slices: every position is decoder-kept in exactly 2 of them (docs/pretraining.md#running-cell-mask),
        # so every clip has the same number of loss tokens (4 x 32 masked positions x 1/2 = 64 of 144), and the loss
        # of a batch is the mean of its clips' losses whichever way the batch is split over processes.
        encoder_mask_ratio=0.9,  # int(0.9 x 36) = 32 masked per slice: 4 x 4 = 16 visible tokens
        decoder_mask_ratio=0.5,
        # 480 videos x 64 frames x 128x96 = 1.1 GiB per worker: each video is decoded once, not once per epoch.
        cache_videos_mb=1400))

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2)

# 1e-3 at 4 videos per step (6.4e-2 per 256 videos), the one process x 4 videos base_batch_size names.
auto_scale_lr = dict(enable=False, base_batch_size=4)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
# warmup_lr / lr and min_lr / lr as in the recipe; per iteration, 40 warmup iterations of 240 (the recipe: 20 warmup
# epochs of 200).
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=False, begin=0, end=40),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-2, by_epoch=False, begin=40, end=240, T_max=200),
]

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=1))
custom_hooks = [dict(type='PretrainLossCurveHook', interval=25)]
