# The smallest suite, shaped like the frozen-backbone one (configs/suites/frozen_vit-g.py) on the tiny synthetic
# benchmark (tasks/data/synthetic, `tiny` preset, in the real datasets' formats: mmaction2 video lists as Kinetics,
# an ActionFormer json as THUMOS14, AVA v2.2 csv files): linear probe and k-NN on cached features of one checkpoint
# against a randomly initialised backbone, ActionFormer on its THUMOS-like features, and the AVA-like detector.
# A minute or two on a CPU; the tests of tools/evaluate.py run it.
#
#     python tools/evaluate.py configs/suites/synthetic_tiny.py --checkpoint PATH_OR_NAME
name = 'synthetic benchmark (tiny), frozen backbone'
data_root = 'data/synthetic-tiny'
# a vit_test checkpoint (the --arch below): e.g. make demo's work_dirs/demo/pretrain/train/epoch_2.pth
checkpoint = None

# 8 frames every 2nd (a 16-frame span) every 8 frames on the whole 128x96 frame, normalised with ImageNet mean/std:
# the demo's probe extraction (configs/suites/synthetic_demo.py), one window per 16-frame tiny clip.
extract_args = ['--arch', 'vit_test', '--clip-len', '8', '--frame-interval', '2', '--stride', '8',
                '--resize', '96x128', '--normalize', '--batch-size', '32']
labels = ['{data_root}/classification/train_list_videos.txt', '{data_root}/classification/val_list_videos.txt']
thumos_config = 'configs/localization/thumos14/actionformer_vit-test-p16_synthetic-feat_16x4_synthetic-thumos.py'
ava_config = 'configs/detection/ava/vit-test-p8_videomaev2_1xb8-8x4x1-40e-adamw_synthetic-ava.py'

stages = [
    dict(name='data', type='synthetic', preset='tiny', seed=0),
    dict(name='features', type='extract', videos='{data_root}/classification/videos', args=extract_args),
    dict(name='features_random', type='extract', videos='{data_root}/classification/videos', args=extract_args,
         random_init=True, seed=0),
    # one store holds both splits: the label files pick the videos of each
    dict(name='probe', type='probe', train='{features.store}', labels=labels),
    dict(name='probe_random', type='probe', train='{features_random.store}', labels=labels),
    # every 4 frames, the official THUMOS14 stride; one training video: batches of 1
    dict(name='thumos_features', type='extract', videos='{data_root}/thumos/videos',
         args=[*extract_args[:6], '--stride', '4', *extract_args[8:]]),
    dict(name='thumos', type='train_test', config=thumos_config, relocate=True,
         cfg_options=['train_dataloader.dataset.feature_store={thumos_features.store}',
                      'test_dataloader.dataset.feature_store={thumos_features.store}', 'train_cfg.max_epochs=4',
                      'train_dataloader.batch_size=1']),
    # the tiny detector config trains its own patch-8 ViT: the suite's checkpoint does not fit it
    dict(name='ava', type='train_test', config=ava_config, relocate=True, cfg_options=['train_cfg.max_epochs=2']),
]

# No published figure exists for the synthetic benchmark; the baselines say what the numbers mean.
report = [
    dict(name='linear probe top-1 (%)', stage='probe', key='linear.top1', scale=100,
         baseline=dict(stage='probe_random', key='linear.top1', label='random init')),
    dict(name='k-NN top-1 (%)', stage='probe', key='knn.top1', scale=100,
         baseline=dict(stage='probe_random', key='knn.top1', label='random init')),
    dict(name='THUMOS-like average mAP (%), tIoU 0.3:0.7', stage='thumos', key='mAP', scale=100,
         baseline=dict(key='random_mAP', label='random predictions')),
    dict(name='AVA-like frame mAP@0.5 (%)', stage='ava', key='mAP', scale=100,
         baseline=dict(key='mAP_random', label='random scores on the proposals')),
]
