# Progressive training, stage 3 of 3: the K710 ViT-g (stage 2,
# vit-giant-p14_videomaev2-hybrid-pt_16x4x1_kinetics-710.py) fine-tuned on Kinetics-400
# (scripts/finetune/vit_g_k710_it_k400_ft.sh; docs/classification.md#fine-tuning-recipe): --lr 1e-5, layer decay 0.9,
# drop path 0.25, wd 0.1, 3 epochs with 1 warmup epoch. Model zoo top-1 / top-5: 88.4 / 98.0.
_base_ = ['vit-giant-p14_videomaev2-hybrid-pt_16x4x1_kinetics-400.py']

model = dict(
    backbone=dict(drop_path_rate=0.25),
    pretrained=None,
    # Stage 2's 710-way head keeps its K400 rows on load: new row i = K710 row label_710to400.json[i] (the official
    # misc/ file; or tasks.classification.label_map_between('label_map_k710.txt', 'label_map_k400.txt')).
    label_map='data/kinetics710/label_710to400.json')
# Stage 2's checkpoint, a state dict of this model with a 710-way head (sliced above).
load_from = 'work_dirs/vit-giant-p14_videomaev2-hybrid-pt_16x4x1_kinetics-710/epoch_35.pth'

train_cfg = dict(max_epochs=3, val_interval=1)
# lr = the official --lr 1e-5 (per 256 videos) x 96 / 256, for the script's 32 GPUs x 3 videos
# (base_batch_size). Another total batch keeps it unless tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=96)
optim_wrapper = dict(optimizer=dict(lr=3.75e-6, weight_decay=0.1), paramwise_cfg=dict(layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-8 / 1e-5, end_factor=1.0, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / 1e-5, by_epoch=True, begin=1, end=3, T_max=2,
         convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=1))
