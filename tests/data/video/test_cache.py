"""The in-memory decoded-video cache: same frames as a fresh decode, LRU by bytes, same training samples."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from tasks.classification.dataset import VideoMAEv2ClsDataset
from tasks.pretrain.dataset import VideoMAEv2PretrainDataset
from tasks.data.video import VideoDecodeError, VideoReader, write_video
from tasks.data.video.cache import DecodedVideoCache, open_video

H, W = 48, 64


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    """Four lossy H.264 clips of moving noise (a decoder that returned other frames would show) and one broken file."""
    root = tmp_path_factory.mktemp('cache_videos')
    rng = np.random.default_rng(0)
    for i in range(4):
        base = rng.integers(0, 256, (H, 2 * W, 3), dtype=np.uint8)
        frames = np.stack([np.roll(base, 3 * t, axis=1)[:, :W] for t in range(30 + 4 * i)])
        write_video(root / f'v{i}.mp4', frames, fps=25)
    (root / 'broken.mp4').write_bytes(b'not a video')
    (root / 'train.txt').write_text(''.join(f'v{i}.mp4 {i % 2}\n' for i in range(4)))
    return root


@pytest.mark.parametrize('backend', ['decord', 'pyav'])
def test_cached_frames_equal_a_fresh_decode(videos, backend):
    cache = DecodedVideoCache(64, backend)
    indices = np.array([[0, 5, 9], [33, 2, 2]])  # any order, repeats, out of range (clipped to the last frame)
    with VideoReader(videos / 'v1.mp4', backend=backend) as reader:
        expected, fps, n = reader.get_frames(indices), reader.fps, reader.num_frames
    with open_video(videos / 'v1.mp4', backend, cache) as video:
        assert (video.num_frames, video.fps) == (n, fps) == (34, 25.0)
        got = video.get_frames(indices)
    assert got.shape == (2, 3, H, W, 3) and got.dtype == torch.uint8
    assert torch.equal(got, expected)
    with VideoReader(videos / 'v1.mp4', backend=backend) as reader:
        assert torch.equal(got[1, 0], reader.get_frames([n - 1])[0])  # index 33 of 34 frames: the last one


def test_lru_eviction_by_bytes_and_hit_counts(videos):
    one = 30 * H * W * 3  # v0's frames; v1 has 34 frames, v2 38
    cache = DecodedVideoCache(max_mb=(34 + 38) * H * W * 3 / 2 ** 20)  # room for any two, not for three
    for name in ('v0', 'v1', 'v0', 'v2', 'v1'):
        cache.get(videos / f'{name}.mp4')
    # v0 is a hit; v2 evicts the least recently used (v1); v1 is then decoded again and evicts v0
    assert (cache.hits, cache.misses) == (1, 4)
    assert cache.paths == [str(videos / 'v2.mp4'), str(videos / 'v1.mp4')]  # least recently used first
    assert cache.nbytes == (38 + 34) * H * W * 3 <= cache.max_bytes
    small = DecodedVideoCache(max_mb=one / 2 ** 20 / 2)  # a video larger than the whole cache is served, not kept
    assert small.get(videos / 'v0.mp4').num_frames == 30 and len(small) == 0
    with pytest.raises(ValueError, match='max_mb must be > 0'):
        DecodedVideoCache(0)


def test_broken_video_raises_and_is_not_cached(videos):
    cache = DecodedVideoCache(16)
    with pytest.raises(VideoDecodeError, match='broken.mp4'):
        cache.get(videos / 'broken.mp4')
    assert len(cache) == 0


def test_a_pickled_cache_starts_empty(videos):
    """Spawned data-loader workers receive the dataset pickled: each fills a cache of its own."""
    cache = DecodedVideoCache(16)
    cache.get(videos / 'v0.mp4')
    copy = pickle.loads(pickle.dumps(cache))
    assert len(cache) == 1 and len(copy) == 0 and copy.max_bytes == cache.max_bytes and copy.misses == 0


def _same_samples(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def test_classification_samples_are_the_same_with_the_cache(videos):
    kwargs = dict(ann_file=str(videos / 'train.txt'), data_prefix=str(videos), num_classes=2, clip_len=4,
                  frame_interval=3, input_size=32, num_sample=2, rand_augment='rand-m7-n4-mstd0.5-inc1', flip=True)
    plain = VideoMAEv2ClsDataset(**kwargs)
    cached = VideoMAEv2ClsDataset(**kwargs, cache_videos_mb=16)
    for epoch in range(3):
        for i in range(4):
            _same_samples(plain[(epoch, i)], cached[(epoch, i)])
    assert (cached.video_cache.misses, cached.video_cache.hits) == (4, 8)  # each video decoded once
    test_kwargs = dict(kwargs, test_mode=True, num_clips=2, num_crops=3, short_side=32)
    _same_samples(VideoMAEv2ClsDataset(**test_kwargs)[1], VideoMAEv2ClsDataset(**test_kwargs, cache_videos_mb=16)[1])


def test_pretraining_samples_are_the_same_with_the_cache(videos):
    kwargs = dict(ann_file=str(videos / 'train.txt'), data_prefix=str(videos), clip_len=4, frame_interval=2,
                  input_size=32, num_sample=2)
    plain, cached = VideoMAEv2PretrainDataset(**kwargs), VideoMAEv2PretrainDataset(**kwargs, cache_videos_mb=16)
    for epoch in range(2):
        for i in range(4):
            _same_samples(plain[(epoch, i)], cached[(epoch, i)])
    assert cached.video_cache.misses == 4 and cached.video_cache.hits == 4
