# Kinetics-400 fine-tuning data with the official VideoMAE V2 protocol (OpenGVLab/VideoMAEv2: dataset/datasets.py
# VideoClsDataset; docs/classification.md#data, docs/classification.md#test-protocols-and-metrics).
#
# One folder holds the lists and the videos: `data_root` below, or --cfg-options data_root=DIR with tools/train.py and
# tools/test.py, which re-point every path of the three loaders that begins with it (configs/README.md#data). A child
# config that sets another data_root restates the loaders' paths (mmengine fills them in when it reads this file).
# Lists are mmaction2 video lists (`relative/path.mp4 label`, labels 0-399 in the order of label_map_k400.txt). The
# official csv works too: ann_format='kinetics', class_names='label_map_k400.txt' (files named
# <youtube_id>_<start:06d>_<end:06d>.mp4 under data_prefix).
data_root = 'data/kinetics400'

train_dataloader = dict(
    batch_size=16,  # per GPU, in videos (x 2 RA views = 32 clips per step); the ViT-B script's 16 on 32 GPUs
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,  # an even batch for timm Mixup, and the official loader's drop_last
    # DefaultSampler (shuffled with the Runner's seed + epoch) yielding (epoch, index) keys, from which the dataset
    # seeds the frame window, RandAugment, crop, flip and erasing of every sample.
    sampler=dict(type='EpochIndexSampler', shuffle=True),
    collate_fn=dict(type='videomaev2_cls_collate'),
    dataset=dict(
        type='VideoMAEv2ClsDataset',
        ann_file=f'{data_root}/kinetics400_train_list_videos.txt',
        data_prefix=f'{data_root}/videos_train',
        ann_format='video',
        num_classes=400,
        sampling='dense',
        clip_len=16,
        # 16 frames evenly spaced over a random 64-frame window (official --num_frames 16 --sampling_rate 4).
        frame_interval=4,
        input_size=224,
        num_sample=2,  # official --num_sample 2: two augmented views of every decoded clip
        rand_augment='rand-m7-n4-mstd0.5-inc1',  # official --aa: the same 4 ops for every frame of a clip
        rrc_scale=(0.08, 1.0),  # random resized crop to 224, area 8-100 %, aspect 3/4-4/3
        rrc_ratio=(0.75, 1.3333),
        flip=True,
        reprob=0.25,  # official --reprob 0.25 --recount 1: one box, the same in every frame
        recount=1,
        backend='auto',
        seed=0))

# The test-mode dataset shared by validation and test; they differ only in the views per video.
_test_dataset = dict(
    type='VideoMAEv2ClsDataset',
    ann_file=f'{data_root}/kinetics400_val_list_videos.txt',
    data_prefix=f'{data_root}/videos_val',
    ann_format='video',
    num_classes=400,
    test_mode=True,
    sampling='dense',
    clip_len=16,
    frame_interval=4,
    input_size=224,
    short_side=224,
    backend='auto')

# Validation during training: the middle 16x4 clip of each video, short side 224, centre crop (one view; the
# official validation also takes one clip and a centre crop).
val_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,  # page-locked batches: the preprocessor's non_blocking copies overlap the step
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='videomaev2_cls_collate'),
    dataset=dict(_test_dataset, num_clips=1, num_crops=1))

# Test: "16x5x3" (docs/classification.md#test-protocols-and-metrics): every 4th frame, 5 clips of 16 at evenly
# spaced starts, short side 224, 3 crops of 224 along the long side = 15 views per video, softmax per view, mean over
# the views.
test_dataloader = dict(
    batch_size=1,  # one video = 15 clips per forward pass
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='videomaev2_cls_collate'),
    dataset=dict(_test_dataset, num_clips=5, num_crops=3))

# top-1 / top-5 / mean class accuracy over videos (tasks.classification.metric), the classes named by the shipped
# Kinetics-400 label set (docs/labels.md) in cls_results.json, the confusion chart and tools/infer.py
val_evaluator = dict(type='VideoClsMetric', class_names='k400')
test_evaluator = dict(type='VideoClsMetric', class_names='k400')
