# Kinetics-600: the Kinetics-400 protocol (same sampling, augmentation and 5x3 test views) on the K600 lists;
# labels 0-599 in the order of the official misc/label_map_k600.txt.
_base_ = ['kinetics400_videos_cls_16x4.py']

data_root = 'data/kinetics600/videos_train'
data_root_val = 'data/kinetics600/videos_val'
ann_file_train = 'data/kinetics600/kinetics600_train_list_videos.txt'
ann_file_val = 'data/kinetics600/kinetics600_val_list_videos.txt'

train_dataloader = dict(dataset=dict(ann_file=ann_file_train, data_prefix=data_root, num_classes=600))
val_dataloader = dict(dataset=dict(ann_file=ann_file_val, data_prefix=data_root_val, num_classes=600))
test_dataloader = dict(dataset=dict(ann_file=ann_file_val, data_prefix=data_root_val, num_classes=600))
