"""VideoReader on generated videos whose frames encode their own index, for both backends.

Lossless fixtures (``write_video(..., lossless=True)``) give back the exact random frames written, so frame order and
pixel values are checked bit for bit; a lossy fixture encodes the index as a flat grey level (robust to H.264).
"""
from __future__ import annotations

import pickle
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tasks.data.video import VideoDecodeError, VideoReader, sliding_window_sample, write_video
from tasks.data.video.transforms import squash_resize

BACKENDS = ['decord', 'pyav']
T, H, W = 40, 32, 64  # W = 64: decord mis-reads some narrow widths (see test_decord_padded_row_width_is_reported)


@pytest.fixture(scope='module')
def lossless(tmp_path_factory):
    """(path, frames): 40 random RGB frames at 30 fps, keyframe every 8 frames, stored exactly."""
    frames = np.random.default_rng(0).integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    path = write_video(tmp_path_factory.mktemp('vid') / 'lossless.mp4', frames, 30, lossless=True, gop=8)
    return path, frames


@pytest.fixture(scope='module')
def grey(tmp_path_factory):
    """Lossy yuv420p video whose frame i is flat grey 20 + 5 i (decodes to within +-2 levels)."""
    frames = (20 + 5 * np.arange(T, dtype=np.uint8))[:, None, None, None] * np.ones((1, H, W, 3), np.uint8)
    return write_video(tmp_path_factory.mktemp('vid') / 'grey.mp4', frames, 25, crf=18, gop=10)


def _grey_index(frames: torch.Tensor) -> np.ndarray:
    """Frame indices decoded from the grey level of each frame (..., H, W, 3)."""
    return np.round((frames.float().mean(dim=(-3, -2, -1)).numpy() - 20) / 5).astype(int)


# --------------------------------------------------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('backend', BACKENDS)
def test_metadata_constant_rate(lossless, backend):
    path, _ = lossless
    with VideoReader(path, backend) as r:
        assert (r.num_frames, len(r), r.meta.height, r.meta.width) == (T, T, H, W)
        assert r.fps == pytest.approx(30.0)
        # frame i is presented at i / fps; decord reports float32 seconds, hence the tolerance
        np.testing.assert_allclose(r.timestamps, np.arange(T) / 30.0, atol=1e-5)
        assert r.duration == pytest.approx(T / 30.0, abs=1e-5)


@pytest.mark.parametrize('backend', BACKENDS)
def test_metadata_ntsc_rate(tmp_path, backend):
    frames = np.zeros((6, 16, 64, 3), np.uint8)
    path = write_video(tmp_path / 'ntsc.mp4', frames, 30000 / 1001, lossless=True)
    with VideoReader(path, backend) as r:
        assert r.fps == pytest.approx(30000 / 1001, rel=1e-6)
        np.testing.assert_allclose(r.timestamps, np.arange(6) * 1001 / 30000, atol=1e-5)


def _write_vfr(path, pts_ms, frames):
    """An MKV with the given presentation times in milliseconds (variable frame rate)."""
    import av

    with av.open(str(path), 'w') as c:
        s = c.add_stream('libx264rgb', rate=25)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], 'rgb24'
        s.options = {'qp': '0', 'bf': '0'}
        s.codec_context.time_base = Fraction(1, 1000)
        for t, arr in zip(pts_ms, frames):
            f = av.VideoFrame.from_ndarray(arr, format='rgb24')
            f.pts, f.time_base = t, Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


@pytest.mark.parametrize('backend', BACKENDS)
def test_variable_frame_rate_uses_container_timestamps(tmp_path, backend):
    pts_ms = [0, 40, 80, 200, 240, 500, 540, 580]
    frames = np.random.default_rng(1).integers(0, 256, (len(pts_ms), 16, 64, 3), dtype=np.uint8)
    path = tmp_path / 'vfr.mkv'
    _write_vfr(path, pts_ms, frames)
    with VideoReader(path, backend) as r:
        np.testing.assert_allclose(r.timestamps, np.array(pts_ms) / 1000, atol=1e-5)
        assert r.num_frames == len(pts_ms)
        np.testing.assert_array_equal(r.get_frames(np.arange(len(pts_ms))).numpy(), frames)


# --------------------------------------------------------------------------------------------------------------------
# random access
# --------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('backend', BACKENDS)
def test_get_frames_random_order_repeats_and_clipping(lossless, backend):
    path, frames = lossless
    idx = [7, 3, 3, 0, 39, 100, -5, 17, 8]  # unsorted, repeated, past both ends, across keyframes 0/8/16
    with VideoReader(path, backend) as r:
        out = r.get_frames(idx)
        assert out.dtype == torch.uint8 and out.shape == (len(idx), H, W, 3)
        np.testing.assert_array_equal(out.numpy(), frames[np.clip(idx, 0, T - 1)])
        # a second call going backwards must seek, not continue from where the decoder stopped
        np.testing.assert_array_equal(r.get_frames([2, 1]).numpy(), frames[[2, 1]])
        clips = np.array([[0, 4, 8], [30, 34, 38]])
        np.testing.assert_array_equal(r.get_frames(clips).numpy(), frames[clips])


@pytest.mark.parametrize('backend', BACKENDS)
def test_lossy_decode_order(grey, backend):
    idx = np.array([0, 39, 12, 13, 11, 25, 9, 10])
    with VideoReader(grey, backend) as r:
        np.testing.assert_array_equal(_grey_index(r.get_frames(idx)), idx)
        np.testing.assert_array_equal(_grey_index(r.get_frames(np.arange(T))), np.arange(T))


def test_backends_return_identical_frames(grey):
    with VideoReader(grey, 'decord') as a, VideoReader(grey, 'pyav') as b:
        assert torch.equal(a.get_frames(np.arange(T)), b.get_frames(np.arange(T)))


# --------------------------------------------------------------------------------------------------------------------
# sliding windows
# --------------------------------------------------------------------------------------------------------------------

def _spy_reads(reader: VideoReader) -> list[np.ndarray]:
    """The index arrays the reader asks its decoder for, recorded as they come."""
    calls = []
    read = reader.decoder.read

    def spy(indices):
        calls.append(np.array(indices))
        return read(indices)
    reader.decoder.read = spy
    return calls


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('mode', ['official', 'centred'])
def test_windows_match_frames_and_decode_each_frame_once(lossless, backend, mode):
    path, frames = lossless
    sample = sliding_window_sample(T, clip_len=16, stride=4, mode=mode)
    with VideoReader(path, backend) as r:
        calls = _spy_reads(r)
        decoded_before = getattr(r.decoder, 'frames_decoded', None)
        got = list(r.iter_windows(sample.indices, chunk_size=5))
        assert [w.index for w in got] == list(range(sample.num_clips))
        for w, idx in zip(got, sample.indices):
            np.testing.assert_array_equal(w.frame_indices, idx)
            np.testing.assert_array_equal(w.frames.numpy(), frames[idx])
        requested = np.concatenate(calls)
        # every needed frame requested exactly once, in increasing order, so the decoder never goes back
        np.testing.assert_array_equal(requested, np.unique(sample.indices))
        assert all(len(c) <= 5 for c in calls)
        if backend == 'pyav':  # PyAV counts real decoder output: frames 0..max decoded once each
            assert r.decoder.frames_decoded - decoded_before == sample.indices.max() + 1


@pytest.mark.parametrize('backend', BACKENDS)
def test_windows_with_gaps_and_interval(lossless, backend):
    path, frames = lossless
    windows = np.array([[0, 2, 4], [1, 3, 5], [20, 22, 24], [21, 30, 39]])  # gaps and a non-overlapping jump
    with VideoReader(path, backend) as r:
        calls = _spy_reads(r)
        out = [w.frames.numpy() for w in r.iter_windows(windows, chunk_size=4)]
    for o, idx in zip(out, windows):
        np.testing.assert_array_equal(o, frames[idx])
    np.testing.assert_array_equal(np.concatenate(calls), np.unique(windows))


def test_windows_transform_applied_once_per_frame(lossless):
    path, frames = lossless
    sample = sliding_window_sample(T, clip_len=16, stride=4)
    seen = []

    def transform(x):  # uint8 (k, H, W, 3) -> float (k, 3, H, W), recording which frames it saw
        seen.append(x.shape[0])
        return x.permute(0, 3, 1, 2).float()
    with VideoReader(path) as r:
        for w in r.iter_windows(sample.indices, transform=transform):
            assert w.frames.shape == (16, 3, H, W) and w.frames.dtype == torch.float32
            np.testing.assert_array_equal(w.frames.numpy(), frames[w.frame_indices].transpose(0, 3, 1, 2))
    assert sum(seen) == len(np.unique(sample.indices))


def test_windows_squash_bit_identical_to_official_loop(tmp_path):
    """Decode once + squash per chunk == the official extractor's get_batch + transform per window, bit for bit."""
    import decord

    frames = np.random.default_rng(2).integers(0, 256, (28, 36, 64, 3), dtype=np.uint8)
    path = write_video(tmp_path / 'tad.mp4', frames, 30, crf=23, gop=12)
    vr = decord.VideoReader(str(path), num_threads=1)
    official = []
    for start in range(0, len(vr) - 15, 4):  # extract_tad_feature.py, THUMOS14 settings
        data = torch.from_numpy(vr.get_batch(np.arange(start, start + 16)).asnumpy())
        vid = data.permute(3, 0, 1, 2).to(torch.float32) / 255
        official.append(F.interpolate(vid, size=(224, 224), mode='bilinear', align_corners=False))
    sample = sliding_window_sample(len(vr), clip_len=16, stride=4)
    with VideoReader(path) as r:
        ours = [w.frames for w in r.iter_windows(sample.indices, transform=squash_resize, frame_dim=1)]
    assert len(ours) == len(official) == 4
    for a, b in zip(ours, official):
        assert a.shape == (3, 16, 224, 224)
        assert torch.equal(a, b)


def test_windows_must_be_sorted(lossless):
    with VideoReader(lossless[0]) as r:
        with pytest.raises(ValueError, match='sorted by first frame'):
            list(r.iter_windows([[8, 9], [0, 1]]))
        with pytest.raises(ValueError, match='num_windows, clip_len'):
            list(r.iter_windows([0, 1, 2]))


# --------------------------------------------------------------------------------------------------------------------
# bad input: one documented exception naming the file and the reason (empty, text, audio-only and truncated files:
# test_real_codecs.py)
# --------------------------------------------------------------------------------------------------------------------

def _check_error(exc_info, path, reason_part):
    err = exc_info.value
    assert err.path == path and str(path) in str(err)
    assert reason_part in err.reason.lower(), err.reason


@pytest.mark.parametrize('backend', BACKENDS)
def test_missing_file(tmp_path, backend):
    path = tmp_path / 'nope.mp4'
    with pytest.raises(VideoDecodeError) as e:
        VideoReader(path, backend)
    _check_error(e, path, 'does not exist')


def test_directory(tmp_path):
    with pytest.raises(VideoDecodeError) as e:
        VideoReader(tmp_path)
    _check_error(e, tmp_path, 'not a regular file')


def test_decord_padded_row_width_is_reported(tmp_path):
    frames = np.zeros((4, 32, 48, 3), np.uint8)
    path = write_video(tmp_path / 'w48.mp4', frames, 30, lossless=True)
    with pytest.raises(VideoDecodeError) as e:
        VideoReader(path, 'decord')
    _check_error(e, path, "backend='pyav'")
    with VideoReader(path, 'pyav') as r:  # the other backend reads it
        np.testing.assert_array_equal(r.get_frames([0, 3]).numpy(), frames[[0, 3]])
    with VideoReader(path) as r:  # and 'auto' picks it
        assert r.meta.backend == 'pyav'
        np.testing.assert_array_equal(r.get_frames([0, 3]).numpy(), frames[[0, 3]])


def test_error_pickles_and_bad_backend(tmp_path):
    err = pickle.loads(pickle.dumps(VideoDecodeError(tmp_path / 'x.mp4', 'broken')))
    assert (err.path, err.reason) == (tmp_path / 'x.mp4', 'broken')
    with pytest.raises(ValueError, match='backend'):
        VideoReader(tmp_path / 'x.mp4', 'opencv')


# --------------------------------------------------------------------------------------------------------------------
# writer (the fixtures above depend on it; these check its own contract)
# --------------------------------------------------------------------------------------------------------------------

def test_writer_streams_an_iterable_and_sets_the_gop(tmp_path):
    frames = np.random.default_rng(5).integers(0, 256, (12, 16, 64, 3), dtype=np.uint8)
    path = write_video(tmp_path / 'sub' / 'gen.mkv', (f for f in frames), 10, lossless=True, gop=5)
    assert path == tmp_path / 'sub' / 'gen.mkv'
    assert [p.name for p in path.parent.iterdir()] == ['gen.mkv']  # temporary file renamed away
    with VideoReader(path, 'pyav') as r:
        np.testing.assert_array_equal(r.get_frames(np.arange(12)).numpy(), frames)
        np.testing.assert_array_equal(r.decoder.keyframes, [0, 5, 10])


@pytest.mark.parametrize('shape', [(3, 15, 64, 3), (3, 16, 63, 3)])
def test_writer_rejects_odd_sizes_and_leaves_nothing(tmp_path, shape):
    with pytest.raises(ValueError, match=f'{shape[1]}x{shape[2]}'):
        write_video(tmp_path / 'odd.mp4', np.zeros(shape, np.uint8), 25)
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_frames_midway(tmp_path):
    def frames():
        yield np.zeros((16, 64, 3), np.uint8)
        yield np.zeros((16, 32, 3), np.uint8)  # size changes
    with pytest.raises(ValueError, match='frame 1'):
        write_video(tmp_path / 'bad.mp4', frames(), 25)
    with pytest.raises(ValueError, match='uint8'):
        write_video(tmp_path / 'bad.mp4', np.zeros((2, 16, 64, 3), np.float32), 25)
    with pytest.raises(ValueError, match='no frames'):
        write_video(tmp_path / 'bad.mp4', [], 25)
    assert list(tmp_path.iterdir()) == []
