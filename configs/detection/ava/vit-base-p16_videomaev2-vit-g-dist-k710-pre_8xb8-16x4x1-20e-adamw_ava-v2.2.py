# AVA v2.2 action detection with a VideoMAE V2 ViT-B/16 (the ViT-g-distilled K710 model), trained and tested on
# torch + torchvision alone: ViT feature map -> temporal mean -> torchvision RoIAlign (8x8, 1/16) -> spatial max ->
# dropout 0.5 -> linear, sigmoid BCE over the AVA actions (tasks/detection; docs/ava.md#roi-head).
# Recipe: mmaction2's VideoMAE ViT-B AVA config (configs/detection/videomae/vit-base-p16_videomae-k400-pre_8xb8-16x4x1-
# 20e-adamw_ava-kinetics-rgb.py; docs/ava.md#data-and-schedules): 8 GPUs x 8 clips, AdamW 1.25e-4, layer decay 0.75,
# 5 warmup epochs then cosine, 20 epochs. mmaction2 reports 33.6 mAP for VideoMAE V1 ViT-B (K400 fine-tuned, trained
# on AVA-Kinetics) and the VideoMAE release 31.8 on AVA alone (docs/ava.md#reported-map); there is no published V2
# ViT-B AVA number.
#
#   python tools/train.py configs/detection/ava/<this file> --work-dir work_dirs/ava_vit-b
#   python tools/test.py configs/detection/ava/<this file> work_dirs/ava_vit-b/best_ava_mAP_epoch_N.pth
#   python tools/eval_ava.py --gt data/ava/annotations/ava_val_v2.2.csv --pred work_dirs/.../ava_predictions.csv \
#       --label-map data/ava/annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt \
#       --exclude data/ava/annotations/ava_val_excluded_timestamps_v2.2.csv
_base_ = ['../../_base_/default_runtime.py']

# tasks.detection registers the dataset, model and metric, and through tasks.engine and tasks.data.epoch_sampler the
# training wrappers, the layer-decay optimiser constructor and the (epoch, index) sampler.
custom_imports = dict(imports=['tasks.detection'], allow_failed_imports=False)

# --- model ------------------------------------------------------------------------------------------------------------
model = dict(
    type='VideoMAEv2AVADetector',
    backbone=dict(
        arch='vit_base',  # patch 16, C = 768, 12 blocks (docs/backbone.md#sizes)
        img_size=224,  # constructed grid; the 256-px training crops and test frames get the position table resized
        all_frames=16,
        drop_path_rate=0.2,  # mmaction2's ViT AVA configs
        featmap_norm=True,  # fresh LayerNorm on the tokens before the RoI head (mmaction2's use_mean_pooling=False)
        # Official distilled ViT-B (OpenGVLab/VideoMAE2 `distill/vit_b_k710_dl_from_giant.pth`, fp16 under `module`):
        # loaded through backbone.load_checkpoint, which drops the 710-way head and checks every other key.
        pretrained='checkpoints/videomaev2/distill/vit_b_k710_dl_from_giant.pth'),
    roi_head=dict(
        num_classes=80,  # AVA action ids 1..80 (column j = id j + 1); the metric scores the label map's 60
        output_size=8,  # RoIAlign 8x8 (mmaction2 SingleRoIExtractor3D output_size=8)
        dropout=0.5),  # BBoxHeadAVA dropout_ratio=0.5; spatial_scale = 1/16 comes from the backbone's patch size
    data_preprocessor=dict(
        type='VideoMAEv2AVAPreprocessor',
        mean=[123.675, 116.28, 103.53],  # ImageNet mean/std x 255, as mmaction2's AVA configs
        std=[58.395, 57.12, 57.375]))  # frames are padded bottom/right to a multiple of 16 (whole patches)

# --- data -------------------------------------------------------------------------------------------------------------
# mmaction2's layout: videos cut to [900 s, 1801 s) in videos_15min/<video_id>.mp4 (tools/data/ava), annotations
# from research.google.com/ava, proposals from mmaction2 (ava_dense_proposals_*.FAIR.recall_93.9.pkl), all under
# data_root: --cfg-options data_root=DIR re-points the loaders and the evaluators (configs/README.md#data).
data_root = 'data/ava'
anno_root = f'{data_root}/annotations'
ann_file_train = f'{anno_root}/ava_train_v2.2.csv'
ann_file_val = f'{anno_root}/ava_val_v2.2.csv'
exclude_file_train = f'{anno_root}/ava_train_excluded_timestamps_v2.2.csv'
exclude_file_val = f'{anno_root}/ava_val_excluded_timestamps_v2.2.csv'
label_file = f'{anno_root}/ava_action_list_v2.2_for_activitynet_2019.pbtxt'
proposal_file_train = f'{anno_root}/ava_dense_proposals_train.FAIR.recall_93.9.pkl'
proposal_file_val = f'{anno_root}/ava_dense_proposals_val.FAIR.recall_93.9.pkl'

clip = dict(
    clip_len=16,  # 16 frames every 4th (SampleAVAFrames(16, 4)): 8 before and 7 after the keyframe, ~2.1 s at 30 fps
    frame_interval=4,
    timestamp_start=900,  # the cut videos start at 900 s: keyframe t is frame (t - 900) x fps
    fps=None,  # the container's rate (mmaction2's frame folders are extracted at 30 fps, i.e. the same instants)
    video_ext='.mp4')

train_dataloader = dict(
    batch_size=8,  # x 8 GPUs = 64 keyframes per step (mmaction2 8xb8)
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,  # page-locked batches: the preprocessor's non_blocking copies overlap the step
    sampler=dict(type='EpochIndexSampler', shuffle=True),  # (epoch, index) keys -> per-sample seeds
    collate_fn=dict(type='videomaev2_ava_collate'),
    dataset=dict(
        type='VideoMAEv2AVADataset',
        ann_file=ann_file_train,
        data_prefix=f'{data_root}/videos_15min',
        exclude_file=exclude_file_train,
        label_file=label_file,
        proposal_file=proposal_file_train,
        # ground-truth boxes plus the proposals with IoU >= 0.9 to one of them, labelled like it (mmaction2's
        # MaxIoUAssignerAVA(pos_iou_thr=0.9) with a positive-only sampler)
        train_with_proposals=True,
        num_classes=80,
        train_scale=(256, 320),  # RandomRescale(scale_range=(256, 320))
        crop_size=256,  # RandomCrop(256): 16 x 16 patches
        flip_ratio=0.5,
        **clip))

val_dataloader = dict(
    batch_size=1,  # docs/ava.md#data-and-schedules: test batch 1 (frames keep their aspect ratio)
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='videomaev2_ava_collate'),
    dataset=dict(
        type='VideoMAEv2AVADataset',
        ann_file=ann_file_val,
        data_prefix=f'{data_root}/videos_15min',
        exclude_file=exclude_file_val,
        label_file=label_file,
        proposal_file=proposal_file_val,
        test_mode=True,
        num_classes=80,
        keyframes='all',  # every keyframe with proposals: the official protocol scores detections everywhere
        test_short_side=256,  # Resize(scale=(-1, 256)); no crop, no flip
        person_det_score_thr=0.9,  # proposals >= 0.9 (else the best one; the whole frame when there are none)
        **clip))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='VideoMAEv2AVAMetric',
    ann_file=ann_file_val,
    label_file=label_file,  # the 60 evaluated classes
    exclude_file=exclude_file_val,
    protocol='official',  # 'mmaction2' reproduces mmaction2's AVAMetric (higher numbers; tasks/detection/evaluation.py)
    action_thr=0.002)  # mmaction2's AVAMetric default: rows scoring below are not written
test_evaluator = val_evaluator

# --- schedule ---------------------------------------------------------------------------------------------------------
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=20, val_begin=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    constructor='VideoMAEv2LayerDecayConstructor',
    optimizer=dict(type='AdamW', lr=1.25e-4, betas=(0.9, 0.999), weight_decay=0.05),  # lr for 64 keyframes per step
    paramwise_cfg=dict(layer_decay_rate=0.75),  # blocks.k gets 0.75^(12 - k) of the lr; the RoI head the full lr
    clip_grad=dict(max_norm=40, norm_type=2))

# mmaction2: linear warmup from 0.1 x lr over 5 epochs, then cosine to 0 over the remaining 15 (per iteration).
# eta_min = 0 keeps the layer-decay ratios (every group ends at 0).
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=15, eta_min=0, by_epoch=True, begin=5, end=20, convert_to_iter_based=True),
]

# Set enable=True to scale the lr linearly when the total batch differs from 64.
auto_scale_lr = dict(enable=False, base_batch_size=64)

default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=1, max_keep_ckpts=3, save_best='ava/mAP', rule='greater'))
# seed + rank in process r (drop path and dropout differ per GPU); the samples depend only on (dataset seed, epoch,
# index) (docs/classification.md#seeding-across-processes).
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)
