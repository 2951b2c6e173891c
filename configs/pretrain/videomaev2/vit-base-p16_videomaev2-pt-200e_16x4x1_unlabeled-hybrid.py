# VideoMAE V2 ViT-B/16 dual-masked pre-training, the official recipe (OpenGVLab/VideoMAEv2:
# scripts/pretrain/vit_b_hybrid_pt.sh; docs/pretraining.md#encoder-and-decoder-sizes, docs/pretraining.md#tube-mask,
# docs/pretraining.md#running-cell-mask, docs/pretraining.md#recipe): tube mask 0.9 for the encoder, running-cell mask
# 0.5 for the decoder, 4 views per video, 32 videos per GPU on 32 GPUs (effective lr 1e-3 x 1024 / 256 = 4e-3),
# 200 epochs (800 with the views).
#
#   torchrun --nproc_per_node 8 tools/train.py configs/pretrain/videomaev2/<this file> --launcher pytorch
_base_ = [
    '../../_base_/models/videomaev2_pretrain_vit-base-p16.py',
    '../../_base_/datasets/unlabeled-hybrid_videos_pretrain_16x4.py',
    '../../_base_/schedules/videomaev2_pretrain_adamw_200e.py',
    '../../_base_/pretrain_runtime.py',
]
