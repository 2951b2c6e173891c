# UCF101 split 1 (mmaction2 video lists, `relative/path.avi label`, 101 classes): the Kinetics protocol with
# clips of 16 frames every 4th frame, 5 x 3 test views.
_base_ = ['kinetics400_videos_cls_16x4.py']

data_root = 'data/ucf101/videos'
ann_file_train = 'data/ucf101/ucf101_train_split_1_videos.txt'
ann_file_val = 'data/ucf101/ucf101_val_split_1_videos.txt'

train_dataloader = dict(
    batch_size=3,  # the ViT-g scripts' 3 per GPU
    dataset=dict(ann_file=ann_file_train, data_prefix=data_root, num_classes=101, frame_interval=4))
val_dataloader = dict(dataset=dict(ann_file=ann_file_val, data_prefix=data_root, num_classes=101, frame_interval=4))
test_dataloader = dict(dataset=dict(ann_file=ann_file_val, data_prefix=data_root, num_classes=101, frame_interval=4))
