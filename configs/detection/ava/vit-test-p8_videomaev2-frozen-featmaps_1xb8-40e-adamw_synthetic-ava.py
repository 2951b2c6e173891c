# The RoI head of the tiny synthetic AVA config trained and tested on cached feature maps of a frozen backbone
# (docs/ava.md#from-cached-feature-maps): the same keyframes, boxes, labels, head, metric and outputs as the on-line
# config, without a backbone forward per keyframe and epoch. The maps are the on-line config's test clips (no
# training augmentation: a frozen backbone's features are computed once).
#
#   python tools/make_synthetic.py --out data/synthetic --preset default
#   python tools/extract_features.py data/synthetic/ava/videos --kind featmap --random-init \
#       --config configs/detection/ava/vit-test-p8_videomaev2_1xb8-8x4x1-40e-adamw_synthetic-ava.py \
#       --keyframes data/synthetic/ava/annotations/ava_train_v2.2.csv \
#       --keyframes data/synthetic/ava/annotations/ava_val_v2.2.csv \
#       --store-dtype fp32 --out data/synthetic/ava/featmaps/vit-test-p8_random-init.h5
#   python tools/train.py configs/detection/ava/<this file> --work-dir work_dirs/ava_tiny_cached
#   python tools/test.py configs/detection/ava/<this file> work_dirs/ava_tiny_cached/epoch_40.pth \
#       --work-dir work_dirs/ava_tiny_cached
_base_ = ['./vit-test-p8_videomaev2_1xb8-8x4x1-40e-adamw_synthetic-ava.py']

data_root = 'data/synthetic/ava'
# the maps of the frozen backbone (here the on-line config's random init, seed 0: a frozen-random baseline; extract
# with --checkpoint for pre-trained weights)
featmap_store = f'{data_root}/featmaps/vit-test-p8_random-init.h5'

model = dict(
    _delete_=True,
    type='VideoMAEv2AVACachedDetector',
    in_channels=64,  # vit_test's width
    patch_size=8,  # the on-line config's patches: one map cell per 8 input pixels
    roi_head=dict(num_classes=6, dropout=0.0))  # as the on-line config

# training reads the test clips too (short side 96, the on-line test set's), whose maps the store holds
train_dataloader = dict(dataset=dict(type='VideoMAEv2AVAFeatmapDataset', featmap_store=featmap_store,
                                     test_short_side=96, cache_videos_mb=0))
test_dataloader = dict(dataset=dict(type='VideoMAEv2AVAFeatmapDataset', featmap_store=featmap_store,
                                    cache_videos_mb=0))

# No backbone, so no layer decay: plain AdamW with the on-line config's lr, betas, weight decay and clipping.
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='AdamW', lr=3e-3, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=40, norm_type=2))
