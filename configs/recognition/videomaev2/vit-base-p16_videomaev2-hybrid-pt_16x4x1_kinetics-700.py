# Kinetics-700 with the Kinetics-400 recipe of this size: no official K700 fine-tuning script or accuracy exists
# (docs/classification.md#data).
_base_ = ['vit-base-p16_videomaev2-hybrid-pt_16x4x1_kinetics-400.py']

data_root = 'data/kinetics700/videos_train'
data_root_val = 'data/kinetics700/videos_val'
ann_file_train = 'data/kinetics700/kinetics700_train_list_videos.txt'
ann_file_val = 'data/kinetics700/kinetics700_val_list_videos.txt'
model = dict(backbone=dict(num_classes=700), data_preprocessor=dict(num_classes=700))
train_dataloader = dict(dataset=dict(ann_file=ann_file_train, data_prefix=data_root, num_classes=700))
val_dataloader = dict(dataset=dict(ann_file=ann_file_val, data_prefix=data_root_val, num_classes=700))
test_dataloader = dict(dataset=dict(ann_file=ann_file_val, data_prefix=data_root_val, num_classes=700))
