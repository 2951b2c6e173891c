# What `make demo` runs: every task's tool on the default synthetic benchmark, from a tiny dual-masked pre-training
# (2 epochs, ~1 minute on 2 cores; docs/experiments.md#demo-run-time). No published figure exists for the synthetic
# benchmark; the baselines say what each number means.
#
#     make demo    # = python tools/evaluate.py configs/suites/synthetic_demo.py --work-dir work_dirs/demo
name = 'synthetic benchmark (make demo)'
data_root = 'data/synthetic'
checkpoint = None  # the stages use the suite's own pre-training

pretrain_config = 'configs/pretrain/videomaev2/vit-test-p16_videomaev2-pt-2e_8x2x1_synthetic.py'
finetune_config = 'configs/recognition/videomaev2/vit-test-p16_videomaev2-ft_8x4x1_synthetic.py'
ava_config = 'configs/detection/ava/vit-test-p8_videomaev2_1xb8-8x4x1-40e-adamw_synthetic-ava.py'
thumos_config = 'configs/localization/thumos14/actionformer_vit-test-p16_synthetic-feat_16x4_synthetic-thumos.py'

# The tiny model was pre-trained on 8 frames every 2nd, so windows are 8 x 2 (a 16-frame span, like the official 16 x 1)
# on the whole 128x96 frame (a 6 x 8 token grid; the sinusoid position embedding fits any grid), normalised with
# ImageNet mean/std as in pre-training (the extractor's default is the official TAD preprocessing, /255 only); every 4
# frames for THUMOS (the official stride), every 8 for the probe (which averages a video's rows: half the cost).
window = ['--arch', 'vit_test', '--clip-len', '8', '--frame-interval', '2', '--resize', '96x128', '--normalize',
          '--batch-size', '32']
cls = '{data_root}/classification'
labels = [f'{cls}/train_list_videos.txt', f'{cls}/val_list_videos.txt']

stages = [
    dict(name='data', type='synthetic', preset='default', seed=0),
    dict(name='pretrain', type='train', config=pretrain_config, relocate=True),
    # the paper-style picture of one masked validation clip and its reconstruction
    dict(name='reconstruction', type='tool', script='tools/visualize_reconstruction.py',
         args=[pretrain_config, '{pretrain.checkpoint}', f'{cls}/val_list_videos.txt',
               '--out', '{stage_dir}/reconstruction.png'],
         outputs=dict(picture='{stage_dir}/reconstruction.png')),
    dict(name='features', type='extract', videos=f'{cls}/videos', checkpoint='{pretrain.checkpoint}',
         args=window + ['--stride', '8']),
    dict(name='features_random', type='extract', videos=f'{cls}/videos', random_init=True,
         args=window + ['--stride', '8']),
    dict(name='probe', type='probe', train='{features.store}', labels=labels),
    dict(name='probe_random', type='probe', train='{features_random.store}', labels=labels),
    # no validation passes: the multi-view test is the evaluation
    dict(name='finetune', type='train_test', config=finetune_config, relocate=True,
         cfg_options=['model.pretrained={pretrain.checkpoint}', 'train_cfg.val_interval=1000']),
    dict(name='ava', type='train_test', config=ava_config, relocate=True),
    # THUMOS14 features come from a fine-tuned backbone (docs/thumos14.md#official-feature-extractor)
    dict(name='thumos_features', type='extract', videos='{data_root}/thumos/videos',
         checkpoint='{finetune.checkpoint}', args=window + ['--stride', '4']),
    dict(name='thumos', type='train_test', config=thumos_config, relocate=True,
         cfg_options=['train_dataloader.dataset.feature_store={thumos_features.store}',
                      'test_dataloader.dataset.feature_store={thumos_features.store}']),
]

# No published figure exists for the synthetic benchmark; the baselines say what the numbers mean.
report = [
    dict(name='pre-training loss, last iteration', stage='pretrain', key='last_loss',
         baseline=dict(key='first_loss', label='first iteration')),
    dict(name='linear probe top-1', stage='probe', key='linear.top1',
         baseline=dict(stage='probe_random', key='linear.top1', label='random init')),
    dict(name='k-NN top-1', stage='probe', key='knn.top1',
         baseline=dict(stage='probe_random', key='knn.top1', label='random init')),
    dict(name='fine-tune top-1, 2 clips x 3 crops', stage='finetune', key='top1',
         baseline=dict(value=0.1, label='chance, 10 classes')),
    dict(name='fine-tune top-5, 2 clips x 3 crops', stage='finetune', key='top5',
         baseline=dict(value=0.5, label='chance, 10 classes')),
    dict(name='AVA-like frame mAP@0.5', stage='ava', key='mAP',
         baseline=dict(key='mAP_random', label='random scores on the proposals')),
    dict(name='AVA-like, random detections', stage='ava', key='mAP_random_boxes'),
    dict(name='AVA-like, ceiling of the proposals', stage='ava', key='mAP_oracle'),
    dict(name='THUMOS-like average mAP (tIoU 0.3:0.7)', stage='thumos', key='mAP',
         baseline=dict(key='random_mAP', label='random predictions')),
]
