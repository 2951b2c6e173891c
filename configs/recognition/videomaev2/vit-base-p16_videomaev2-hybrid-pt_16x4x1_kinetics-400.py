# VideoMAE V2 ViT-B/16 fine-tuned on Kinetics-400 from the UnlabeledHybrid pre-training, the official recipe
# (OpenGVLab/VideoMAEv2: scripts/finetune/vit_b_k400_ft.sh; docs/classification.md#fine-tuning-recipe): 32 GPUs x 16
# videos x 2 RA views, --lr 7e-4 (effective 1.4e-3), layer decay 0.75, drop path 0.1, 90 epochs (5 warmup), tested with
# 5 clips x 3 crops. Reported top-1: 81.5 (V2 paper, Table 3; 77.0 with a single view).
#
#   torchrun --nproc_per_node 8 tools/train.py configs/recognition/videomaev2/<this file> --launcher pytorch
#   python tools/test.py configs/recognition/videomaev2/<this file> work_dirs/<this file>/best_*.pth
_base_ = [
    '../../_base_/models/videomaev2_cls_vit-base-p16.py',
    '../../_base_/datasets/kinetics400_videos_cls_16x4.py',
    '../../_base_/schedules/videomaev2_ft_adamw.py',
    '../../_base_/finetune_runtime.py',
]

# The official pre-trained encoder (mae-b, docs/checkpoints.md#released-files), or the output of our pre-training config
# (work_dirs/vit-base-p16_videomaev2-pt-200e_16x4x1_unlabeled-hybrid/epoch_200.pth): loaded strictly at the start of
# training, decoder dropped, fc_norm and head fresh.
model = dict(pretrained='checkpoints/videomaev2/mae-b/vit_b_hybrid_pt_800e.pth')
