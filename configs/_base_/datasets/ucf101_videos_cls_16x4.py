# UCF101 split 1 (mmaction2 video lists, `relative/path.avi label`, 101 classes): the Kinetics protocol with
# clips of 16 frames every 4th frame, 5 x 3 test views.
_base_ = ['kinetics400_videos_cls_16x4.py']

# Lists and videos under one folder: --cfg-options data_root=DIR re-points all three loaders (configs/README.md#data).
data_root = 'data/ucf101'

train_dataloader = dict(
    batch_size=3,  # the ViT-g scripts' 3 per GPU
    dataset=dict(ann_file=f'{data_root}/ucf101_train_split_1_videos.txt', data_prefix=f'{data_root}/videos',
                 num_classes=101, frame_interval=4))
val_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/ucf101_val_split_1_videos.txt', data_prefix=f'{data_root}/videos', num_classes=101,
    frame_interval=4))
test_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/ucf101_val_split_1_videos.txt', data_prefix=f'{data_root}/videos', num_classes=101,
    frame_interval=4))

# no shipped UCF101 names: class_names=FILE (one name a line, label order) names them
val_evaluator = dict(class_names=None)
test_evaluator = dict(class_names=None)
