# Kinetics-700 with the Kinetics-400 recipe of this size: no official K700 fine-tuning script or accuracy exists
# (docs/classification.md#data).
_base_ = ['vit-small-p16_videomaev2-hybrid-pt_16x4x1_kinetics-400.py']

# Lists and videos under one folder: --cfg-options data_root=DIR re-points all three loaders (configs/README.md#data).
data_root = 'data/kinetics700'
model = dict(backbone=dict(num_classes=700), data_preprocessor=dict(num_classes=700))
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
