"""Real codecs and containers, encoded by real encoders (codec_kit.py), read by decord, PyAV and ``auto``.

The truth is the source picture (codec_kit.scene) turned as the clip's display matrix says (np.rot90 / mirroring):
every backend must give it back within codec noise, frame for frame (each decoded frame is closer to its own source
frame than to its neighbours, so a shifted or repeated frame fails), with the container's timestamps, and decord and
PyAV must agree with each other within one grey level.
"""
from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from tasks.data.video import VideoDecodeError, VideoReader, sliding_window_sample
from tasks.data.video.probe import Orientation, frame_rate_deviation, orientation_from_matrix
from tests.data.video.codec_kit import CLIPS, Clip, scene, write_audio_only, write_clips

BACKENDS = ('decord', 'pyav', 'auto')
# the clips decord cannot read, and why (docs/video_decoding.md#video-formats has the whole matrix)
DECORD_CANNOT = {'av1.mp4': "the codec 'av1' is not supported by decord"}
VFR = {'vfr_two_rates.mp4'}  # the only clip more than half a frame off a constant rate (the jitter stays within 0.3)
# mean absolute difference to the source picture, in grey levels. gray.mkv is compared with the source's luma, which
# the RGB -> gray -> RGB round trip shifts by about 1.6 levels
TOLERANCE = {'gray.mkv': 6.0}
DEFAULT_TOLERANCE = 3.0
TIME_TOLERANCE = 5e-4  # s: Matroska/WebM store milliseconds, so 1/12 s is 83 ms in ssv2_vp9.webm


def truth(clip: Clip) -> np.ndarray:
    """The frames a player shows: the source picture, mirrored and turned clockwise as the clip says; gray clips
    show the source's BT.601 luma."""
    frames = scene(clip.frames, *clip.size).astype(np.float64)
    if clip.pix_fmt == 'gray':
        frames = np.repeat(frames @ np.array([0.299, 0.587, 0.114])[:, None], 3, axis=-1)
    if clip.mirrored:
        frames = frames[:, :, ::-1]
    return np.rot90(frames, -clip.rotation // 90, axes=(1, 2))  # negative: clockwise


@pytest.fixture(scope='session')
def clips(tmp_path_factory):
    return write_clips(tmp_path_factory.mktemp('codecs'))


@pytest.fixture(scope='session')
def decoded(clips):
    """(clip name, backend) -> (meta, every frame as float64) or the VideoDecodeError, decoded once per session."""
    out = {}
    for name, path in clips.items():
        for backend in BACKENDS:
            try:
                with VideoReader(path, backend) as reader:
                    out[name, backend] = reader.meta, reader.get_frames(np.arange(reader.num_frames)).numpy() * 1.0
            except VideoDecodeError as e:
                out[name, backend] = e
    return out


def test_source_frames_are_told_apart():
    """The identity check below is meaningful: neighbouring source frames differ far more than codec noise."""
    frames = scene(40).astype(np.float64)
    assert np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3)).min() > 3 * DEFAULT_TOLERANCE


def test_clips_are_what_they_claim(clips):
    """The encoders wrote what the matrix is about: codecs, pixel formats, fourcc, B-frames, audio, display matrix."""
    import av

    expect = {'ssv2_vp9.webm': ('vp9', 'yuv420p'), 'ucf_xvid.avi': ('mpeg4', 'yuv420p'), 'hevc.mp4': ('hevc', None),
              'av1.mp4': ('av1', None), 'h264_10bit.mp4': ('h264', 'yuv420p10le'), 'mjpeg.avi': ('mjpeg', None),
              'yuv444_odd.mp4': ('h264', 'yuv444p')}  # FFmpeg decodes 4:0:0 (gray) H.264 to yuv420p
    for name, path in clips.items():
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            codec, pix_fmt = expect.get(name, ('h264' if CLIPS[name].codec == 'libx264' else None, None))
            assert codec is None or stream.codec_context.codec.canonical_name == codec, name
            assert pix_fmt is None or stream.codec_context.pix_fmt == pix_fmt, name
            assert [s.type for s in container.streams] == ['video'] + (['audio'] if CLIPS[name].audio else []), name
            frame = next(container.decode(stream))
            rgb = frame.to_ndarray(format='rgb24')
            assert (CLIPS[name].pix_fmt == 'gray') == (np.ptp(rgb, axis=-1).max() == 0), name  # no colour at all
            # PyAV < 18.1.1 iterates side-data entries (``.type``), later versions a mapping's keys (the types)
            has_matrix = 'DISPLAYMATRIX' in [getattr(d, 'type', d).name for d in frame.side_data]
            assert has_matrix == bool(CLIPS[name].rotation or CLIPS[name].mirrored), name
            if not CLIPS[name].mirrored:  # PyAV reports FFmpeg's counterclockwise angle
                assert -frame.rotation % 360 == CLIPS[name].rotation, name
    with av.open(str(clips['ucf_xvid.avi'])) as container:
        assert container.streams.video[0].codec_tag == 'XVID'
    with av.open(str(clips['h264_bframes_aac.mp4'])) as container:
        pts = [p.pts for p in container.demux(video=0) if p.size]
        assert pts != sorted(pts)  # B-frames: decode order differs from presentation order


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('name', list(CLIPS))
def test_frames_and_timestamps_match_the_source(decoded, name, backend):
    clip = CLIPS[name]
    result = decoded[name, backend]
    if backend == 'decord' and name in DECORD_CANNOT:
        assert isinstance(result, VideoDecodeError)
        reason = result.reason
        assert DECORD_CANNOT[name] in reason and "backend='pyav' or backend='auto'" in reason, reason
        assert 'truncated' not in reason and 'corrupt' not in reason, reason
        return
    assert not isinstance(result, Exception), result
    meta, frames = result
    want = truth(clip)
    assert frames.shape == want.shape and (meta.height, meta.width) == want.shape[1:3]
    error = np.abs(frames - want).mean(axis=(1, 2, 3))
    assert error.max() <= TOLERANCE.get(name, DEFAULT_TOLERANCE), error
    # each frame is closer to its own source frame than to the previous or next one: no shift, no repeat
    assert np.all(error[1:] < np.abs(frames[1:] - want[:-1]).mean(axis=(1, 2, 3)))
    assert np.all(error[:-1] < np.abs(frames[:-1] - want[1:]).mean(axis=(1, 2, 3)))
    np.testing.assert_allclose(meta.timestamps, clip.timestamps(), atol=TIME_TOLERANCE, rtol=0)
    assert (meta.rotation, meta.mirrored, meta.variable_frame_rate) == (clip.rotation, clip.mirrored, name in VFR)
    assert meta.backend == (backend if backend != 'auto' else 'pyav' if name in DECORD_CANNOT else 'decord')


@pytest.mark.parametrize('name', [n for n in CLIPS if n not in DECORD_CANNOT])
def test_decord_and_pyav_agree(decoded, name):
    (a, fa), (b, fb) = decoded[name, 'decord'], decoded[name, 'pyav']
    diff = fa - fb
    assert np.abs(diff).mean() <= 1.0
    if CLIPS[name].pix_fmt.endswith('10le'):  # the two FFmpeg versions convert 10 bits to 8 a little differently
        assert abs(diff.mean()) <= 0.2
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert (a.num_frames, a.fps, a.duration, a.codec) == (b.num_frames, b.fps, b.duration, b.codec)
    meta, frames = decoded[name, 'auto']
    assert meta.backend == 'decord' and np.array_equal(frames, fa)


def test_decord_turns_mp4_display_matrices_itself(clips):
    """decord 0.6 applies an MP4 display matrix's rotation (not its mirroring) and ignores Matroska's, as
    probe.decord_orientation models it; the reader turns the rest of the way (checked against the truth above)."""
    import decord

    def raw(name):
        return decord.VideoReader(str(clips[name]), num_threads=1).get_batch([0, 1]).asnumpy() * 1.0

    def close(frames, want):
        return frames.shape == want.shape and np.abs(frames - want).mean() <= DEFAULT_TOLERANCE

    source = truth(CLIPS['h264.mkv'])[:2]
    assert close(raw('rot90.mp4'), np.rot90(source, -1, axes=(1, 2)))  # turned clockwise, as a player does
    assert close(raw('rot270.mp4'), np.rot90(source, 1, axes=(1, 2)))
    assert close(raw('rot90.mkv'), source)  # not turned
    assert close(raw('mirrored.mp4'), source[:, ::-1, ::-1])  # turned by 180 degrees instead of mirrored


def test_auto_logs_its_choice_once_per_file(clips, tmp_path, caplog):
    path = tmp_path / 'youtube_av1.mp4'
    shutil.copy(clips['av1.mp4'], path)
    with caplog.at_level(logging.WARNING, logger='tasks.data.video.reader'):
        for _ in range(2):
            with VideoReader(path) as reader:  # 'auto' is the default
                assert reader.meta.backend == 'pyav'
        with VideoReader(clips['h264.mkv']) as reader:
            assert reader.meta.backend == 'decord'
    records = [r for r in caplog.records if r.name == 'tasks.data.video.reader']
    assert len(records) == 1 and records[0].levelno == logging.WARNING, caplog.text
    message = records[0].getMessage()
    assert str(path) in message and "the codec 'av1' is not supported by decord" in message


@pytest.mark.parametrize('backend', BACKENDS)
def test_clip_shorter_than_a_window(clips, backend):
    want = truth(CLIPS['five_frames.mp4'])
    sample = sliding_window_sample(5, clip_len=16, stride=4)
    with VideoReader(clips['five_frames.mp4'], backend) as reader:
        windows = list(reader.iter_windows(sample.indices))
    assert len(windows) == 1
    padded = want[np.minimum(np.arange(16), 4)]  # the last frame repeats
    assert np.abs(windows[0].frames.numpy() - padded).mean(axis=(1, 2, 3)).max() <= DEFAULT_TOLERANCE


def ffmpeg_rotation_matrix(degrees: float) -> list[int]:
    """libavutil's ``av_display_rotation_set`` (display.c): a clockwise turn by ``degrees``, 16.16 fixed point (its
    counterpart ``av_display_rotation_get`` reports the same turn counterclockwise)."""
    radians = -np.radians(degrees)
    c, s = np.cos(radians), np.sin(radians)
    return [round(c * 65536), round(-s * 65536), 0, round(s * 65536), round(c * 65536), 0, 0, 0, 1 << 30]


@pytest.mark.parametrize('clockwise', [0, 90, 180, 270])
def test_orientation_of_ffmpeg_rotation_matrices(clockwise):
    orientation = orientation_from_matrix(ffmpeg_rotation_matrix(clockwise))
    assert orientation == Orientation(clockwise)
    picture = np.arange(6).reshape(2, 3, 1)  # a 2x3 picture turned clockwise: its left column becomes the top row
    shown = orientation.apply(picture)[..., 0]
    assert shown.tolist() == {0: [[0, 1, 2], [3, 4, 5]], 90: [[3, 0], [4, 1], [5, 2]],
                              180: [[5, 4, 3], [2, 1, 0]], 270: [[2, 5], [1, 4], [0, 3]]}[clockwise]


def test_odd_angles_are_not_turned():
    assert orientation_from_matrix(ffmpeg_rotation_matrix(30)) is None
    assert orientation_from_matrix([0] * 9) is None


def test_frame_rate_deviation():
    assert frame_rate_deviation(np.arange(10) / 30) == pytest.approx(0)
    # period 4/3: frame 2 is at 2, the constant-rate timeline puts it at 8/3, 2/3 s = half a period away
    assert frame_rate_deviation(np.array([0.0, 1, 2, 4])) == pytest.approx(0.5)
    assert frame_rate_deviation(np.array([0.0, 0.04])) == 0  # two frames always fit a constant rate


# --------------------------------------------------------------------------------------------------------------------
# files that are not videos: one reason per kind, from every backend
# --------------------------------------------------------------------------------------------------------------------

def _zero_bytes(clips, path):
    path.write_bytes(b'')


def _text(clips, path):
    path.write_text('not a video, just a note named like one\n' * 20)


def _audio_only(clips, path):
    write_audio_only(path)


def _opus_only(clips, path):
    write_audio_only(path.with_suffix('.webm'), 'libopus')
    path.with_suffix('.webm').rename(path)  # a WebM named .mp4


def _cut_in_half(name):
    def cut(clips, path):
        data = clips[name].read_bytes()
        path.write_bytes(data[:len(data) // 2])
    return cut


BAD_FILES = {
    'zero_bytes': (_zero_bytes, 'empty file (0 bytes)'),
    'text': (_text, 'not a video container'),
    'audio_only': (_audio_only, 'no video stream (the file has only audio: aac)'),
    'opus_only': (_opus_only, 'no video stream (the file has only audio: opus)'),
    'truncated': (_cut_in_half('h264_bframes_aac.mp4'), "truncated: the 'mdat' box"),  # moov (the index) lost
    'truncated_faststart': (_cut_in_half('h264_faststart.mp4'), "truncated: the 'mdat' box"),
    'truncated_avi': (_cut_in_half('ucf_xvid.avi'), 'truncated: the last packet is cut short'),
}


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('kind', list(BAD_FILES))
def test_not_a_video_says_what_it_is(clips, tmp_path, kind, backend):
    make, reason = BAD_FILES[kind]
    path = tmp_path / f'{kind}.mp4'
    make(clips, path)
    with pytest.raises(VideoDecodeError) as e:
        VideoReader(path, backend)
    assert e.value.path == path and str(path) in str(e.value)
    assert e.value.reason.startswith(reason), e.value.reason
