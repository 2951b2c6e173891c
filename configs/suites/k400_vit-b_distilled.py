# Kinetics-400 top-1 / top-5 of the released distilled ViT-B (official `distill/vit_b_k710_dl_from_giant.pth`, a student
# of ViT-g on K710 with a 710-way head): the head is sliced to the 400 Kinetics-400 rows and renamed to the mmaction2
# layout, then the stock-mmaction2 test config runs the 16x4x1, 5 clips x 3 crops protocol on the validation videos
# (docs/evaluation.md#the-shipped-suites).
#
#     python tools/evaluate.py configs/suites/k400_vit-s_distilled.py [--checkpoint NAME_OR_PATH]
#
# Data under data_root (docs/evaluation.md#data-layout): kinetics400/kinetics400_val_list_videos.txt and
# kinetics400/videos_val/ (mmaction2's video list and videos), kinetics710/label_710to400.json (the official misc/ map).
name = 'Kinetics-400, distilled ViT-B'
data_root = 'data'
checkpoint = 'vit_b_k710_distill'  # another K710-headed ViT-B file: --checkpoint PATH

config = 'configs/recognition/videomaev2/vit-base-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400.py'
converted = '{stage_dir}/vit-base-p16_videomaev2-vit-g-dist-k710-pre_k400.pth'  # the config's load_from name

# No Kinetics-400 head was trained for the distilled models: the model zoo's K400 86.6 is of the same K710-headed file
# on the 400 Kinetics-400 classes, as here.
k400_top1 = 'OpenGVLab/VideoMAEv2: MODEL_ZOO.md (docs folder), Distillation table (ViT-base, K400 top-1, 16x5x3)'
k400_top5 = ('open-mmlab/mmaction2: configs/recognition/videomaev2/README.md (its own re-test, top5 acc; the official '
             'model zoo gives no top-5 for the distilled models)')

stages = [
    dict(name='convert', type='tool', script='tools/convert_checkpoint.py',
         args=['{checkpoint}', converted, '--to', 'mmaction2',
               '--label-map', '{data_root}/kinetics710/label_710to400.json'],
         outputs=dict(checkpoint=converted)),
    dict(name='k400', type='test', config=config, checkpoint='{convert.checkpoint}',
         cfg_options=['data_root={data_root}/kinetics400']),
]

# mmaction2's AccMetric reports fractions: scale=100 puts them in the published percents; chance is 1 (5) in 400.
report = [
    dict(name='K400 top-1 (%), 5 clips x 3 crops', stage='k400', key='acc/top1', scale=100, published=86.6,
         source=k400_top1, baseline=dict(value=1 / 400, label='chance, 400 classes')),
    dict(name='K400 top-5 (%), 5 clips x 3 crops', stage='k400', key='acc/top5', scale=100, published=97.3,
         source=k400_top5, baseline=dict(value=5 / 400, label='chance, 400 classes')),
]
