# The smallest suite: frozen-backbone classification (linear probe and k-NN on cached features) of the tiny synthetic
# benchmark (tasks/data/synthetic, `tiny` preset: 10 classes x 1 train + 1 val clip, laid out as SSv2/mmaction2 lists),
# for one checkpoint against a randomly initialised backbone. Seconds on a CPU; the tests of tools/evaluate.py run it.
#
#     python tools/evaluate.py configs/suites/synthetic_tiny.py --checkpoint PATH_OR_NAME
name = 'synthetic benchmark (tiny), frozen backbone'
data_root = 'data/synthetic-tiny'
checkpoint = None  # a vit_test checkpoint (the --arch below): e.g. the demo's work_dirs/demo/pretrain/epoch_2.pth

# 8 frames every 2nd (a 16-frame span) every 8 frames on the whole 128x96 frame, normalised with ImageNet mean/std:
# the demo's probe extraction (tasks/demo.py: PROBE_EXTRACT_ARGS), one window per 16-frame tiny clip.
extract_args = ['--arch', 'vit_test', '--clip-len', '8', '--frame-interval', '2', '--stride', '8',
                '--resize', '96x128', '--normalize', '--batch-size', '32']
labels = ['{data_root}/classification/train_list_videos.txt', '{data_root}/classification/val_list_videos.txt']

stages = [
    dict(name='data', type='synthetic', preset='tiny', seed=0),
    dict(name='features', type='extract', videos='{data_root}/classification/videos', args=extract_args),
    dict(name='features_random', type='extract', videos='{data_root}/classification/videos', args=extract_args,
         random_init=True, seed=0),
    # one store holds both splits: the label files pick the videos of each
    dict(name='probe', type='probe', train='{features.store}', labels=labels),
    dict(name='probe_random', type='probe', train='{features_random.store}', labels=labels),
]

# No published figure exists for the synthetic benchmark; the baselines say what the numbers mean.
report = [
    dict(name='linear probe top-1 (%)', stage='probe', key='linear.top1', scale=100,
         baseline=dict(stage='probe_random', key='linear.top1', label='random init')),
    dict(name='k-NN top-1 (%)', stage='probe', key='knn.top1', scale=100,
         baseline=dict(stage='probe_random', key='knn.top1', label='random init')),
]
