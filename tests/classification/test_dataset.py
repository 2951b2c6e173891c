"""Classification data: list formats, K710 label maps, train/test samples, broken videos, collation."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from tasks.data.annotations import AnnotationError
from tasks.classification.dataset import (VideoMAEv2ClsDataset, label_map_between, read_class_names, read_cls_list,
                                          read_label_map_json, remap_labels, videomaev2_cls_collate,
                                          write_label_map_json)
from tasks.data.video import VideoReader, dense_sample, segment_sample, write_video
from tasks.data.video.ids import video_id_of
from tasks.data.video.retry import sample_seeds
from tasks.data.video.transforms import short_side_resize, three_crop, to_cthw

H, W, T = 32, 48, 24


def _video(path, label: int, frames: int = T):
    """A lossless clip whose frame t has value 8 * t + label everywhere (frame index and class readable back)."""
    values = (8 * np.arange(frames) + label).astype(np.uint8)
    data = np.broadcast_to(values[:, None, None, None], (frames, H, W, 3)).copy()
    write_video(path, data, fps=25, lossless=True)


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp('cls_videos')
    for i in range(4):
        _video(root / 'videos' / f'v{i}.mp4', label=i % 2)
    (root / 'videos' / 'broken.mp4').write_bytes(b'not a video at all')
    (root / 'train.txt').write_text(''.join(f'videos/v{i}.mp4 {i % 2}\n' for i in range(4)))
    return root


# --------------------------------------------------------------------------------------------------------------------
# lists and label maps
# --------------------------------------------------------------------------------------------------------------------
def test_kinetics_csv_with_class_names_and_default_order(tmp_path):
    csv = tmp_path / 'k.csv'
    csv.write_text('label,youtube_id,time_start,time_end,split\n'
                   'riding a bike,abc,10,20,train\n"abseiling",xyz,0,10,train\n')
    names = tmp_path / 'label_map.txt'
    names.write_text('zumba\nriding a bike\nabseiling\n')
    records = read_cls_list(csv, 'kinetics', data_prefix='root', class_names=names)
    assert [(r.path, r.label, r.video_id) for r in records] == [
        ('root/abc_000010_000020.mp4', 1, 'abc_000010_000020'), ('root/xyz_000000_000010.mp4', 2, 'xyz_000000_000010')]
    # default: alphabetical, the order of the official label maps
    assert [r.label for r in read_cls_list(csv, 'kinetics')] == [1, 0]
    names.write_text('zumba\n')
    with pytest.raises(AnnotationError, match=r'k\.csv, line 2: class .riding a bike. is not in'):
        read_cls_list(csv, 'kinetics', class_names=names)


def test_ssv2_split_and_unlabelled_split(tmp_path):
    (tmp_path / 'labels.json').write_text(json.dumps({'Pushing something': '0', 'Pulling something': '1'}))
    (tmp_path / 'train.json').write_text(json.dumps([
        {'id': '7', 'template': 'Pulling [something]', 'label': 'Pulling a cup', 'placeholders': ['a cup']}]))
    records = read_cls_list(tmp_path / 'train.json', 'ssv2', data_prefix='v', video_ext='.webm')
    assert [(r.path, r.label, r.video_id) for r in records] == [('v/7.webm', 1, '7')]
    (tmp_path / 'test.json').write_text(json.dumps([{'id': '9'}]))
    with pytest.raises(AnnotationError, match='entry 0 .video 9. has no template'):
        read_cls_list(tmp_path / 'test.json', 'ssv2', label_file=tmp_path / 'labels.json')


def test_video_ids_are_the_feature_store_keys(tmp_path):
    """The name up to the first '.', as the extractor keys its store, for video and raw-frame lists alike."""
    (tmp_path / 'v.txt').write_text('videos/abc.mp4 0\nsub/clip.part1.mkv 1\n')
    (tmp_path / 'f.txt').write_text('frames/xyz 12 2\n')
    records = read_cls_list(tmp_path / 'v.txt') + read_cls_list(tmp_path / 'f.txt', 'rawframes')
    assert [r.video_id for r in records] == ['abc', 'clip', 'xyz']
    assert [video_id_of(r.path) for r in records] == ['abc', 'clip', 'xyz']


def test_video_list_label_range(tmp_path):
    (tmp_path / 'l.txt').write_text('a.mp4 0\nb.mp4 5\n')
    with pytest.raises(AnnotationError, match=r'l\.txt, line 2: label 5 out of range for 3 classes'):
        read_cls_list(tmp_path / 'l.txt', num_classes=3)


def test_k710_label_maps(tmp_path):
    k710 = tmp_path / 'label_map_k710.txt'
    k710.write_text('abseiling\nair drumming\nriding a bike\nzumba\n')
    k400 = tmp_path / 'label_map_k400.txt'
    k400.write_text('riding_a_bike\nAbseiling\n')  # spelling differences of mirrors are tolerated
    indices = label_map_between(k710, k400)
    assert indices == [2, 0]
    write_label_map_json(tmp_path / 'label_710to400.json', indices)
    assert read_label_map_json(tmp_path / 'label_710to400.json', num_source=4) == [2, 0]
    with pytest.raises(AnnotationError, match='outside the 2 source classes'):
        read_label_map_json(tmp_path / 'label_710to400.json', num_source=2)
    (tmp_path / 'bad.json').write_text('[1, 1]')
    with pytest.raises(AnnotationError, match='entries 0 and 1 both take source class 1'):
        read_label_map_json(tmp_path / 'bad.json')
    k400.write_text('riding a bike\nsurfing\n')
    with pytest.raises(AnnotationError, match="not among the 4 source classes: \\['surfing'\\]"):
        label_map_between(k710, k400)
    (tmp_path / 'dup.txt').write_text('a\nb\na\n')
    with pytest.raises(AnnotationError, match='line 3: class .a. is listed twice'):
        read_class_names(tmp_path / 'dup.txt')


def test_remap_labels_into_k710(tmp_path):
    (tmp_path / 'l.txt').write_text('a.mp4 0\nb.mp4 1\n')
    records = read_cls_list(tmp_path / 'l.txt')
    assert [r.label for r in remap_labels(records, [2, 0])] == [2, 0]
    with pytest.raises(ValueError, match='line 2: label 1 is outside the 1-entry label map'):
        remap_labels(records, [3])


# --------------------------------------------------------------------------------------------------------------------
# samples
# --------------------------------------------------------------------------------------------------------------------
def _dataset(videos, **kwargs):
    kwargs.setdefault('clip_len', 4)
    kwargs.setdefault('frame_interval', 2)
    kwargs.setdefault('input_size', 32)
    kwargs.setdefault('short_side', 32)
    kwargs.setdefault('rand_augment', None)
    kwargs.setdefault('backend', 'pyav')
    return VideoMAEv2ClsDataset(str(videos / 'train.txt'), str(videos), **kwargs)


def test_class_names_are_recorded_for_the_metric(videos, tmp_path):
    assert 'classes' not in _dataset(videos).metainfo
    names = tmp_path / 'names.txt'
    names.write_text('standing\nwaving\n')
    assert _dataset(videos, class_names=str(names)).metainfo['classes'] == ('standing', 'waving')
    assert _dataset(videos, class_names=['a', 'b'], num_classes=2).metainfo['classes'] == ('a', 'b')
    with pytest.raises(ValueError, match='class_names: 1 names for 2 classes'):
        _dataset(videos, class_names=['a'])
    with pytest.raises(ValueError, match='class_names: 2 names for 3 classes'):
        _dataset(videos, class_names=['a', 'b'], num_classes=3)


def test_train_sample_views_frames_and_determinism(videos):
    ds = _dataset(videos, num_sample=3, reprob=1.0, flip=False)
    sample = ds[(2, 1)]
    assert sample['inputs'].shape == (3, 3, 4, 32, 32) and sample['inputs'].dtype == torch.uint8
    assert sample['label'] == 1 and sample['index'] == 1 and sample['video_id'] == 'v1' and sample['valid']
    assert sample['erase_boxes'].shape == (3, 1, 4) and (sample['erase_boxes'][:, 0, 2] > 0).all()
    # flat frames survive crop and resize: the frame indices are those the official 4 x 2 dense sampler draws from
    # the sample's own generator, seeded by (seed, epoch 2, index 1)
    frames = sample['inputs'][0, 0, :, 0, 0].long()
    assert ((frames - 1) % 8 == 0).all()
    expected = dense_sample(T, clip_len=4, frame_interval=2, test_mode=False, protocol='official', fps=25.0,
                            generator=sample_seeds(ds.seed, 2, 1)[0]).indices[0]
    assert ((frames - 1) // 8).tolist() == expected.tolist()
    again = ds[(2, 1)]
    assert torch.equal(sample['inputs'], again['inputs'])
    assert not torch.equal(sample['inputs'], ds[(3, 1)]['inputs'])  # another epoch, another window / crop


def test_segment_sampling_test_views_match_a_manual_pipeline(videos):
    ds = _dataset(videos, test_mode=True, sampling='segment', clip_len=4, num_clips=2, num_crops=3)
    sample = ds[3]
    assert sample['inputs'].shape == (6, 3, 4, 32, 32)
    idx = segment_sample(T, num_segments=4, num_clips=2, test_mode=True).indices
    with VideoReader(videos / 'videos' / 'v3.mp4', backend='pyav') as reader:
        frames = reader.get_frames(idx.reshape(-1)).reshape(2, 4, H, W, 3)
    expected = []
    for clip in frames:
        resized = short_side_resize(clip, 32).round().clamp(0, 255).to(torch.uint8)
        expected += [to_cthw(c) for c in three_crop(resized, 32)]
    assert torch.equal(sample['inputs'], torch.stack(expected))


def test_dense_test_clips_are_the_official_5_clips(videos):
    ds = _dataset(videos, test_mode=True, num_clips=5, num_crops=1)
    sample = ds[0]
    got = ((sample['inputs'][:, 0, :, 0, 0].long()) // 8).numpy()  # label 0: value = 8 t
    assert np.array_equal(got, dense_sample(T, clip_len=4, frame_interval=2, num_clips=5, test_mode=True).indices)


def test_broken_video_is_reported_and_replaced_in_training(videos, tmp_path, caplog):
    lst = tmp_path / 'with_broken.txt'
    lst.write_text('videos/broken.mp4 0\nvideos/missing.mp4 1\nvideos/v2.mp4 0\n')
    ds = VideoMAEv2ClsDataset(str(lst), str(videos), clip_len=4, frame_interval=2, input_size=32, rand_augment=None,
                              backend='pyav', num_sample=2)
    with caplog.at_level(logging.WARNING):
        sample = ds[(0, 0)]
    assert sample['index'] == 2 and sample['valid']  # the only decodable video
    paths = [p for p, _ in sample['failed']]
    assert str(videos / 'videos' / 'broken.mp4') in paths
    assert all(reason for _, reason in sample['failed'])
    ds2 = VideoMAEv2ClsDataset(str(lst), str(videos), clip_len=4, frame_interval=2, input_size=32,
                               rand_augment=None, backend='pyav', max_attempts=3)
    ds2.records = ds2.records[:2]
    with pytest.raises(RuntimeError, match='3 videos in a row failed to decode'):
        ds2[(0, 0)]


def test_broken_video_in_testing_is_skipped_not_replaced(videos, tmp_path):
    lst = tmp_path / 'test_list.txt'
    lst.write_text('videos/v1.mp4 1\nvideos/broken.mp4 0\n')
    ds = VideoMAEv2ClsDataset(str(lst), str(videos), clip_len=4, frame_interval=2, input_size=32, short_side=32,
                              test_mode=True, num_clips=2, num_crops=1, backend='pyav')
    good, bad = ds[0], ds[1]
    assert good['valid'] and not bad['valid'] and bad['inputs'].shape[0] == 0
    assert bad['failed'][0][0].endswith('broken.mp4')
    batch = videomaev2_cls_collate([good, bad])
    assert batch['inputs'].shape == (2, 2, 3, 4, 32, 32)
    assert batch['data_samples']['valid'].tolist() == [True, False]
    assert batch['data_samples']['label'].tolist() == [1, 0]
    assert batch['data_samples']['video_id'] == ['v1', 'broken']


def test_time_reversal_plays_the_clip_backwards_and_swaps_the_label(videos):
    ds = _dataset(videos, num_sample=1, reprob=0.0, flip=False, reverse_prob=1.0, reverse_label_map=[1, 0])
    sample = ds[(0, 2)]  # v2: label 0
    frames = sample['inputs'][0, 0, :, 0, 0].long()
    assert sample['label'] == 1
    assert (frames[1:] < frames[:-1]).all()  # frame values 8 t decrease: played backwards
    forward = _dataset(videos, num_sample=1, reprob=0.0, flip=False)[(0, 2)]['inputs'][0, 0, :, 0, 0].long()
    assert (forward[1:] > forward[:-1]).all()
    with pytest.raises(ValueError, match='map\\[map\\[c\\]\\] == c'):
        _dataset(videos, reverse_prob=0.5, reverse_label_map=[1, 1])
