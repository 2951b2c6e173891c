# VideoMAE V2 ViT-B/16 fine-tuned for classification with the official recipe's model settings
# (OpenGVLab/VideoMAEv2: run_class_finetuning.py, scripts/finetune/vit_b_k400_ft.sh;
# docs/backbone.md#pooling-head-and-initialisation, docs/classification.md#fine-tuning-recipe), for 16-frame 224x224
# clips and Kinetics-400. Children change `arch`, the class count (in the backbone and the preprocessor), drop path,
# head dropout and `with_cp`.

# `backbone` registers the ViT; `tasks.classification` the dataset, collate function, model and preprocessor, and
# through `tasks.engine` and `tasks.data.epoch_sampler` the bf16 optimiser wrapper, the layer-decay constructor and
# the (epoch, index) sampler; its `metric` module VideoClsMetric. Fail at start-up when the repository is not
# importable (`pip install -e .`, or PYTHONPATH=<repository root>).
custom_imports = dict(imports=['backbone', 'tasks.classification', 'tasks.classification.metric'],
                      allow_failed_imports=False)

model = dict(
    type='VideoMAEv2Classifier',
    backbone=dict(
        arch='vit_base',  # patch 16, C = 768, 12 blocks (docs/backbone.md#sizes)
        img_size=224,
        all_frames=16,  # 16 frames / tubelet 2 x (224 / 16)^2 = 1568 tokens
        num_classes=400,  # the head: fc_norm(mean of tokens) -> dropout -> Linear(768 -> 400)
        drop_path_rate=0.1,  # official --drop_path 0.1 (ViT-B); block i gets 0.1 * i / 11
        head_drop_rate=0.0,  # official --head_drop_rate (0.5 only for ViT-H on Kinetics)
        init_scale=0.001,  # official --init_scale: the fresh head starts at trunc-normal(.02) x 0.001
        with_cp=False),  # official --with_checkpoint (ViT-H/g): recompute every block in backward
    # Cross-entropy smoothing for batches without Mixup targets (official --smoothing 0.1).
    label_smoothing=0.1,
    # Checkpoint loaded into the backbone when training starts, in any layout (official pre-trained file, our
    # pre-training output, a fine-tuned file). Set by the children; None trains from scratch.
    pretrained=None,
    data_preprocessor=dict(
        type='VideoMAEv2ClsPreprocessor',
        # ImageNet mean/std (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) x 255: the dataset hands over uint8 crops.
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        num_classes=400,  # = backbone.num_classes (the Mixup targets)
        # timm Mixup, per batch: mixup Beta(0.8, 0.8) or, with probability 0.5, CutMix Beta(1, 1) with one box for
        # every frame; targets smoothed by 0.1 (official --mixup 0.8 --cutmix 1.0 --mixup_switch_prob 0.5
        # --smoothing 0.1), trained with soft-target cross-entropy.
        mixup=dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, mode='batch', label_smoothing=0.1),
        erase_mode='pixel'))  # official --remode pixel: erased boxes get N(0, 1) noise per pixel and frame
