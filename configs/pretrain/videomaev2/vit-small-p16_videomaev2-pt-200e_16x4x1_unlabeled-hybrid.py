# ViT-S/16 pre-training with the ViT-B recipe. VideoMAE V2 publishes no ViT-S pre-training script (its ViT-S is
# distilled from ViT-g, docs/classification.md#reported-accuracies); the encoder/decoder sizes are those of the official
# pretrain_videomae_small_patch16_224 (C = 384, decoder 192-d, 3 heads; docs/pretraining.md#encoder-and-decoder-sizes).
_base_ = ['vit-base-p16_videomaev2-pt-200e_16x4x1_unlabeled-hybrid.py']

model = dict(arch='vit_small')
