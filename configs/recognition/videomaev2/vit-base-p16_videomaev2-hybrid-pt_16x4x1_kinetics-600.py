# Kinetics-600 with the Kinetics-400 recipe of this size (the official K600 scripts share the K400 settings,
# docs/classification.md#fine-tuning-recipe).
_base_ = ['vit-base-p16_videomaev2-hybrid-pt_16x4x1_kinetics-400.py']

# Lists and videos under one folder: --cfg-options data_root=DIR re-points all three loaders (configs/README.md#data).
data_root = 'data/kinetics600'
model = dict(backbone=dict(num_classes=600), data_preprocessor=dict(num_classes=600))
train_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/kinetics600_train_list_videos.txt', data_prefix=f'{data_root}/videos_train',
    num_classes=600))
val_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/kinetics600_val_list_videos.txt', data_prefix=f'{data_root}/videos_val', num_classes=600))
test_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/kinetics600_val_list_videos.txt', data_prefix=f'{data_root}/videos_val', num_classes=600))

# Kinetics-600 names are not shipped (docs/labels.md): class_names='label_map_k600.txt' (its path) names them
val_evaluator = dict(class_names=None)
test_evaluator = dict(class_names=None)
