# Full fine-tuning of a ViT-B pre-training (the output of configs/pretrain/videomaev2/vit-base-p16_videomaev2-pt-200e_*,
# or any ViT-B/16 encoder in a layout backbone.load_checkpoint reads) on Kinetics-400 and Something-Something v2 with
# the official recipes, tested multi-view, beside the V2-B figures (docs/evaluation.md#the-shipped-suites).
#
#     python tools/evaluate.py configs/suites/finetune_vit-b.py --checkpoint PATH
#
# Data under data_root (docs/evaluation.md#data-layout): kinetics400/ (kinetics400_{train,val}_list_videos.txt,
# videos_{train,val}/) and sthv2/ (annotations/{train,validation,labels}.json, videos/).
name = 'ViT-B pre-training, full fine-tuning'
data_root = 'data'
checkpoint = None  # yours; the official ViT-B pre-training has no released name (backbone/released.py)

recipes = 'configs/recognition/videomaev2/'
k400_config = recipes + 'vit-base-p16_videomaev2-hybrid-pt_16x4x1_kinetics-400.py'
ssv2_config = recipes + 'vit-base-p16_videomaev2-hybrid-pt_u16_ssv2.py'

# The encoder enters through model.pretrained (loaded strictly at the start of training, decoder dropped, fc_norm and
# head fresh). The recipes' GPU counts (scripts/finetune/vit_b_{k400,ssv2}_ft.sh): 32 x 16 and 16 x 16 videos.
# `partition` is your cluster's.
slurm = dict(type='slurm', partition='gpu', gpus_per_node=8, cpus_per_task=10)  # 10 loader workers per GPU
stages = [
    dict(name='k400', type='train_test', config=k400_config, launcher=dict(slurm, gpus=32),
         cfg_options=['data_root={data_root}/kinetics400', 'model.pretrained={checkpoint}']),
    dict(name='ssv2', type='train_test', config=ssv2_config, launcher=dict(slurm, gpus=16),
         cfg_options=['data_root={data_root}/sthv2', 'model.pretrained={checkpoint}']),
]

# VideoClsMetric reports fractions: scale=100 puts them in the published percents.
paper = 'V2 paper (Wang et al., CVPR 2023, arXiv 2303.16727), Tables 3 and 4: ViT-B, UnlabeledHybrid pre-training'
report = [
    dict(name='K400 top-1 (%), 5 clips x 3 crops', stage='k400', key='acc/top1', scale=100, published=81.5,
         source=paper, baseline=dict(value=1 / 400, label='chance, 400 classes')),
    dict(name='SSv2 top-1 (%), 2 clips x 3 crops', stage='ssv2', key='acc/top1', scale=100, published=71.2,
         source=paper, baseline=dict(value=1 / 174, label='chance, 174 classes')),
]
