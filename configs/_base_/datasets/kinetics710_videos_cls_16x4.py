# Kinetics-710 (docs/classification.md#data): the union of the K400, K600 and K700 train and val videos,
# de-duplicated by YouTube id, val videos removed from train; 658,340 train / 66,803 val videos, 710 classes in the
# order of the official misc/label_map_k710.txt. The K400 protocol otherwise. Lists of K400/K600/K700 videos can be
# moved into K710 labels with tasks.classification.remap_labels and label_map_between(k710_names, k400_names).
_base_ = ['kinetics400_videos_cls_16x4.py']

# Lists and videos under one folder: --cfg-options data_root=DIR re-points all three loaders (configs/README.md#data).
data_root = 'data/kinetics710'

train_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/k710_train_list_videos.txt', data_prefix=f'{data_root}/videos', num_classes=710))
val_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/k710_val_list_videos.txt', data_prefix=f'{data_root}/videos', num_classes=710))
test_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/k710_val_list_videos.txt', data_prefix=f'{data_root}/videos', num_classes=710))

# the shipped Kinetics-710 names (docs/labels.md)
val_evaluator = dict(class_names='k710')
test_evaluator = dict(class_names='k710')
