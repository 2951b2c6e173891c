# HMDB51 split 1 (mmaction2 video lists, `relative/path.avi label`, 51 classes): the Kinetics protocol with
# clips of 16 frames every 2nd frame (the official HMDB51 script uses
# --sampling_rate 2, docs/classification.md#fine-tuning-recipe), 5 x 3 test views.
_base_ = ['kinetics400_videos_cls_16x4.py']

data_root = 'data/hmdb51/videos'
ann_file_train = 'data/hmdb51/hmdb51_train_split_1_videos.txt'
ann_file_val = 'data/hmdb51/hmdb51_val_split_1_videos.txt'

train_dataloader = dict(
    batch_size=3,  # the ViT-g scripts' 3 per GPU
    dataset=dict(ann_file=ann_file_train, data_prefix=data_root, num_classes=51, frame_interval=2))
val_dataloader = dict(dataset=dict(ann_file=ann_file_val, data_prefix=data_root, num_classes=51, frame_interval=2))
test_dataloader = dict(dataset=dict(ann_file=ann_file_val, data_prefix=data_root, num_classes=51, frame_interval=2))
