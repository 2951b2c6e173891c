# ActionFormer on VideoMAE V2-g clip features, THUMOS14 (docs/thumos14.md#official-feature-extractor,
# docs/thumos14.md#actionformer): the recipe of ActionFormer's configs/thumos_i3d.yaml with the official V2 TAD
# features, 1408-d instead of I3D's 2048 (docs/thumos14.md#time-and-feature-rows: nothing else changes). Reported:
# 69.6 average mAP (V2 paper), 68.73 with the released features and the stock I3D recipe (VideoMAEv2 issue #86;
# docs/thumos14.md#reported-map).
#
#   python tools/extract_features.py data/thumos/videos --out data/thumos/features/th14_vit-g_16x4.h5 \
#       --arch vit_giant --checkpoint vit_g_hybrid_pt_1200e_k710_ft.pth --no-normalize
#   python tools/train.py configs/localization/thumos14/<this file>
#   python tools/test.py configs/localization/thumos14/<this file> work_dirs/<this name>/epoch_35.pth
#
# No stride, fps or offset appears below: the dataset maps seconds <-> feature rows with the fps, stride and clip
# centres stored in the feature store (feature_store/README.md), and refuses annotations whose fps disagrees.
_base_ = ['../../_base_/default_runtime.py']

custom_imports = dict(imports=['tasks.localization'], allow_failed_imports=False)

# Paths. tools/train.py and tools/test.py re-point both loaders with one key (configs/README.md#data):
# --cfg-options data_root=DIR (annotations and features under it), ann_file=A.json, feature_store=F.h5. The metric
# takes the ground truth from the test dataset.
data_root = 'data/thumos'
ann_file = f'{data_root}/annotations/thumos14.json'  # ActionFormer json (an OpenTAD json works too)
feature_store = f'{data_root}/features/th14_vit-g_16x4.h5'  # 1408-d: model.in_dim below

max_seq_len = 2304  # training window in feature rows; 2304 = 72 x 32 (divisible by the coarsest stride)

model = dict(
    type='ActionFormerTAD',
    in_dim=1408,  # ViT-g forward_features
    num_classes=20,
    embed_dim=512,
    arch=(2, 2, 5),  # 2 embedding convs, 2 stem blocks, 5 downsampling blocks: 6 levels, strides 1..32
    num_heads=4,
    window=19,  # local attention window in rows
    mlp_ratio=4,
    drop_path=0.1,
    proj_drop=0.0,
    input_drop=0.0,  # ActionFormer: none (OpenTAD uses 0.2)
    head_dim=512,
    head_layers=3,  # 2 x (conv + LN + ReLU) + output conv
    regression_ranges=[(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)],  # rows of each level's stride
    center_sample_radius=1.5,
    cls_prior_prob=0.01,
    init_loss_norm=100,  # EMA of #positives, momentum 0.9
    reg_loss_weight=1.0,
    test_cfg=dict(pre_nms_thresh=0.001, pre_nms_topk=2000, duration_thresh=0.05, nms_sigma=0.5, min_score=0.001,
                  max_seg_num=200),
    data_preprocessor=dict(type='TADDataPreprocessor', max_seq_len=max_seq_len, pad_multiple=32))

train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    pin_memory=True,  # page-locked batches: the preprocessor's non_blocking copies overlap the step
    drop_last=True,
    # yields (epoch, index): each epoch draws new crops, independent of the workers
    sampler=dict(type='EpochIndexSampler', shuffle=True),
    collate_fn=dict(type='tad_collate'),
    dataset=dict(type='TADFeatureDataset', ann_file=ann_file, feature_store=feature_store,
                 subset='train',  # THUMOS14 *validation* videos (docs/thumos14.md#classes-and-splits)
                 max_seq_len=max_seq_len, trunc_thresh=0.5, crop_ratio=(0.9, 1.0), seed=1234567891))

test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='tad_collate'),
    dataset=dict(type='TADFeatureDataset', ann_file=ann_file, feature_store=feature_store, subset='test',
                 test_mode=True))
test_evaluator = dict(type='TADmAPMetric', tious=(0.3, 0.4, 0.5, 0.6, 0.7), ambiguous_aware=False)
test_cfg = dict(type='TestLoop')
# ActionFormer evaluates once, after training
val_dataloader = None
val_evaluator = None
val_cfg = None

# AdamW 1e-4, weight decay 0.05 on conv/linear weights only (not on biases, LayerNorms, per-level and layer
# scales, whose parameter names contain 'norm' / 'scale'), gradient clipping at L2 norm 1.0.
optim_wrapper = dict(
    # mmengine's default constructor, logging one summary line instead of a line per parameter (tasks.engine)
    constructor='SummarizedOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=1.0, norm_type=2),
    paramwise_cfg=dict(bias_decay_mult=0.0, custom_keys={'norm': dict(decay_mult=0.0),
                                                         'scale': dict(decay_mult=0.0)}))

# ActionFormer's lr is for its batch of 2 on one GPU: another total batch keeps it unless
# tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=2)

warmup_epochs, cosine_epochs = 5, 30
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=warmup_epochs + cosine_epochs)
param_scheduler = [
    # linear warm-up from ~0 (ActionFormer starts at 0; LinearLR needs a positive factor), per iteration
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    # per-iteration cosine to ActionFormer's eta_min 1e-8 over the remaining 30 epochs
    dict(type='CosineAnnealingLR', eta_min=1e-8, by_epoch=True, begin=warmup_epochs,
         end=warmup_epochs + cosine_epochs, T_max=cosine_epochs, convert_to_iter_based=True),
]

# Model EMA with decay 0.999 per iteration: mmengine's momentum is 1 - decay. Test-time weights are the EMA ones
# (the hook swaps them in, and saved checkpoints hold them under state_dict).
custom_hooks = [dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.001, update_buffers=False)]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=5, save_best=None, max_keep_ckpts=2, save_last=True))

# ActionFormer's seed, + rank in process r (drop path differs per GPU); the training crops depend only on (dataset
# seed, epoch, index) (docs/classification.md#seeding-across-processes).
randomness = dict(seed=1234567891, diff_rank_seed=True, deterministic=False)
