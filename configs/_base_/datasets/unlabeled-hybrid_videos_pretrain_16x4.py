# Pre-training data of the VideoMAE V2 recipe (docs/pretraining.md#recipe): 16 frames every 4th frame from a random
# 64-frame window, GroupMultiScaleCrop(224, scales 1/.875/.75/.66), no flip, no colour jitter, ImageNet mean/std;
# 4 views per decoded video (repeated augmentation), each with its own tube mask (0.9) and running-cell decoder mask
# (0.5).
#
# UnlabeledHybrid (1.35M clips: K710, SSv2, AVA, WebVid2M, Instagram) is not distributed; any video list works: put it
# and the videos under `data_root` (--cfg-options data_root=DIR re-points both, configs/README.md#data), or override
# the fields themselves:
#   --cfg-options train_dataloader.dataset.ann_file=LIST train_dataloader.dataset.data_prefix=DIR
# LIST is an mmaction2 video list (`relative/path.mp4 label`, labels ignored). Raw-frame lists, SSv2 json splits and
# Kinetics csv files work too (`ann_format='rawframes'|'ssv2'|'kinetics'`; see tasks/pretrain/dataset.py).
data_root = 'data/unlabeled_hybrid'

train_dataloader = dict(
    # Per GPU, in videos; each video gives num_sample = 4 clips, so the model sees 128 clips per GPU and step. The
    # official scripts use 32 per GPU; the schedules' lr is the official one for the scripts' GPU count (as in the
    # official code, the total batch that scales it does not count the repeated-augmentation views).
    batch_size=32,
    num_workers=10,  # official --num_workers 10
    persistent_workers=True,
    pin_memory=True,
    # The official loader drops the last incomplete batch: steps per epoch = len(list) // (32 x world_size).
    drop_last=True,
    # mmengine's DefaultSampler (shuffled with the Runner's seed + epoch) yielding (epoch, index) keys, from which the
    # dataset seeds the frame window, crops and masks of every sample.
    sampler=dict(type='EpochIndexSampler', shuffle=True),
    collate_fn=dict(type='videomaev2_pretrain_collate'),
    dataset=dict(
        type='VideoMAEv2PretrainDataset',
        ann_file=f'{data_root}/train_list_videos.txt',
        data_prefix=f'{data_root}/videos',
        ann_format='video',
        clip_len=16,
        # SSv2 frames decoded at 12 fps use 2 (the paper's tau = 2); Kinetics-style 30 fps video uses 4.
        frame_interval=4,
        input_size=224,
        patch_size=16,  # must equal the model's patch size: the masks are drawn on (16 / 2) x (224 / 16)^2 tokens
        scales=(1, .875, .75, .66),
        num_sample=4,  # official --num_sample 4
        encoder_mask='tube',
        encoder_mask_ratio=0.9,  # int(0.9 x 196) = 176 of 196 positions masked per slice: 160 visible tokens
        decoder_mask='run_cell',
        decoder_mask_ratio=0.5,  # 2 of every 2x2 cell dropped per slice: 784 of 1568 tokens decoded
        backend='auto',
        seed=0))  # base of the per-sample seeds (seed, epoch, index); the same in every process
