# Frozen-backbone evaluation of VideoMAE V2 ViT-g after K710 post-pre-training (official
# `mae-g/vit_g_hybrid_pt_1200e_k710_ft.pth`): Kinetics-400 linear probe and k-NN on cached clip features, THUMOS14
# ActionFormer on features from the official TAD extraction, and the AVA v2.2 detector of the V2 paper initialised from
# the same weights (docs/evaluation.md#the-shipped-suites).
#
#     python tools/evaluate.py configs/suites/frozen_vit-g.py [--checkpoint NAME_OR_PATH]
#
# Data under data_root (docs/evaluation.md#data-layout): kinetics400/ (kinetics400_{train,val}_list_videos.txt,
# videos_{train,val}/, class sub-folders allowed), thumos/ (annotations/thumos14.json, videos/ with the annotated
# validation and test videos), ava/ (annotations/ and videos_15min/, the layout of the AVA configs).
# Another ViT-g works through --checkpoint (a pre-training one gives self-supervised probes); another size needs its own
# --arch below and its THUMOS and AVA configs.
name = 'VideoMAE V2 ViT-g (K710), frozen backbone'
data_root = 'data'
checkpoint = 'vit_g_k710_ft'

k400 = '{data_root}/kinetics400'
thumos_config = 'configs/localization/thumos14/actionformer_vit-giant-p14_videomaev2-k710-ft-feat_16x4_thumos14.py'
ava_config = 'configs/detection/ava/vit-giant-p14_videomaev2-k710-ft_16xb8-16x4x1-10e-adamw_ava-v2.2.py'

# Kinetics windows as the classification protocol takes its clips (docs/classification.md#test-protocols-and-metrics):
# 16 frames every 4th, short side 224 and the central 224 crop (the centre view of the three test crops), ImageNet
# mean/std as in training. Stride 48 gives the test's 5 clips on a 10-s 30-fps video (starts 0-192 of 0-239; the
# extractor drops the tail a window cannot fill) and the probe averages a video's rows, as the test averages its views.
# bf16: the official test runs under (fp16) autocast too, and no published probe protocol asks for fp32.
k400_window = ['--arch', 'vit_giant', '--clip-len', '16', '--frame-interval', '4', '--stride', '48',
               '--short-side', '224', '--crop', 'center', '--normalize', '--dtype', 'bf16', '--recursive']
# The official TAD extraction (docs/thumos14.md#official-feature-extractor): windows of 16 consecutive frames starting
# every 4th frame, squashed to 224x224, no mean/std, float32 (the tool's defaults, spelled out so that the store's
# provenance can be read here).
thumos_window = ['--arch', 'vit_giant', '--clip-len', '16', '--frame-interval', '1', '--stride', '4',
                 '--resize', '224x224', '--no-normalize', '--dtype', 'fp32']

# Extraction has no recipe: one machine's 8 GPUs (torchrun) split the videos; drop `launcher` for one GPU.
extract_launcher = dict(type='pytorch', gpus=8)
# The AVA ViT-g recipe: 16 GPUs x 8 keyframes (V2 paper's batch 128). `partition` is your cluster's.
ava_launcher = dict(type='slurm', partition='gpu', gpus=16, gpus_per_node=8, cpus_per_task=8)

stages = [
    dict(name='k400_train_features', type='extract', videos=f'{k400}/videos_train', args=k400_window,
         launcher=extract_launcher),
    dict(name='k400_val_features', type='extract', videos=f'{k400}/videos_val', args=k400_window,
         launcher=extract_launcher),
    dict(name='k400_probe', type='probe', train='{k400_train_features.store}', val='{k400_val_features.store}',
         labels=[f'{k400}/kinetics400_train_list_videos.txt', f'{k400}/kinetics400_val_list_videos.txt'],
         args=['--device', 'cuda']),
    dict(name='thumos_features', type='extract', videos='{data_root}/thumos/videos', args=thumos_window,
         launcher=extract_launcher),
    # ActionFormer's recipe: batch 2 on one GPU
    dict(name='thumos', type='train_test', config=thumos_config,
         cfg_options=['data_root={data_root}/thumos', 'feature_store={thumos_features.store}']),
    # The detector fine-tunes the backbone from the suite's weights. The config validates every epoch and keeps the
    # best, which the V2 paper notes is an early one for ViT-g: the test takes that one.
    dict(name='ava', type='train_test', config=ava_config, launcher=ava_launcher, test_checkpoint='best',
         cfg_options=['data_root={data_root}/ava', 'model.backbone.pretrained={checkpoint}']),
]

# The metrics are fractions: scale=100 puts them in the published percents.
no_probe_figure = ('none published: neither the VideoMAE V2 paper nor its repository reports a frozen-backbone '
                   '(linear probe or k-NN) Kinetics-400 result; the K710 fine-tuning behind these weights saw the '
                   'Kinetics-400 labels')
chance1, chance5 = dict(value=1 / 400, label='chance, 400 classes'), dict(value=5 / 400, label='chance, 400 classes')
report = [
    dict(name='K400 linear probe top-1 (%)', stage='k400_probe', key='linear.top1', scale=100,
         source=no_probe_figure, baseline=chance1),
    dict(name='K400 linear probe top-5 (%)', stage='k400_probe', key='linear.top5', scale=100,
         source=no_probe_figure, baseline=chance5),
    dict(name='K400 k-NN top-1 (%)', stage='k400_probe', key='knn.top1', scale=100, source=no_probe_figure,
         baseline=chance1),
    dict(name='K400 k-NN top-5 (%)', stage='k400_probe', key='knn.top5', scale=100, source=no_probe_figure,
         baseline=chance5),
    dict(name='THUMOS14 average mAP (%), tIoU 0.3:0.7', stage='thumos', key='tad/mAP', scale=100, published=69.6,
         source='OpenGVLab/VideoMAEv2: TAD.md (docs folder; ActionFormer on V2-g features); V2 paper, temporal action '
                'detection results',
         baseline=dict(key='tad/random_mAP', label='random predictions')),
    dict(name='AVA v2.2 frame mAP@0.5 (%)', stage='ava', key='ava/mAP', scale=100, published=42.6,
         source='V2 paper, AVA v2.2 results (ViT-g after K710, tested on AIA person detections; this suite tests '
                'on mmaction2\'s FAIR proposals)',
         baseline=dict(key='ava/mAP_random', label='random scores on the proposals')),
]
