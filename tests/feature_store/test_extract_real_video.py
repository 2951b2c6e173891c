"""Extraction over footage from real encoders (tests/data/video/codec_kit.py): every valid file is stored with the
container's presentation times as ``centre_times`` and the decoder that read it; files that are not videos are
listed in ``OUT.h5.failures.json`` with a reason that says what they are, and the run exits 3.

The truth for ``centre_times`` is the pts each clip was written with (``Clip.timestamps``), taken at the centre frame
of every window; for AV1, which decord cannot decode, ``auto`` must have used PyAV.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from feature_store import FeatureStore
from feature_store.extract import main
from tests.data.video.codec_kit import CLIPS, write_audio_only, write_clips
from tests.feature_store.extract_kit import MODEL_ARGS

pytestmark = pytest.mark.usefixtures('one_thread')

VALID = ['ssv2_vp9.webm', 'ucf_xvid.avi', 'h264_bframes_aac.mp4', 'h264.mkv', 'hevc.mp4', 'av1.mp4',
         'h264_10bit.mp4', 'mjpeg.avi', 'gray.mkv', 'yuv444_odd.mp4', 'five_frames.mp4', 'rot90.mp4',
         'vfr_two_rates.mp4', 'vfr_jitter.mp4']
ARGS = [*MODEL_ARGS, '--clip-len', '8', '--num-workers', '0', '--no-progress']  # 8 > five_frames' 5 frames


@pytest.fixture(scope='module')
def footage(tmp_path_factory):
    folder = tmp_path_factory.mktemp('footage')
    write_clips(folder, VALID)
    write_audio_only(folder / 'audio_only.mp4')
    (folder / 'empty.mp4').write_bytes(b'')
    (folder / 'notes.mp4').write_text('a text file named .mp4\n')
    whole = (folder / 'h264_bframes_aac.mp4').read_bytes()
    (folder / 'cut.mp4').write_bytes(whole[:len(whole) // 2])
    return folder


def test_every_valid_file_is_stored_with_container_times_and_the_rest_reported(footage, tmp_path, capsys):
    out = tmp_path / 'out.h5'
    assert main([str(footage), '--out', str(out), *ARGS]) == 3
    err = capsys.readouterr().err
    assert '1 of the extracted videos have a variable frame rate' in err
    assert 'vfr_two_rates (' in err and 'has a variable frame rate' in err
    failures = {f['video_id']: f['reason'] for f in json.loads((tmp_path / 'out.h5.failures.json').read_text())}
    assert sorted(failures) == ['audio_only', 'cut', 'empty', 'notes']
    assert failures['empty'].startswith('empty file (0 bytes)')
    assert failures['notes'].startswith('not a video container')
    assert failures['audio_only'].startswith('no video stream (the file has only audio')
    assert failures['cut'].startswith('truncated')
    with FeatureStore.open(out) as store:
        assert store.ids() == sorted(name.split('.')[0] for name in VALID)
        for name in VALID:
            meta = store.meta(name.split('.')[0])
            truth = CLIPS[name].timestamps()
            # Matroska/WebM keep times in milliseconds: the written pts, rounded to the container's 1 ms clock
            np.testing.assert_allclose(meta.centre_times, truth[meta.centre_frames], rtol=0, atol=5.01e-4,
                                       err_msg=name)
            # a row's time is its centre frame's presentation time, also where frame / fps would be wrong
            np.testing.assert_array_equal(meta.row_to_seconds(np.arange(meta.num_rows)), meta.centre_times)
            assert meta.variable_frame_rate == (name == 'vfr_two_rates.mp4'), name
            assert meta.decoder == ('pyav' if name == 'av1.mp4' else 'decord'), name
        assert store.info.config['decoder']['backend'] == 'auto'
        assert set(store.info.config['decoder']['versions']) == {'decord', 'av'}
        # the two-rate video: 20 frames at 25 fps, then 12.5 fps; frame 27 is at 0.8 + 7 / 12.5 = 1.36 s, where the
        # average rate (40 frames over 2.4 s) would say 1.62 s
        vfr = store.meta('vfr_two_rates')
        row = int(np.flatnonzero(vfr.centre_frames == 28)[0])
        assert vfr.row_to_seconds(row) == pytest.approx(0.8 + 8 / 12.5)


def test_explicit_decord_refuses_av1_naming_the_codec(footage, tmp_path):
    listing = tmp_path / 'list.txt'
    listing.write_text(f'{footage / "av1.mp4"}\n{footage / "h264.mkv"}\n')
    out = tmp_path / 'out.h5'
    assert main([str(listing), '--out', str(out), *ARGS, '--backend', 'decord']) == 3
    (failure,) = json.loads((tmp_path / 'out.h5.failures.json').read_text())
    assert failure['video_id'] == 'av1'
    assert "codec 'av1' is not supported by decord" in failure['reason'] and 'truncated' not in failure['reason']
    with FeatureStore.open(out) as store:
        assert store.ids() == ['h264'] and store.meta('h264').decoder == 'decord'


def test_fps_resamples_a_variable_frame_rate_video_to_one_uniform_time_axis(footage, tmp_path, capsys):
    from feature_store.extract import Preprocess, build_model, forward_clips
    from tasks.data.video import VideoReader

    listing = tmp_path / 'list.txt'
    listing.write_text(f'{footage / "vfr_two_rates.mp4"}\n')
    out = tmp_path / 'out.h5'
    assert main([str(listing), '--out', str(out), *ARGS, '--fps', '8']) == 0
    # 2.4 s at 8 per second: 19 resampled frames, frame k at k / 8 s; the frame taken for each instant is the one
    # shown nearest to it (brute force over the written pts)
    ts = CLIPS['vfr_two_rates.mp4'].timestamps()
    taken = np.array([int(np.argmin(np.abs(ts - k / 8))) for k in range(19)])
    with FeatureStore.open(out) as store:
        meta = store.meta('vfr_two_rates')
        assert (meta.fps, meta.num_frames, meta.variable_frame_rate) == (8.0, 19, False)
        np.testing.assert_array_equal(meta.centre_frames, 4 + 2 * np.arange(6))  # 8-frame windows every 2
        np.testing.assert_allclose(meta.centre_times, meta.centre_frames / 8)
        assert store.info.config['sampling']['sample_fps'] == 8.0
        row3 = store.read_features('vfr_two_rates')[3]
    # row 3 is the window of resampled frames 6..13: decode those frames directly and run the model on them
    model = build_model('vit_test', img_size=32, frames=8)
    with VideoReader(footage / 'vfr_two_rates.mp4') as reader:
        clip = Preprocess('squash', (32, 32))(reader.get_frames(taken[6:14]))
    np.testing.assert_allclose(forward_clips(model, clip[None])[0].numpy(), row3, atol=1e-5)
    # the native-frame features of the same video are other features: appending them is refused
    assert main([str(listing), '--out', str(out), *ARGS]) == 2
    assert 'config.sampling.sample_fps: 8.0 (stored) vs <missing> (this run)' in capsys.readouterr().err
