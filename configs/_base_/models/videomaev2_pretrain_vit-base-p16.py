# VideoMAE V2 dual-masked pre-training model, ViT-B/16 encoder + 4-block 384-d decoder
# (docs/pretraining.md#encoder-and-decoder-sizes), for 16-frame 224x224 clips. Children change `arch` (the decoder
# size follows it) and, for ViT-H/g, `with_cp`.

# `backbone` holds the model, `tasks.pretrain` registers the mmengine pieces (model wrapper, dataset, collate
# function, hook) and, through `tasks.engine` and `tasks.data.epoch_sampler`, the bf16 optimiser wrapper and the
# (epoch, index) sampler. Fail at start-up when the repository is not importable (`pip install -e .` in its root, or
# PYTHONPATH=<root>).
custom_imports = dict(imports=['backbone', 'tasks.pretrain'], allow_failed_imports=False)

model = dict(
    type='VideoMAEv2PretrainModel',
    # encoder C = 768, 12 blocks; decoder 384-d, 6 heads (docs/pretraining.md#encoder-and-decoder-sizes)
    arch='vit_base',
    img_size=224,
    all_frames=16,  # 16 frames / tubelet 2 x (224 / 16)^2 = 8 x 14 x 14 = 1568 tokens
    decoder_depth=4,  # what every official script passes (--decoder_depth 4; the class default is 8)
    normalize_target=True,  # official --normlize_target (sic), default True: per-patch, per-channel targets
    with_cp=False,  # activation checkpointing (--with_checkpoint): the ViT-H and ViT-g scripts turn it on
    data_preprocessor=dict(
        type='VideoMAEv2PretrainPreprocessor',
        # ImageNet mean/std (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) x 255: the dataset hands over uint8 crops.
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375]))
