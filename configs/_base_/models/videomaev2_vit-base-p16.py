# VideoMAE V2 ViT-B/16 video classifier for 16-frame 224x224 clips, built from stock mmaction2 parts around our
# backbone. Checkpoints in mmaction2 layout (`backbone.*`, `cls_head.fc_cls.*`; docs/checkpoints.md#mmaction2-layout)
# load into it with `load_from`.

# Importing `backbone` registers VideoMAEv2ViT in mmaction2's MODELS registry. Fail at start-up, not at build time,
# when our package is not installed (`pip install -e .` in the repository root).
custom_imports = dict(imports=['backbone'], allow_failed_imports=False)

model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='VideoMAEv2ViT',
        arch='vit_base',  # patch 16, C = 768, 12 blocks, 12 heads (docs/backbone.md#sizes)
        img_size=224,
        all_frames=16,  # 16 frames / tubelet 2 x (224 / 16)^2 = 8 x 14 x 14 = 1568 tokens per clip
        # No head in the backbone: it returns the (B, C) feature fc_norm(mean of tokens) and cls_head classifies.
        num_classes=0),
    cls_head=dict(
        type='TimeSformerHead',  # a single Linear(C -> K) on a (B, C) feature: the official `head`
        num_classes=400,
        in_channels=768,  # = the backbone width C
        # Softmax per view, then the mean over the views of one video: the official merge
        # (docs/classification.md#test-protocols-and-metrics).
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        # ImageNet mean/std (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) scaled to RGB 0-255 frames: x 255.
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        # (N, views, C, T, H, W); Recognizer3D folds the views into the batch.
        format_shape='NCTHW'))
