# Kinetics-600: the Kinetics-400 protocol (same sampling, augmentation and 5x3 test views) on the K600 lists;
# labels 0-599 in the order of the official misc/label_map_k600.txt.
_base_ = ['kinetics400_videos_cls_16x4.py']

# Lists and videos under one folder: --cfg-options data_root=DIR re-points all three loaders (configs/README.md#data).
data_root = 'data/kinetics600'

train_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/kinetics600_train_list_videos.txt', data_prefix=f'{data_root}/videos_train',
    num_classes=600))
val_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/kinetics600_val_list_videos.txt', data_prefix=f'{data_root}/videos_val', num_classes=600))
test_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/kinetics600_val_list_videos.txt', data_prefix=f'{data_root}/videos_val', num_classes=600))

# Kinetics-600 names are not shipped (docs/labels.md): pass the label file's path, e.g. class_names='label_map_k600.txt'
val_evaluator = dict(class_names=None)
test_evaluator = dict(class_names=None)
