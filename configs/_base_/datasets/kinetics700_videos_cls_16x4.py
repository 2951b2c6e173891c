# Kinetics-700: the Kinetics-400 protocol (same sampling, augmentation and 5x3 test views) on the K700 lists;
# labels 0-699 in the order of the official misc/label_map_k700.txt.
# No official K700 fine-tuning script or accuracy exists (docs/classification.md#data); this is the K400 recipe
# applied to K700.
_base_ = ['kinetics400_videos_cls_16x4.py']

data_root = 'data/kinetics700/videos_train'
data_root_val = 'data/kinetics700/videos_val'
ann_file_train = 'data/kinetics700/kinetics700_train_list_videos.txt'
ann_file_val = 'data/kinetics700/kinetics700_val_list_videos.txt'

train_dataloader = dict(dataset=dict(ann_file=ann_file_train, data_prefix=data_root, num_classes=700))
val_dataloader = dict(dataset=dict(ann_file=ann_file_val, data_prefix=data_root_val, num_classes=700))
test_dataloader = dict(dataset=dict(ann_file=ann_file_val, data_prefix=data_root_val, num_classes=700))
