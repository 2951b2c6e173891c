# Kinetics-400 validation videos, tested with the "16x4x1, 5 clips x 3 crops" protocol of VideoMAE V2 and mmaction2
# (docs/classification.md#test-protocols-and-metrics).
#
# One folder, `data_root`, holds the list and the videos; the dataset joins its relative ann_file and data_prefix to it
# (mmengine's BaseDataset data_root). Point it elsewhere with one key:
#   --cfg-options data_root=DIR                            (tools/test.py, configs/README.md#data)
#   --cfg-options test_dataloader.dataset.data_root=DIR    (mmaction2's stock tools/test.py)
# The list is mmaction2's video list: one `relative/path.mp4 label` line per video, labels 0-399 in the order of
# mmaction2's label_map_k400.txt (the official misc/label_map_k400.txt).
data_root = 'data/kinetics400'
ann_file_test = 'kinetics400_val_list_videos.txt'  # relative to data_root

dataset_type = 'VideoDataset'

test_pipeline = [
    dict(type='DecordInit'),
    # 16x4x1: clips of 16 frames taken every 4th frame (the sampling rate of the official Kinetics scripts and test
    # protocol, docs/classification.md#test-protocols-and-metrics, docs/classification.md#fine-tuning-recipe), so a
    # clip covers 16 x 4 = 64 frames of video, about 2.1 s at 30 fps.
    # num_clips=5, test_mode: from its first to its last frame a clip spans (16 - 1) x 4 + 1 = 61 frames; the 5
    # starts are evenly spaced from 0 to max(num_frames - 61, 0) and rounded, so the last clip ends on the last
    # frame. Shorter videos loop (frame indices modulo num_frames).
    dict(type='SampleFrames', clip_len=16, frame_interval=4, num_clips=5, test_mode=True),
    dict(type='DecordDecode'),
    # Short side to 224, aspect ratio kept.
    dict(type='Resize', scale=(-1, 224)),
    # Three 224x224 crops along the long side (left/top, centre, right/bottom) of every clip:
    # 5 clips x 3 crops = 15 views per video, averaged by the head (average_clips='prob').
    dict(type='ThreeCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),  # (15, 3, 16, 224, 224) uint8 per video
    dict(type='PackActionInputs')
]

test_dataloader = dict(
    # One video per batch = 15 clips per forward pass (ViT-B: 15 x 180 GFLOPs; mmaction2 README).
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,  # page-locked batches: the preprocessor's non_blocking copies overlap the step
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=ann_file_test,
        data_prefix=dict(video='videos_val'),
        pipeline=test_pipeline,
        test_mode=True))

# acc/top1, acc/top5 and acc/mean1 (mean per-class recall) over videos.
test_evaluator = dict(type='AccMetric')
test_cfg = dict(type='TestLoop')
