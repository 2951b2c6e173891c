"""Extraction frictions of issue 21, each reproduced on the code before the fix (tools/extract_features.py).

* INPUT: a single video file (was read as a list: ``'utf-8' codec can't decode``), a folder searched with
  ``--recursive`` (was: ``no videos``), equal names in two folders kept apart by ``--id-from relpath`` (was: "video
  id 'x' is given twice"), and a list line that is not a video named by its line;
* weights: no ``--checkpoint`` is refused unless ``--random-init`` (was: random features, silently);
* ``--config`` whose frames / img_size disagree with the windows is refused (was: resized silently);
* defaults: the official TAD preprocessing and windows (was: ImageNet mean/std unless ``--no-normalize``), checked
  against the official extractor's loop written out literally, and printed at start;
* ``--store-dtype fp16``: the stored rows are the float32 ones rounded to float16.

Known answers come from the ``reference`` fixture (an uninterrupted run of the same settings, conftest.py) or from the
official loop, never from the code under test.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from feature_store import FeatureStore
from feature_store.extract import build_model, find_videos, main
from tests.feature_store.extract_kit import FRAMES, TINY, official_tad_rows

pytestmark = pytest.mark.usefixtures('one_thread')  # tiny tensors: one intra-op thread (tests/conftest.py)

# TINY's model and windows without its weights option
NO_WEIGHTS = [a for a in TINY if a != '--random-init']


def _same_rows(store_path: Path, video_id: str, reference: Path, ref_id: str) -> None:
    with FeatureStore.open(store_path) as store, FeatureStore.open(reference) as ref:
        got, meta = store.read(video_id)
        want, ref_meta = ref.read(ref_id)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=video_id)
    np.testing.assert_array_equal(meta.centre_frames, ref_meta.centre_frames)
    assert meta.num_frames == ref_meta.num_frames == FRAMES[ref_id]


def _weights(tmp_path: Path, frames: int, img_size: int, seed: int = 1) -> Path:
    """A saved ``vit_test`` with every weight random (a fresh init has zero biases and unit norms)."""
    torch.manual_seed(seed)
    model = build_model('vit_test', img_size=img_size, frames=frames)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path / f'vit_test_{frames}x{img_size}.pth'
    torch.save({'module': model.state_dict()}, path)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# INPUT
# ---------------------------------------------------------------------------------------------------------------------
def test_a_single_video_file_is_an_input(videos, reference, tmp_path):
    out = tmp_path / 'one.h5'
    assert main([str(videos / 'vid_b.mp4'), '--out', str(out), *TINY]) == 0
    with FeatureStore.open(out) as store:
        assert store.ids() == ['vid_b']
    _same_rows(out, 'vid_b', reference, 'vid_b')
    # a video without a known suffix is binary, so it is a video too, not a list; a text file stays a list
    odd = tmp_path / 'clip.bin'
    shutil.copy(videos / 'vid_a.mp4', odd)
    assert [(v.video_id, v.path, v.line) for v in find_videos(odd)] == [('clip', odd, None)]
    listing = tmp_path / 'list.txt'
    listing.write_text(f'{odd}\n')
    assert [(v.video_id, v.line) for v in find_videos(listing)] == [('clip', f'{listing}:1')]


def test_recursive_folder_with_equal_names_and_relpath_ids(videos, reference, tmp_path, capsys):
    root = tmp_path / 'nested'
    for sub, vid in (('a', 'vid_a'), ('b/deeper', 'vid_b')):
        (root / sub).mkdir(parents=True)
        shutil.copy(videos / f'{vid}.mp4', root / sub / 'x.mp4')
    (root / '.cache').mkdir()
    shutil.copy(videos / 'vid_c.mp4', root / '.cache' / 'x.mp4')  # hidden folders are skipped
    out = tmp_path / 'out.h5'
    args = [str(root), '--out', str(out), *TINY]
    capsys.readouterr()
    assert main(args) == 2
    assert 'pass --recursive' in capsys.readouterr().err
    assert main(args + ['--recursive']) == 2
    err = capsys.readouterr().err
    assert "video id 'x' is given twice" in err and '--id-from relpath' in err
    assert not out.exists()
    assert main(args + ['--recursive', '--id-from', 'relpath']) == 0
    with FeatureStore.open(out) as store:
        assert store.ids() == ['a/x', 'b/deeper/x']
    _same_rows(out, 'a/x', reference, 'vid_a')
    _same_rows(out, 'b/deeper/x', reference, 'vid_b')
    # relpath ids of a list are relative to the list's folder; a path outside it has no such id
    listing = root / 'videos.txt'
    listing.write_text('a/x.mp4\nb/deeper/x.mp4\n')
    assert [v.video_id for v in find_videos(listing, id_from='relpath')] == ['a/x', 'b/deeper/x']
    listing.write_text(f'a/x.mp4\n{videos / "vid_c.mp4"}\n')
    assert main([str(listing), '--out', str(tmp_path / 'l.h5'), '--id-from', 'relpath', *TINY]) == 2
    assert f'{listing}:2: {videos / "vid_c.mp4"} is not under {root}' in capsys.readouterr().err


def test_a_folder_without_videos_points_at_recursive(videos, tmp_path, capsys):
    (tmp_path / 'top' / 'sub').mkdir(parents=True)
    shutil.copy(videos / 'vid_a.mp4', tmp_path / 'top' / 'sub' / 'vid_a.mp4')
    assert main([str(tmp_path / 'top'), '--out', str(tmp_path / 'o.h5'), *TINY]) == 2
    err = capsys.readouterr().err
    assert f'no videos in {tmp_path / "top"}' in err and 'pass --recursive' in err


def test_list_lines_that_are_not_videos_are_named_by_line(videos, reference, tmp_path, capsys):
    listing = tmp_path / 'videos.txt'
    listing.write_text(f'# two bad lines\n{videos / "vid_c.mp4"}\n{videos / "notes.txt"}\n\nmissing.mp4\n')
    out = tmp_path / 'out.h5'
    assert main([str(listing), '--out', str(out), *TINY]) == 3
    err = capsys.readouterr().err
    assert f'notes ({videos / "notes.txt"}, {listing}:3): not a video container' in err
    assert f'missing ({tmp_path / "missing.mp4"}, {listing}:5): file does not exist' in err
    failures = json.loads((tmp_path / 'out.h5.failures.json').read_text())
    assert [(f['video_id'], f['line']) for f in failures] == [('missing', f'{listing}:5'), ('notes', f'{listing}:3')]
    _same_rows(out, 'vid_c', reference, 'vid_c')


# ---------------------------------------------------------------------------------------------------------------------
# weights and --config
# ---------------------------------------------------------------------------------------------------------------------
def test_no_weights_is_refused_unless_random_init(videos, reference, tmp_path, capsys):
    out = tmp_path / 'out.h5'
    assert main([str(videos), '--out', str(out), *NO_WEIGHTS]) == 2
    err = capsys.readouterr().err
    assert err.startswith('extract_features: error: no weights given') and '--random-init' in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    ckpt = _weights(tmp_path, 4, 32)
    assert main([str(videos), '--out', str(out), *TINY, '--checkpoint', str(ckpt)]) == 2
    assert f'--random-init and --checkpoint ({ckpt}) exclude each other' in capsys.readouterr().err
    assert main([str(videos / 'vid_a.mp4'), '--out', str(out), *TINY]) == 0  # TINY has --random-init
    _same_rows(out, 'vid_a', reference, 'vid_a')


def test_config_whose_model_disagrees_with_the_windows_is_refused(videos, tmp_path, capsys):
    ckpt = _weights(tmp_path, 8, 48)
    cfg = tmp_path / 'tiny.py'
    cfg.write_text("model = dict(backbone=dict(type='VideoMAEv2ViT', arch='vit_test', img_size=48, all_frames=8))\n"
                   f'load_from = {str(ckpt)!r}\n')
    video = str(videos / 'vid_a.mp4')
    run = ['--num-workers', '0', '--no-progress', '--device', 'cpu', '--stride', '2']
    out = tmp_path / 'out.h5'
    # the case: an 8-frame model given the default 16-frame windows
    assert main([video, '--out', str(out), '--config', str(cfg), '--resize', '48x48', *run]) == 2
    err = capsys.readouterr().err
    assert (f'--config {cfg}: model.backbone.all_frames is 8, but the windows have --clip-len 16 frames: pass '
            '--clip-len 8 (or --frames 16') in err
    # a 48x48 model given 32x48 frames, and given the default 224x224
    assert main([video, '--out', str(out), '--config', str(cfg), '--clip-len', '8', '--resize', '32x48', *run]) == 2
    assert ('model.backbone.img_size is 48x48, but the frames are --resize 32x48: pass --resize 48x48 (or --img-size '
            '32x48') in capsys.readouterr().err
    assert main([video, '--out', str(out), '--config', str(cfg), '--clip-len', '8', *run]) == 2
    assert 'the frames are --resize 224x224 (the default): pass --resize 48x48' in capsys.readouterr().err
    assert main([video, '--out', str(out), '--config', str(cfg), '--clip-len', '8', '--short-side', '64', *run]) == 2
    assert 'the frames are --short-side 64 (a 64x64 crop): pass --short-side 48' in capsys.readouterr().err
    assert not out.exists()
    # agreeing, or overridden explicitly (the model is then built for the given size, its position table resized)
    assert main([video, '--out', str(out), '--config', str(cfg), '--clip-len', '8', '--resize', '48x48', *run]) == 0
    assert main([video, '--out', str(tmp_path / 'o2.h5'), '--config', str(cfg), '--clip-len', '4', '--frames', '4',
                 '--resize', '32x32', '--img-size', '32', *run]) == 0
    with FeatureStore.open(tmp_path / 'o2.h5') as store:
        assert store.info.config['model']['frames'] == 4 and store.info.config['model']['img_size'] == [32, 32]


# ---------------------------------------------------------------------------------------------------------------------
# defaults: the official TAD preprocessing and windows, printed at start
# ---------------------------------------------------------------------------------------------------------------------
def test_defaults_are_the_official_tad_extractor_and_are_printed(videos, tmp_path, capsys):
    """Only the model and its weights are named: windows, resize and normalisation are the defaults, and must be the
    official extractor's (16 frames every 4, squash to 224x224, /255, no mean/std), computed here as its loop does
    (as test_extract.py::test_parity_with_official_tad_extractor, there with every option given)."""
    ckpt = _weights(tmp_path, 16, 224)
    video = videos / 'vid_b.mp4'
    listing = tmp_path / 'one.txt'
    listing.write_text(f'{video}\n')
    out = tmp_path / 'feats.h5'
    capsys.readouterr()
    assert main([str(listing), '--out', str(out), '--arch', 'vit_test', '--checkpoint', str(ckpt), '--batch-size',
                 '4', '--num-workers', '0', '--no-progress', '--device', 'cpu']) == 0
    err = capsys.readouterr().err

    expected = official_tad_rows(video, ckpt, 224)
    with FeatureStore.open(out) as store:
        feats, meta = store.read('vid_b')
        info = store.info
    assert feats.shape == expected.shape == (10, 64)
    assert np.abs(feats - expected).max() <= 1e-4
    assert info.checkpoint_sha256 == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert info.preprocessing['normalize'] is None and info.preprocessing['size'] == [224, 224]
    np.testing.assert_array_equal(meta.centre_frames, np.arange(10) * 4 + 8)

    block = err.split('\n')[:8]
    assert block[0] == f'extract_features: {out} on cpu'
    assert block[1:] == [
        '  model       vit_test, built for 16 frames x 224x224',
        f'  checkpoint  {ckpt}',
        '  windows     16 frames, every 1 frame(s), a window every 4 frames, native frames (the official THUMOS14 '
        'windows)',
        '  preprocess  squash to 224x224 (bilinear, /255), no mean/std (the official TAD preprocessing)',
        '  compute     fp32, stored as float32',
        '  videos      1, 0 of them already complete',
        f'{out}: 1 videos extracted (10 clips, ' + block[7].split('(10 clips, ')[1]]


def test_explicit_normalisation_flags_keep_stores_appendable(videos, reference, tmp_path, capsys):
    # a store of the default (no mean/std) takes a rerun that says --no-normalize, the old way to get it
    out = tmp_path / 'plain.h5'
    shutil.copy(reference, out)
    assert main([str(videos), '--out', str(out), *TINY, '--no-normalize']) == 0
    assert f'{out}: 0 videos extracted' in capsys.readouterr().err
    # a store made with mean/std (the old default): its rerun with --normalize appends; one without is refused,
    # and the message says which flag gives the stored preprocessing
    normed = tmp_path / 'normed.h5'
    assert main([str(videos / 'vid_a.mp4'), '--out', str(normed), *TINY, '--normalize']) == 0
    with FeatureStore.open(normed) as store, FeatureStore.open(reference) as ref:
        assert store.info.preprocessing['normalize'] is not None
        assert not np.allclose(store.read('vid_a')[0], ref.read('vid_a')[0])
    capsys.readouterr()
    assert main([str(videos), '--out', str(normed), *TINY]) == 2
    err = capsys.readouterr().err
    assert 'refusing to append' in err and 'pass --normalize' in err
    assert main([str(videos), '--out', str(normed), *TINY, '--normalize']) == 0
    assert f'{normed}: 2 videos extracted' in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------------
# --store-dtype fp16
# ---------------------------------------------------------------------------------------------------------------------
def test_fp16_storage_is_the_fp32_rows_rounded(videos, reference, tmp_path, capsys):
    out = tmp_path / 'half.h5'
    assert main([str(videos), '--out', str(out), *TINY, '--store-dtype', 'fp16']) == 0
    assert '  compute     fp32, stored as float16' in capsys.readouterr().err
    with FeatureStore.open(out) as half, FeatureStore.open(reference) as ref:
        assert half.info.dtype == 'float16' and half.ids() == ref.ids()
        for vid in ref.ids():
            got, want = half.read(vid)[0], ref.read(vid)[0]
            assert got.dtype == np.float16
            # round to nearest: half a float16 ulp (2^-11 relative), and the features computed to 1e-6
            np.testing.assert_allclose(got.astype(np.float32), want, rtol=2.0 ** -11, atol=1e-6)
            assert not np.array_equal(got.astype(np.float32), want)
    # the storage dtype changes what is read back, so it is provenance: an fp32 run does not append to it
    assert main([str(videos), '--out', str(out), *TINY]) == 2
    assert "dtype: 'float16' (stored) vs 'float32' (this run)" in capsys.readouterr().err



def test_fp16_overflow_fails_the_video_not_the_run(videos, tmp_path, monkeypatch, capsys):
    import feature_store.extract.run as run

    forward = run.forward_clips
    # the first run's rows pushed beyond float16's largest value, 65504; the rerun's left as they are
    big = [True]
    monkeypatch.setattr(run, 'forward_clips',
                        lambda model, clips, dtype: forward(model, clips, dtype) * (1e6 if big[0] else 1.0))
    listing = tmp_path / 'one.txt'
    listing.write_text(f'{videos / "vid_a.mp4"}\n')
    out = tmp_path / 'half.h5'
    assert main([str(listing), '--out', str(out), *TINY, '--store-dtype', 'fp16']) == 3
    err = capsys.readouterr().err
    assert f'vid_a ({videos / "vid_a.mp4"}, {listing}:1): features up to' in err
    assert 'overflow float16 (max 65504); extract it with --store-dtype fp32' in err
    big[0] = False
    listing.write_text(f'{videos / "vid_a.mp4"}\n{videos / "vid_c.mp4"}\n')
    assert main([str(listing), '--out', str(out), *TINY, '--store-dtype', 'fp16']) == 0  # the rerun completes it
    with FeatureStore.open(out) as store:
        assert store.ids() == ['vid_a', 'vid_c']
