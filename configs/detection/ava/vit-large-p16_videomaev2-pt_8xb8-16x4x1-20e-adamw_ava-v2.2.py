# AVA v2.2 with a VideoMAE V2 ViT-L/16: the ViT-B config with mmaction2's ViT-L recipe (docs/ava.md#data-and-schedules):
# lr 2.5e-4 for 64 keyframes per step, layer decay 0.8 over 24 blocks, same data, schedule and head. VideoMAE V1 ViT-L
# reaches 34.3 mAP from K400 self-supervised pre-training alone and 37.0 with K400 fine-tuning
# (docs/ava.md#reported-map).
#
# The V2 release has no fine-tuned ViT-L (VideoMAEv2 issue #44), so the backbone starts from the pre-trained
# encoder (OpenGVLab/VideoMAE2 `mae-l/pytorch_model.bin`; backbone.load_checkpoint drops the decoder and checks
# the rest). Start from a Kinetics fine-tuned ViT-L instead where you have one: it is worth ~3 mAP
# (docs/ava.md#reported-map).
_base_ = ['./vit-base-p16_videomaev2-vit-g-dist-k710-pre_8xb8-16x4x1-20e-adamw_ava-v2.2.py']

model = dict(
    backbone=dict(
        arch='vit_large',  # patch 16, C = 1024, 24 blocks; roi_head.in_channels follows the backbone
        pretrained='checkpoints/videomaev2/mae-l/pytorch_model.bin'))

optim_wrapper = dict(
    optimizer=dict(lr=2.5e-4),
    paramwise_cfg=dict(layer_decay_rate=0.8))  # blocks.k gets 0.8^(24 - k) of the lr
