# Kinetics-600 with the Kinetics-400 recipe of this size (the official K600 scripts share the K400 settings,
# docs/classification.md#fine-tuning-recipe).
_base_ = ['vit-small-p16_videomaev2-hybrid-pt_16x4x1_kinetics-400.py']

data_root = 'data/kinetics600/videos_train'
data_root_val = 'data/kinetics600/videos_val'
ann_file_train = 'data/kinetics600/kinetics600_train_list_videos.txt'
ann_file_val = 'data/kinetics600/kinetics600_val_list_videos.txt'
model = dict(backbone=dict(num_classes=600), data_preprocessor=dict(num_classes=600))
train_dataloader = dict(dataset=dict(ann_file=ann_file_train, data_prefix=data_root, num_classes=600))
val_dataloader = dict(dataset=dict(ann_file=ann_file_val, data_prefix=data_root_val, num_classes=600))
test_dataloader = dict(dataset=dict(ann_file=ann_file_val, data_prefix=data_root_val, num_classes=600))
