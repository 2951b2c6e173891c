"""decord must not decode ahead of the reader while the caller works (docs/video_decoding.md#decord-memory).

decord 0.6 queues packets far beyond what a read asks for and decodes them while the caller holds the frames; the
reader clears decord's queues before it hands frames back, reading whole GOPs in between so that the clears cost no
decoding. These tests check when the clears happen, that they change no frame, and that a paused reader's memory
stays flat (it grew by the whole rest of the video before).
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tasks.data.video import VideoReader, sliding_window_sample, write_video

pytest.importorskip('decord', reason='the read-ahead being bounded is decord\'s')

FRAMES, H, W = 48, 16, 64


@pytest.fixture(scope='module')
def gop4(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """48 random frames, lossless, a keyframe every 4 frames."""
    frames = np.random.default_rng(5).integers(0, 256, (FRAMES, H, W, 3), dtype=np.uint8)
    return write_video(tmp_path_factory.mktemp('gop') / 'gop4.mp4', frames, 30, lossless=True, gop=4), frames


def _record(reader: VideoReader, events: list[tuple]) -> None:
    """Log the decoder's reads and clears into ``events``."""
    decoder = reader.decoder
    read, clear = decoder.read, decoder.clear

    def spy_read(indices):
        events.append(('read', np.array(indices)))
        return read(indices)

    def spy_clear():
        events.append(('clear',))
        clear()
    decoder.read, decoder.clear = spy_read, spy_clear


def test_span_reads_whole_gops_within_bounds(gop4):
    with VideoReader(gop4[0], 'decord') as r:
        d = r.decoder
        np.testing.assert_array_equal(d.keyframes, np.arange(0, FRAMES, 4))
        idx = np.arange(FRAMES)
        assert d.span(idx, 16) == (FRAMES, True)  # min_read 64 > the video: read to its end
        d.min_read, d.max_read = 6, 300
        assert d.span(idx, 16) == (8, True)  # the first GOP end at least 6 frames on
        assert d.span(idx[5:], 16) == (7, True)  # from 5: GOP ends 8 (3 on), 12 (7 on)
        assert d.span(idx[::3], 16) == (3, True)  # sparse: frames 0, 3, 6 lie before the GOP end at 8
        d.min_read, d.max_read = 10, 7
        assert d.span(idx, 16) == (4, True)  # no GOP end 10 on within 7: the last one within 7
        d.max_read = 3
        assert d.span(idx[1:], 16) == (3, True)  # the GOP end at 4 is 3 frames on
        assert d.span(idx, 16) == (3, False)  # a GOP longer than max_read: a piece, no clear


@pytest.mark.parametrize('min_read, max_read', [(1, 300), (6, 300), (1, 3)])
def test_windows_exact_and_decord_cleared_before_each_window(gop4, min_read, max_read, caplog):
    path, frames = gop4
    sample = sliding_window_sample(FRAMES, clip_len=8, stride=3)
    events: list[tuple] = []
    with VideoReader(path, 'decord') as r, caplog.at_level(logging.WARNING, logger='tasks.data.video.reader'):
        r.decoder.min_read, r.decoder.max_read = min_read, max_read
        _record(r, events)
        for w in r.iter_windows(sample.indices, chunk_size=3):
            np.testing.assert_array_equal(w.frames.numpy(), frames[w.frame_indices])
            if max_read >= 4:  # every GOP fits a read: decord was cleared after the last read
                assert [e for e in events if e[0] != 'window'][-1] == ('clear',)
            events.append(('window', w.index))
    reads = [e[1] for e in events if e[0] == 'read']
    np.testing.assert_array_equal(np.concatenate(reads), np.unique(sample.indices))  # each once, in order
    assert all(len(c) <= 3 for c in reads)
    # where a clear follows a read, the next read starts at a keyframe (so the clear costs no decoding)
    for before, after in zip(events, events[1:]):
        if before == ('clear',) and after[0] == 'read':
            assert after[1][0] % 4 == 0
    long_gop = [rec for rec in caplog.records if 'keyframes more than' in rec.getMessage()]
    assert len(long_gop) == (1 if max_read < 4 else 0)  # logged once per file


def test_get_frames_clears(gop4):
    path, frames = gop4
    with VideoReader(path, 'decord') as r:
        before = r.decoder.resets
        got = r.get_frames([5, 1, 30])
        assert r.decoder.resets == before + 1
        np.testing.assert_array_equal(got.numpy(), frames[[5, 1, 30]])
        np.testing.assert_array_equal(r.get_frames([6, 7]).numpy(), frames[[6, 7]])  # read again after a clear


def _rss_mb() -> float:
    with open('/proc/self/status') as f:
        return int(next(line for line in f if line.startswith('VmRSS')).split()[1]) / 1024


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads VmRSS from /proc')
def test_paused_reader_memory_stays_flat(tmp_path):
    """With the first window in hand, decord decoded the rest of this 300-frame 360p video (200 MB of RGB) while the
    caller paused; now it decodes nothing."""
    background = np.random.default_rng(0).integers(0, 256, (45, 80, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    frames = (np.roll(background, 2 * t, axis=1) for t in range(300))
    path = write_video(tmp_path / 'v.mp4', frames, 30, preset='ultrafast', threads=0)
    sample = sliding_window_sample(300, clip_len=16, stride=4)
    with VideoReader(path, 'decord') as r:
        windows = r.iter_windows(sample.indices)
        next(windows)
        before = _rss_mb()
        time.sleep(0.5)  # the caller at work
        grown = _rss_mb() - before
        assert grown < 30, f'decord decoded ahead while the reader paused: +{grown:.0f} MB'
        r.get_frames([200, 201])
        before = _rss_mb()
        time.sleep(0.3)
        assert _rss_mb() - before < 30
