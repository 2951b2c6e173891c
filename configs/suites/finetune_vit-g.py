# Full fine-tuning of VideoMAE V2 ViT-g from its UnlabeledHybrid pre-training (official
# `mae-g/vit_g_hybrid_pt_1200e.pth`, or another ViT-g/14 encoder through --checkpoint) on Kinetics-400 (direct, without
# the K710 stage) and Something-Something v2 with the official recipes, tested multi-view
# (docs/evaluation.md#the-shipped-suites).
#
#     python tools/evaluate.py configs/suites/finetune_vit-g.py [--checkpoint NAME_OR_PATH]
#
# Data under data_root (docs/evaluation.md#data-layout): kinetics400/ (kinetics400_{train,val}_list_videos.txt,
# videos_{train,val}/) and sthv2/ (annotations/{train,validation,labels}.json, videos/).
name = 'VideoMAE V2 ViT-g pre-training, full fine-tuning'
data_root = 'data'
checkpoint = 'vit_g_hybrid_pt'

recipes = 'configs/recognition/videomaev2/'
k400_config = recipes + 'vit-giant-p14_videomaev2-hybrid-pt_16x4x1_kinetics-400.py'
ssv2_config = recipes + 'vit-giant-p14_videomaev2-hybrid-pt_u16_ssv2.py'

# The encoder enters through model.pretrained. The recipes' GPU counts (scripts/finetune/vit_g_{k400,ssv2}_ft.sh):
# 64 x 3 and 32 x 3 videos. `partition` is your cluster's.
slurm = dict(type='slurm', partition='gpu', gpus_per_node=8, cpus_per_task=10)  # 10 loader workers per GPU
stages = [
    dict(name='k400', type='train_test', config=k400_config, launcher=dict(slurm, gpus=64),
         cfg_options=['data_root={data_root}/kinetics400', 'model.pretrained={checkpoint}']),
    dict(name='ssv2', type='train_test', config=ssv2_config, launcher=dict(slurm, gpus=32),
         cfg_options=['data_root={data_root}/sthv2', 'model.pretrained={checkpoint}']),
]

# VideoClsMetric reports fractions: scale=100 puts them in the published percents.
paper = 'V2 paper (Wang et al., CVPR 2023, arXiv 2303.16727), Tables 3 and 4: ViT-g, UnlabeledHybrid pre-training'
zoo = 'OpenGVLab/VideoMAEv2: MODEL_ZOO.md (docs folder), Fine-tune table ({}, top-5)'
report = [
    dict(name='K400 top-1 (%), 5 clips x 3 crops', stage='k400', key='acc/top1', scale=100, published=87.2,
         source=paper, baseline=dict(value=1 / 400, label='chance, 400 classes')),
    dict(name='K400 top-5 (%), 5 clips x 3 crops', stage='k400', key='acc/top5', scale=100, published=97.4,
         source=zoo.format('vit_g_hybrid_pt_1200e_k400_ft'), baseline=dict(value=5 / 400, label='chance, 400 classes')),
    dict(name='SSv2 top-1 (%), 2 clips x 3 crops', stage='ssv2', key='acc/top1', scale=100, published=77.0,
         source=paper, baseline=dict(value=1 / 174, label='chance, 174 classes')),
    dict(name='SSv2 top-5 (%), 2 clips x 3 crops', stage='ssv2', key='acc/top5', scale=100, published=95.9,
         source=zoo.format('vit_g_hybrid_pt_1200e_ssv2_ft'), baseline=dict(value=5 / 174, label='chance, 174 classes')),
]
