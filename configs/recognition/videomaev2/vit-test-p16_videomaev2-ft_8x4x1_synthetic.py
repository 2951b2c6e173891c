# Tiny CPU fine-tuning run: the `vit_test` ViT (64-d, 2 blocks) on the classification set of the synthetic benchmark
# (10 temporal-order classes, SSv2 style; tasks/data/synthetic/README.md), with the official fine-tuning machinery
# (random resized crop, label smoothing, AdamW, warmup + cosine, multi-view test) at a size that trains in about three
# minutes on 2 cores. What differs from the recipe is commented where it is set: one view per video, no RandAugment,
# random erasing or Mixup/CutMix, no layer-wise decay, a higher lr, a head initialised at full scale, and time
# reversal with label swap added. The measurements behind each change, and the top-1 over seeds, are in
# docs/experiments.md#tiny-fine-tuning.
#
#   python tools/make_synthetic.py --out data/synthetic --preset default      # 480 train / 100 val clips of 64 frames
#   python tools/train.py configs/recognition/videomaev2/<this file> --work-dir work_dirs/ft-tiny
#   python tools/test.py configs/recognition/videomaev2/<this file> work_dirs/ft-tiny/epoch_50.pth
#
# From random init by default; to start from the tiny pre-training run add
#   --cfg-options model.pretrained=work_dirs/pt-tiny/epoch_7.pth
# (configs/pretrain/videomaev2/vit-test-p16_videomaev2-pt-7e_8x2x1_synthetic.py; its encoder loads into the backbone,
# fc_norm and head start fresh).
_base_ = [
    '../../_base_/models/videomaev2_cls_vit-base-p16.py',
    '../../_base_/schedules/videomaev2_ft_adamw.py',
    '../../_base_/finetune_runtime.py',
]

model = dict(
    backbone=dict(
        arch='vit_test',
        img_size=96,  # 128x96 videos: 96x96 crops
        all_frames=8,  # 8 frames / 2 x (96 / 16)^2 = 4 x 6 x 6 = 144 tokens
        num_classes=10,
        drop_path_rate=0.0,  # 2 blocks: nothing to drop
        # The fresh head at full trunc-normal(.02) scale (recipe: x 0.001, which makes the escape from the chance
        # plateau depend on the seed within this run's length).
        init_scale=1.0),
    # No Mixup/CutMix (recipe: 0.8 / 1.0): in a 1000-step run they slow the escape from the chance plateau.
    data_preprocessor=dict(num_classes=10, mixup=None))

data_root = 'data/synthetic/classification'
train_dataloader = dict(
    batch_size=16,  # 16 videos x 1 view per step; 480 videos -> 30 steps per epoch
    num_workers=2,
    persistent_workers=True,
    pin_memory=False,
    # Keep a last partial batch (recipe: drop it, for Mixup's even batches; no Mixup here): the default preset's 480
    # videos make whole batches anyway, and the tiny preset's 10 make one.
    drop_last=False,
    sampler=dict(type='EpochIndexSampler', shuffle=True),
    collate_fn=dict(type='videomaev2_cls_collate'),
    dataset=dict(
        type='VideoMAEv2ClsDataset',
        ann_file=f'{data_root}/train_list_videos.txt',  # written by tools/make_synthetic.py (`path label` lines)
        data_prefix=data_root,
        ann_format='video',
        num_classes=10,
        sampling='dense',
        clip_len=8,
        # 8 frames every 4th frame from a random 32-frame window (of 64): the objects move 4-6 px per sampled frame.
        frame_interval=4,
        input_size=96,
        # One view per video (recipe: 2 repeated-augmentation views): views of one decoded clip are too alike to
        # count as separate samples for this tiny set (more views per video learned less).
        num_sample=1,
        # No RandAugment and no random erasing (recipe: rand-m7-n4-mstd0.5-inc1, reprob 0.25): on 2 cores they cost
        # 5x the rest of the pipeline, and the model learns without them.
        rand_augment=None,
        # A crop of at least 40 % of the frame (recipe: 8 %): each of a clip's three objects covers ~5-10 % of the
        # 128x96 frame, and smaller crops would often cut them out.
        rrc_scale=(0.4, 1.0),
        rrc_ratio=(0.75, 1.3333),
        flip=False,  # the classes name directions (left/right, clockwise/anticlockwise), as in SSv2
        reprob=0.0,
        recount=1,
        # Not in the recipe: the classes come in time-reversed pairs, so half the clips are played backwards and take
        # the partner's label (0 Growing <-> 9 Shrinking, 1 down <-> 6 up, 2 left-to-right <-> 3 right-to-left,
        # 4 clockwise <-> 5 anticlockwise circle, 7 <-> 8 rotating). Every training video's look then carries two
        # labels, so it cannot be memorised instead of its motion.
        reverse_prob=0.5,
        reverse_label_map=[9, 6, 3, 2, 5, 4, 1, 8, 7, 0],
        backend='auto',
        # 480 videos x 64 frames x 128x96 = 1.1 GiB per worker: every video is decoded once, not once per epoch
        # (decoding is ~90 % of a sample's cost here).
        cache_videos_mb=1400,
        seed=0))

_test_dataset = dict(
    type='VideoMAEv2ClsDataset',
    ann_file=f'{data_root}/val_list_videos.txt',
    data_prefix=data_root,
    ann_format='video',
    num_classes=10,
    # the names of labels.json in id order (tasks.data.synthetic.classification.CLASSES), for cls_confusion.png
    class_names=['Growing something', 'Moving something down', 'Moving something from left to right',
                 'Moving something from right to left', 'Moving something in a clockwise circle',
                 'Moving something in an anticlockwise circle', 'Moving something up',
                 'Rotating something anticlockwise', 'Rotating something clockwise', 'Shrinking something'],
    test_mode=True,
    sampling='dense',
    clip_len=8,
    frame_interval=4,
    input_size=96,
    short_side=96,  # no resize: the videos are 96 px high
    backend='auto')
# Validation during training: the middle clip, centre crop.
val_dataloader = dict(
    batch_size=8, num_workers=2, persistent_workers=True, sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='videomaev2_cls_collate'), dataset=dict(_test_dataset, num_clips=1, num_crops=1))
# Test: 2 clips x 3 crops (left, centre, right of the 128 px width) = 6 views per video.
test_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=True, sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='videomaev2_cls_collate'), dataset=dict(_test_dataset, num_clips=2, num_crops=3))
val_evaluator = dict(type='VideoClsMetric', topk=(1, 5))
test_evaluator = dict(type='VideoClsMetric', topk=(1, 5))

max_epochs = 50  # 1500 iterations of 16 clips
auto_scale_lr = dict(enable=False, base_batch_size=16)  # the lr below is for one process x 16 videos
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_begin=1, val_interval=10)
optim_wrapper = dict(
    # 3e-3 at 16 videos per step (4.8e-2 per 256 videos; at 1e-3 the model does not leave the ln 10 plateau within
    # this run).
    optimizer=dict(lr=3e-3, weight_decay=0.05),
    # No layer-wise decay (recipe: 0.75 for ViT-B): with 2 blocks it would train the patch embedding at 0.42x.
    paramwise_cfg=dict(layer_decay_rate=1.0))
# warmup_lr / lr and min_lr / lr as in the recipe (1e-8 / 7e-4 and 1e-6 / 7e-4); 5 warmup epochs of 50.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-8 / 7e-4, end_factor=1.0, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / 7e-4, by_epoch=True, begin=5, end=max_epochs,
         T_max=max_epochs - 5, convert_to_iter_based=True),
]

default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=10, max_keep_ckpts=1))
