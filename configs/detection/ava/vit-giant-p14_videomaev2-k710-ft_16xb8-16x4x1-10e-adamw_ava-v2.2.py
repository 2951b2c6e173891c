# AVA v2.2 with the VideoMAE V2 ViT-g/14 after K710 post-pre-training, the V2 paper's setting (42.6 mAP with AIA person
# detections; docs/ava.md#data-and-schedules, docs/ava.md#reported-map): lr 3e-4 for a batch of 128, 10 epochs with 2
# warmup epochs, drop path 0.3, layer decay 0.9, trained on ground-truth boxes only. (The paper trains 10 epochs, not
# the 20 of mmaction2's ViT-B/L recipe, and notes that ViT-g overfits AVA: the best epoch is an early one, which
# save_best keeps.)
#
# Patch 14: the RoI head reads spatial_scale = 1/14 from the backbone, so no stride setting is needed (mmaction2's
# default featmap_stride=16 would misalign every RoI). The 256-px test frames are padded to 266 = 19 x 14 by the
# data preprocessor (bottom/right, boxes unchanged); training crops are 252 = 18 x 14 so that no compute goes into
# padding.
_base_ = ['./vit-base-p16_videomaev2-vit-g-dist-k710-pre_8xb8-16x4x1-20e-adamw_ava-v2.2.py']

model = dict(
    backbone=dict(
        arch='vit_giant',  # patch 14, C = 1408, 40 blocks
        drop_path_rate=0.3,
        with_cp=True,  # activation checkpointing: 40 blocks x 16 frames do not fit otherwise
        # OpenGVLab/VideoMAE2 `mae-g/vit_g_hybrid_pt_1200e_k710_ft.pth` (fp16 under `module`, 710-way head dropped)
        pretrained='checkpoints/videomaev2/mae-g/vit_g_hybrid_pt_1200e_k710_ft.pth'))

train_dataloader = dict(
    batch_size=8,  # x 16 GPUs = 128 keyframes per step (V2 paper)
    dataset=dict(
        train_with_proposals=False,  # the V2 paper trains on ground-truth boxes
        train_scale=(252, 320),
        crop_size=252))  # 18 x 18 patches of 14

train_cfg = dict(max_epochs=10)
optim_wrapper = dict(
    optimizer=dict(lr=3e-4),
    paramwise_cfg=dict(layer_decay_rate=0.9))  # blocks.k gets 0.9^(40 - k) of the lr
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=2, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=8, eta_min=0, by_epoch=True, begin=2, end=10, convert_to_iter_based=True),
]
auto_scale_lr = dict(enable=False, base_batch_size=128)
