# ActionFormer on distilled VideoMAE V2 ViT-B features (768-d; vit_b_k710_dl_from_giant.pth,
# docs/checkpoints.md#released-files), same windows (16 frames every 4) and recipe as the V2-g config. No reported
# THUMOS14 number for these features.
#
#   python tools/extract_features.py data/thumos/videos --out data/thumos/features/th14_vit-b_16x4.h5 \
#       --arch vit_base --checkpoint vit_b_k710_dl_from_giant.pth --no-normalize
_base_ = ['./actionformer_vit-giant-p14_videomaev2-k710-ft-feat_16x4_thumos14.py']

data_root = 'data/thumos'  # as in the base (a child cannot use the base's variables)
feature_store = f'{data_root}/features/th14_vit-b_16x4.h5'  # 768-d: model.in_dim below

model = dict(in_dim=768)
train_dataloader = dict(dataset=dict(feature_store=feature_store))
test_dataloader = dict(dataset=dict(feature_store=feature_store))
