# Kinetics-700: the Kinetics-400 protocol (same sampling, augmentation and 5x3 test views) on the K700 lists;
# labels 0-699 in the order of the official misc/label_map_k700.txt.
# No official K700 fine-tuning script or accuracy exists (docs/classification.md#data); this is the K400 recipe
# applied to K700.
_base_ = ['kinetics400_videos_cls_16x4.py']

# Lists and videos under one folder: --cfg-options data_root=DIR re-points all three loaders (configs/README.md#data).
data_root = 'data/kinetics700'

train_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/kinetics700_train_list_videos.txt', data_prefix=f'{data_root}/videos_train',
    num_classes=700))
val_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/kinetics700_val_list_videos.txt', data_prefix=f'{data_root}/videos_val', num_classes=700))
test_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/kinetics700_val_list_videos.txt', data_prefix=f'{data_root}/videos_val', num_classes=700))

# the shipped Kinetics-700 names (docs/labels.md)
val_evaluator = dict(class_names='k700')
test_evaluator = dict(class_names='k700')
