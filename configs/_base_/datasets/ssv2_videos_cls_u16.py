# Something-Something v2 fine-tuning data with the official protocol (OpenGVLab/VideoMAEv2: dataset/datasets.py
# SSVideoClsDataset / RawFrameClsDataset; docs/classification.md#data,
# docs/classification.md#test-protocols-and-metrics): 16 TSN segments, one random frame each, no flip (the labels
# name directions: "from left to right"), 2 x 3 test views.
#
# The official release: 220,847 webm videos named <id>.webm and the json annotations (labels.json, train.json,
# validation.json; 174 classes) under one folder, `data_root` (--cfg-options data_root=DIR re-points the three loaders,
# configs/README.md#data). Raw-frame lists
# (`frame_dir total_frames label`, frames img_00001.jpg ...) work with ann_format='rawframes'.
data_root = 'data/sthv2'
label_file = f'{data_root}/annotations/labels.json'

train_dataloader = dict(
    batch_size=16,  # per GPU, in videos (x 2 RA views); the ViT-B SSv2 script's 16 on 16 GPUs
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='EpochIndexSampler', shuffle=True),
    collate_fn=dict(type='videomaev2_cls_collate'),
    dataset=dict(
        type='VideoMAEv2ClsDataset',
        ann_file=f'{data_root}/annotations/train.json',
        data_prefix=f'{data_root}/videos',
        ann_format='ssv2',
        label_file=label_file,
        video_ext='.webm',
        num_classes=174,
        sampling='segment',
        clip_len=16,  # 16 segments, one frame each (official --num_frames 16, TSN sampling)
        input_size=224,
        num_sample=2,
        rand_augment='rand-m7-n4-mstd0.5-inc1',
        rrc_scale=(0.08, 1.0),
        rrc_ratio=(0.75, 1.3333),
        flip=False,  # official: no flip for SSV2
        reprob=0.25,
        recount=1,
        backend='auto',
        seed=0))

# The test-mode dataset shared by validation and test; they differ only in the views per video.
_test_dataset = dict(
    type='VideoMAEv2ClsDataset',
    ann_file=f'{data_root}/annotations/validation.json',
    data_prefix=f'{data_root}/videos',
    ann_format='ssv2',
    label_file=label_file,
    video_ext='.webm',
    num_classes=174,
    test_mode=True,
    sampling='segment',
    clip_len=16,
    input_size=224,
    short_side=224,
    backend='auto')

# Validation during training: segment starts (the first test offset), short side 224, centre crop.
val_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,  # page-locked batches: the preprocessor's non_blocking copies overlap the step
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='videomaev2_cls_collate'),
    dataset=dict(_test_dataset, num_clips=1, num_crops=1))

# Test: "16x2x3" (docs/classification.md#test-protocols-and-metrics): 16 segments x 2 temporal offsets (segment
# starts and midpoints) x 3 crops = 6 views.
test_dataloader = dict(
    batch_size=2,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='videomaev2_cls_collate'),
    dataset=dict(_test_dataset, num_clips=2, num_crops=3))

val_evaluator = dict(type='VideoClsMetric', class_names='ssv2')  # shipped names, docs/labels.md
test_evaluator = dict(type='VideoClsMetric', class_names='ssv2')
