# Progressive training, stage 2 of 3 (docs/classification.md#fine-tuning-recipe, V2 paper appendix): K710
# post-pre-training of ViT-g.
#
#   stage 1  configs/pretrain/videomaev2/vit-giant-p14_videomaev2-pt-300e_16x4x1_unlabeled-hybrid.py
#            (or the official vit_g_hybrid_pt_1200e.pth)
#   stage 2  this file: fine-tune on Kinetics-710 (710 classes)                        -> epoch_35.pth
#   stage 3  vit-giant-p14_videomaev2-hybrid-pt-k710-ft_16x4x1_kinetics-{400,600}.py: load_from = stage 2, the
#            710-way head sliced to 400 / 600 classes with the official label_710to{400,600}.json
#
# Recipe (scripts/finetune/vit_g_k710_ft.sh): 32 GPUs x 3, --lr 1e-3 (effective 3.75e-4), layer decay 0.9, drop path
# 0.3, wd 0.1, 35 epochs (5 warmup), gradient clipping 5.0. Model zoo: K710 top-1 83.8 / top-5 96.4.
_base_ = ['vit-giant-p14_videomaev2-hybrid-pt_16x4x1_kinetics-400.py']

# Lists and videos under one folder: --cfg-options data_root=DIR re-points all three loaders (configs/README.md#data).
data_root = 'data/kinetics710'
train_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/k710_train_list_videos.txt', data_prefix=f'{data_root}/videos', num_classes=710))
val_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/k710_val_list_videos.txt', data_prefix=f'{data_root}/videos', num_classes=710))
test_dataloader = dict(dataset=dict(
    ann_file=f'{data_root}/k710_val_list_videos.txt', data_prefix=f'{data_root}/videos', num_classes=710))

model = dict(
    backbone=dict(num_classes=710, drop_path_rate=0.3),
    data_preprocessor=dict(num_classes=710),
    # Stage 1's output. A pre-training checkpoint goes in `pretrained` (converted: encoder kept, decoder dropped,
    # fc_norm and head fresh), not in `load_from`, which loads a state dict of this very model.
    pretrained='work_dirs/vit-giant-p14_videomaev2-pt-300e_16x4x1_unlabeled-hybrid/epoch_300.pth')
train_cfg = dict(max_epochs=35)
# lr = the official --lr 1e-3 (per 256 videos) x 96 / 256, for the script's 32 GPUs x 3 videos
# (base_batch_size). Another total batch keeps it unless tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=96)
optim_wrapper = dict(
    optimizer=dict(lr=3.75e-4, weight_decay=0.1), paramwise_cfg=dict(layer_decay_rate=0.9),
    clip_grad=dict(_delete_=True, max_norm=5.0))  # official --clip_grad 5.0 (total L2 norm)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-8 / 1e-3, end_factor=1.0, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / 1e-3, by_epoch=True, begin=5, end=35, T_max=30,
         convert_to_iter_based=True),
]

# the shipped Kinetics-710 names (docs/labels.md)
val_evaluator = dict(class_names='k710')
test_evaluator = dict(class_names='k710')
