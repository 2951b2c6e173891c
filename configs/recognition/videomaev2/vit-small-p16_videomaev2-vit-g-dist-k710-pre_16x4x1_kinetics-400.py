# Distilled ViT-S (official `distill/vit_s_k710_dl_from_giant.pth`), same protocol as the ViT-B parent. Reported top-1 /
# top-5: 83.6 / 96.3 (mmaction2 re-test), 83.7 top-1 official (docs/classification.md#reported-accuracies).
_base_ = ['vit-base-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400.py']

model = dict(backbone=dict(arch='vit_small'), cls_head=dict(in_channels=384))  # ViT-S: C = 384, 6 heads
# Produced as for ViT-B, from vit_s_k710_dl_from_giant.pth.
load_from = 'checkpoints/vit-small-p16_videomaev2-vit-g-dist-k710-pre_k400.pth'
