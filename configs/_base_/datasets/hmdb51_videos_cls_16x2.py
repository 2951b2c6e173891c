# HMDB51 split 1 (mmaction2 video lists, `relative/path.avi label`, 51 classes): the Kinetics protocol with
# clips of 16 frames every 2nd frame (the official HMDB51 script uses
# --sampling_rate 2, docs/classification.md#fine-tuning-recipe), 5 x 3 test views.
_base_ = ['kinetics400_videos_cls_16x4.py']

# Lists and videos under one folder: --cfg-options data_root=DIR re-points all three loaders (configs/README.md#data).
data_root = 'data/hmdb51'

train_dataloader = dict(
    batch_size=3,  # the ViT-g scripts' 3 per GPU
    dataset=dict(ann_file=f'{data_root}/hmdb51_train_split_1_videos.txt', data_prefix=f'{data_root}/videos',
                 num_classes=51, frame_interval=2))
val_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/hmdb51_val_split_1_videos.txt', data_prefix=f'{data_root}/videos', num_classes=51,
    frame_interval=2))
test_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/hmdb51_val_split_1_videos.txt', data_prefix=f'{data_root}/videos', num_classes=51,
    frame_interval=2))

# no shipped HMDB51 names: class_names=FILE (one name a line, label order) names them
val_evaluator = dict(class_names=None)
test_evaluator = dict(class_names=None)
