# ViT-g/14 on UCF101 split 1 (docs/classification.md#fine-tuning-recipe, docs/classification.md#reported-accuracies):
# lr 1e-3, 50 epochs, drop path 0.35, head dropout 0.5; reported top-1 99.6.
# Assumptions (not published): it starts from the K710 ViT-g (the output of
# vit-giant-p14_videomaev2-hybrid-pt_16x4x1_kinetics-710.py, or the official vit_g_hybrid_pt_1200e_k710_ft.pth) with a
# fresh 101-way head, layer decay 0.9 and the code-default wd 0.05 and 5 warmup epochs, and the 5 x 3 test views.
_base_ = [
    '../../_base_/models/videomaev2_cls_vit-base-p16.py',
    '../../_base_/datasets/ucf101_videos_cls_16x4.py',
    '../../_base_/schedules/videomaev2_ft_adamw.py',
    '../../_base_/finetune_runtime.py',
]

model = dict(
    backbone=dict(arch='vit_giant', num_classes=101, drop_path_rate=0.35, head_drop_rate=0.5, with_cp=True),
    data_preprocessor=dict(num_classes=101),
    pretrained='work_dirs/vit-giant-p14_videomaev2-hybrid-pt_16x4x1_kinetics-710/epoch_35.pth',
    reset_head=True)  # Kinetics classes do not map onto UCF101: a fresh head, fc_norm and the blocks from the file
train_cfg = dict(max_epochs=50)
# lr = the official --lr 1e-3 (per 256 videos) x 96 / 256, for 32 GPUs x 3 videos (assumed: the ViT-g K710 script's)
# (base_batch_size). Another total batch keeps it unless tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=96)
optim_wrapper = dict(optimizer=dict(lr=3.75e-4, weight_decay=0.05), paramwise_cfg=dict(layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-8 / 1e-3, end_factor=1.0, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / 1e-3, by_epoch=True, begin=5, end=50, T_max=45,
         convert_to_iter_based=True),
]
