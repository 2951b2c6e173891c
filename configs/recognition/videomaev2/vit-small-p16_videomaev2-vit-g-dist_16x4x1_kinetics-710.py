# Distillation of the K710 ViT-g into ViT-S (C = 384, 6 heads): the ViT-B distillation recipe. Released result
# (distill/vit_s_k710_dl_from_giant.pth): K710 top-1 77.6, its head sliced to K400 83.7 / K600 83.1
# (docs/classification.md#reported-accuracies).
_base_ = ['vit-base-p16_videomaev2-vit-g-dist_16x4x1_kinetics-710.py']

model = dict(
    backbone=dict(arch='vit_small'),
    # no pre-trained ViT-S is released: the output of our ViT-S pre-training config
    pretrained='work_dirs/vit-small-p16_videomaev2-pt-200e_16x4x1_unlabeled-hybrid/epoch_200.pth')
