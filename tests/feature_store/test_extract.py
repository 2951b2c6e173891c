"""Feature extraction (feature_store/extract/, tools/extract_features.py).

Fixtures are three generated H.264 videos of 40/52/60 frames at 64x48 and the tiny ``vit_test`` model (random init
from a seed, or a saved checkpoint) on 32x32 input. What is checked against what:

* preprocessing: the official TAD transform written out literally, and hand-computed short-side/crop/normalisation;
* parity: the official VideoMAE V2 TAD extractor loop re-created literally (one decord ``get_batch`` per window,
  batch 1, fp32, explicit attention, strict load), max abs diff <= 1e-4;
* on-line features (:func:`extract_video_features`) vs the stored ones (and bf16 close to fp32), a ``--config`` file
  vs the weights it names;
* resume and crash safety: a real extraction in a subprocess SIGKILLed after its first part file, and another killed
  inside ``build_store`` while appending, then rerun; the result must equal an uninterrupted run;
* refusal to append with other settings (naming the fields), failures (exit 3, failures.json), and a 2-process
  ``torchrun`` (gloo) run equal to the single-process one. The extraction benchmark is tested in test_bench_extract.py.

The three subprocess tests take most of the time (each new interpreter imports torch).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from feature_store import FeatureStore
from feature_store.extract import (
    ExtractError, Preprocess, build_model, extract_video_features, list_videos, main, sample_windows,
)
from tasks.data.video import VideoReader
from tests.feature_store.extract_kit import (
    FRAMES, MODEL_ARGS, REPO, TINY, TOOL, leftovers, num_windows, official_tad_rows, start_stopped, stores_equal,
)
from tests.torchrun_kit import run_torchrun

pytestmark = pytest.mark.usefixtures('one_thread')  # tiny tensors: one intra-op thread (tests/conftest.py)


# ---------------------------------------------------------------------------------------------------------------------
# preprocessing and inputs
# ---------------------------------------------------------------------------------------------------------------------
def test_preprocess_matches_official_and_hand_computed_transforms():
    frames = torch.randint(0, 256, (5, 48, 64, 3), dtype=torch.uint8)
    # official extract_tad_feature.py: permute(3, 0, 1, 2) -> float / 255 -> F.interpolate on (3, T, H, W)
    official = F.interpolate(frames.permute(3, 0, 1, 2).to(torch.float32) / 255, size=(32, 32), mode='bilinear',
                             align_corners=False)
    assert torch.equal(Preprocess('squash', (32, 32), normalize=False)(frames), official)
    # normalisation: ImageNet mean/std of the 0-255 scale applied to x / 255
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1, 1) / 255
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1, 1) / 255
    torch.testing.assert_close(Preprocess('squash', (32, 32), normalize=True)(frames), (official - mean) / std)
    assert torch.equal(Preprocess('squash', (32, 32))(frames), official)  # the default: the official, no mean/std
    # short side 48 -> 32 makes 64 -> int(32 * 64 / 48) = 42 wide; the central 32 columns start at round(10 / 2) = 5
    small = F.interpolate(frames.permute(0, 3, 1, 2).float(), size=(32, 42), mode='bilinear', align_corners=False)
    expected = (small[..., 5:37] / 255).transpose(0, 1)
    got = Preprocess('short_side', (32, 32), short_side=32, normalize=False)(frames)
    assert got.shape == (3, 5, 32, 32)
    torch.testing.assert_close(got, expected)
    # a non-square squash is the same interpolation to (h, w)
    official_rect = F.interpolate(frames.permute(3, 0, 1, 2).float() / 255, size=(16, 48), mode='bilinear',
                                  align_corners=False)
    torch.testing.assert_close(Preprocess('squash', (16, 48), normalize=False)(frames), official_rect)
    with pytest.raises(ValueError, match='short_side'):
        Preprocess('short_side', (32, 32), short_side=16)


def test_list_videos_folder_and_list_file(videos, tmp_path):
    found = list_videos(videos)
    assert [vid for vid, _ in found] == sorted(FRAMES)  # notes.txt is not a video
    assert all(p.parent == videos for _, p in found)
    other = tmp_path / 'other'
    other.mkdir()
    shutil.copy(videos / 'vid_a.mp4', other / 'vid_a.mp4')
    listing = tmp_path / 'lists' / 'videos.txt'
    listing.parent.mkdir()
    listing.write_text(f'# test list\n\n{videos / "vid_b.mp4"}\n../other/vid_a.mp4\n')
    assert list_videos(listing) == [('vid_a', listing.parent / '../other/vid_a.mp4'), ('vid_b', videos / 'vid_b.mp4')]
    listing.write_text(f'{videos / "vid_a.mp4"}\n{other / "vid_a.mp4"}\n')
    with pytest.raises(ExtractError, match=r"'vid_a' is given twice.*videos.txt:1.*videos.txt:2"):
        list_videos(listing)
    with pytest.raises(ExtractError, match='neither a folder'):
        list_videos(tmp_path / 'missing')


# ---------------------------------------------------------------------------------------------------------------------
# numbers: official parity, on-line vs cached
# ---------------------------------------------------------------------------------------------------------------------
def test_parity_with_official_tad_extractor(videos, tmp_path):
    """``--resize 32x32 --no-normalize --clip-len 16 --stride 4 --dtype fp32`` vs the official loop.

    The official script runs ViT-g at 224 px. Every step is size-generic: the same decoded frames, the same /255,
    the same ``F.interpolate`` call (only its target size differs) and a ViT whose patch grid and fixed position
    table are built for the input size, as the official model is built for 224. So a tiny model at 32 px checks the
    same computation at a cost a CPU test can afford.
    """
    torch.manual_seed(1)
    source = build_model('vit_test', img_size=32, frames=16)
    with torch.no_grad():  # every weight random (the fresh init has zero biases and unit norms)
        for p in source.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ckpt = tmp_path / 'vit_test_k710.pth'
    torch.save({'module': source.state_dict()}, ckpt)

    video = videos / 'vid_b.mp4'
    listing = tmp_path / 'one.txt'
    listing.write_text(f'{video}\n')
    out = tmp_path / 'feats.h5'
    assert main([str(listing), '--out', str(out), '--arch', 'vit_test', '--checkpoint', str(ckpt), '--resize', '32x32',
                 '--no-normalize', '--clip-len', '16', '--stride', '4', '--dtype', 'fp32', '--batch-size', '4',
                 '--num-workers', '0', '--no-progress', '--device', 'cpu']) == 0

    # The official extractor, literally: strict load, eval, fp32, batch 1, one get_batch per window.
    expected = official_tad_rows(video, ckpt, 32)
    assert expected.shape == (num_windows(52, 16, 4), 64) == (10, 64)

    with FeatureStore.open(out) as store:
        feats, meta = store.read('vid_b')
        info = store.info
    assert np.abs(feats - expected).max() <= 1e-4
    assert info.checkpoint_sha256 == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert info.preprocessing['resize'] == 'squash' and info.preprocessing['normalize'] is None
    # row k is the window starting at 4k; its centre frame is 4k + 8 (ActionFormer's 0.5 * num_frames offset)
    np.testing.assert_array_equal(meta.centre_frames, np.arange(10) * 4 + 8)
    assert (meta.clip_len, meta.stride, meta.frame_interval, meta.num_frames) == (16, 4, 1, 52)


def test_online_features_equal_cached(videos, reference):
    model = build_model('vit_test', img_size=32, frames=4, seed=0)  # what the tool builds for TINY
    pre = Preprocess('squash', (32, 32), normalize=False)  # TINY: the default, no mean/std
    with FeatureStore.open(reference) as store:
        assert store.info.checkpoint_sha256 == 'random-init:0'
        for vid, n in FRAMES.items():
            with VideoReader(videos / f'{vid}.mp4') as reader:
                sample = sample_windows(reader, clip_len=4, frame_interval=1, stride=2)
                online = extract_video_features(model, reader, sample, pre, batch_size=3)  # other batching
            cached, meta = store.read(vid)
            assert cached.shape == (num_windows(n, 4, 2), 64) and meta.num_frames == n
            assert np.abs(online.numpy() - cached).max() <= 1e-5
    # bf16 autocast (--dtype bf16) is close to fp32 but not equal: 8 mantissa bits
    with VideoReader(videos / 'vid_a.mp4') as reader:
        low = extract_video_features(model, reader, sample_windows(reader, 4, 1, 2), pre, dtype='bf16').numpy()
    with FeatureStore.open(reference) as store:
        cached = store.read('vid_a')[0]
    rel = np.linalg.norm(low - cached) / np.linalg.norm(cached)
    assert 1e-5 < rel < 5e-2


def test_config_file_gives_arch_size_and_checkpoint(videos, tmp_path, capsys):
    torch.manual_seed(2)
    weights = build_model('vit_test', img_size=32, frames=4)
    with torch.no_grad():
        for p in weights.parameters():
            p.add_(0.05 * torch.randn_like(p))
    (tmp_path / 'cfgdir').mkdir()
    ckpt = tmp_path / 'cfgdir' / 'weights.pth'
    torch.save({'module': weights.state_dict()}, ckpt)
    cfg = tmp_path / 'cfgdir' / 'tiny.py'
    cfg.write_text("model = dict(type='Recognizer3D', backbone=dict(type='VideoMAEv2ViT', arch='vit_test', "
                   "img_size=32, all_frames=4, num_classes=0))\nload_from = 'weights.pth'  # relative to the config\n")
    listing = tmp_path / 'one.txt'
    listing.write_text(f'{videos / "vid_a.mp4"}\n')
    out = tmp_path / 'out.h5'
    args = ['--resize', '32x32', '--clip-len', '4', '--stride', '2', '--num-workers', '0', '--no-progress',
            '--device', 'cpu']
    assert main([str(listing), '--out', str(out), '--config', str(cfg), *args]) == 0
    with FeatureStore.open(out) as store:
        assert store.info.arch == 'vit_test'
        assert store.info.checkpoint_sha256 == hashlib.sha256(ckpt.read_bytes()).hexdigest()
        assert store.info.config['model']['frames'] == 4 and store.info.config['model']['img_size'] == [32, 32]
        stored = store.read('vid_a')[0]
    with VideoReader(videos / 'vid_a.mp4') as reader:
        online = extract_video_features(weights.eval(), reader, sample_windows(reader, 4, 1, 2),
                                        Preprocess('squash', (32, 32)))
    assert np.abs(online.numpy() - stored).max() <= 1e-5
    capsys.readouterr()
    # the repository's ViT-S config names a converted checkpoint that is not there: a one-line error, status 2
    repo_cfg = (REPO / 'configs/recognition/videomaev2'
                / 'vit-small-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400.py')
    assert main([str(listing), '--out', str(tmp_path / 'x.h5'), '--config', str(repo_cfg), *args]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('extract_features: error: load_from of ')
    assert 'checkpoints/vit-small-p16_videomaev2-vit-g-dist-k710-pre_k400.pth: no such checkpoint file' in err


def test_patch_size_from_the_option_or_the_config(videos, tmp_path, capsys):
    # an 8-px vit_test (the tiny AVA / long pre-training configs' size): 32-px frames make a 4 x 4 grid
    torch.manual_seed(3)
    weights = build_model('vit_test', img_size=32, frames=4, patch_size=8)
    assert weights.patch_embed.proj.weight.shape[-2:] == (8, 8)
    with torch.no_grad():
        for p in weights.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ckpt = tmp_path / 'p8.pth'
    torch.save({'module': weights.state_dict()}, ckpt)
    cfg = tmp_path / 'p8.py'
    cfg.write_text("model = dict(backbone=dict(type='VideoMAEv2ViT', arch='vit_test', patch_size=8, img_size=32, "
                   f"all_frames=4))\nload_from = {str(ckpt)!r}\n")
    listing = tmp_path / 'one.txt'
    listing.write_text(f'{videos / "vid_a.mp4"}\n')
    args = ['--resize', '32x32', '--clip-len', '4', '--stride', '2', '--num-workers', '0', '--no-progress',
            '--device', 'cpu']
    with VideoReader(videos / 'vid_a.mp4') as reader:
        online = extract_video_features(weights.eval(), reader, sample_windows(reader, 4, 1, 2),
                                        Preprocess('squash', (32, 32))).numpy()
    for name, how in (('option', ['--arch', 'vit_test', '--checkpoint', str(ckpt), '--patch-size', '8']),
                      ('config', ['--config', str(cfg)])):
        out = tmp_path / f'{name}.h5'
        assert main([str(listing), '--out', str(out), *how, *args]) == 0, name
        with FeatureStore.open(out) as store:
            assert store.info.config['model']['patch_size'] == 8
            assert np.abs(store.read('vid_a')[0] - online).max() <= 1e-5, name
    # the preset's 16-px patches cannot take these weights: the loader says so instead of extracting garbage
    capsys.readouterr()
    status = main([str(listing), '--out', str(tmp_path / 'p16.h5'), '--arch', 'vit_test', '--checkpoint', str(ckpt),
                   *args])
    assert status != 0 and 'patch_embed' in capsys.readouterr().err
    # without an override the provenance has no patch_size key, as stores written before the option existed
    out = tmp_path / 'preset.h5'
    assert main([str(listing), '--out', str(out), '--arch', 'vit_test', '--random-init', *args]) == 0
    with FeatureStore.open(out) as store:
        assert 'patch_size' not in store.info.config['model']


# ---------------------------------------------------------------------------------------------------------------------
# resume, crash safety
# ---------------------------------------------------------------------------------------------------------------------
def _run_and_kill(tmp_path: Path, point: str, args: list[str]) -> None:
    """Start the CLI in a subprocess, wait until it stops itself at ``point``, then SIGKILL it."""
    proc = start_stopped(tmp_path, point, args)
    proc.kill()  # SIGKILL
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.skipif(not Path('/proc/self/stat').exists(), reason='reads the process state from /proc (Linux)')
def test_sigkill_after_first_part_then_rerun_equals_uninterrupted(videos, reference, tmp_path):
    out = tmp_path / 'out.h5'
    _run_and_kill(tmp_path, 'after-first-part', [str(videos), '--out', str(out), *TINY])
    # killed with one video done: it is in a part file, and OUT was never written; the dead run's lock file stays
    # (its POSIX lock went with the process) and the rerun takes it over
    assert not out.exists()
    assert leftovers(out) == ['out.h5.lock', 'out.h5.rank0.parts']
    assert sorted(p.name for p in (tmp_path / 'out.h5.rank0.parts').iterdir()) == ['info.json', 'vid_a.npz']
    assert main([str(videos), '--out', str(out), *TINY]) == 0
    stores_equal(out, reference)
    assert leftovers(out) == []  # parts folded and removed, no temp file


@pytest.mark.skipif(not Path('/proc/self/stat').exists(), reason='reads the process state from /proc (Linux)')
def test_sigkill_inside_build_store_keeps_old_store(videos, reference, tmp_path):
    out = tmp_path / 'out.h5'
    first = tmp_path / 'first.txt'
    first.write_text(f'{videos / "vid_b.mp4"}\n')
    assert main([str(first), '--out', str(out), *TINY]) == 0
    before = out.read_bytes()
    # append the other two videos; the process dies while build_store writes its hidden temporary file
    _run_and_kill(tmp_path, 'inside-build-store', [str(videos), '--out', str(out), *TINY])
    assert out.read_bytes() == before  # the finished file was never touched
    with FeatureStore.open(out) as store:
        assert store.ids() == ['vid_b']
    temporary, lock, parts = leftovers(out)
    assert (lock, parts) == ('out.h5.lock', 'out.h5.rank0.parts')
    assert temporary.startswith('.out.') and temporary.endswith('.tmp.h5')
    assert main([str(videos), '--out', str(out), *TINY]) == 0
    stores_equal(out, reference)
    assert leftovers(out) == []


def test_rerun_skips_complete_videos_and_refuses_other_settings(videos, reference, tmp_path, capsys):
    out = tmp_path / 'out.h5'
    shutil.copy(reference, out)
    before = out.read_bytes()
    assert main([str(videos), '--out', str(out), *TINY]) == 0
    assert 'out.h5: 0 videos extracted (0 clips' in capsys.readouterr().err
    # each option changes exactly one provenance field, named with both values (StoreInfo.differences, the rule
    # merge_stores, build_store and import_npy apply too)
    for extra, difference in [
            (['--seed', '1'], "checkpoint_sha256: 'random-init:0' (stored) vs 'random-init:1' (this run)"),
            (['--stride', '3'], 'config.sampling.stride: 2 (stored) vs 3 (this run)'),
            (['--normalize'], "preprocessing: {'align_corners': False,"),
            (['--img-size', '64'], 'config.model.img_size: [32, 32] (stored) vs [64, 64] (this run)'),
            (['--frames', '8'], 'config.model.frames: 4 (stored) vs 8 (this run)'),
            (['--patch-size', '8'], 'config.model.patch_size: <missing> (stored) vs 8 (this run)'),
            (['--dtype', 'bf16'], "config.compute_dtype: 'fp32' (stored) vs 'bf16' (this run)")]:
        assert main([str(videos), '--out', str(out), *TINY, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f'extract_features: error: {out} was made with different settings, refusing to append')
        assert difference in err and err.count(' (stored) vs ') == 1 and '--overwrite' in err, (extra, err)
    assert out.read_bytes() == before
    assert main([str(videos), '--out', str(out), *TINY, '--seed', '1', '--overwrite']) == 0
    with FeatureStore.open(out) as new, FeatureStore.open(reference) as old:
        assert new.info.checkpoint_sha256 == 'random-init:1' and new.ids() == old.ids()
        assert not np.allclose(new.read('vid_a')[0], old.read('vid_a')[0])  # other weights, re-extracted
    assert main([str(videos), '--out', str(out), *TINY, '--short-side', '40']) == 2
    assert '--resize (squash) and --short-side' in capsys.readouterr().err


def test_failed_videos_are_reported_and_the_rest_extracted(videos, reference, tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    shutil.copy(videos / 'vid_c.mp4', folder / 'vid_c.mp4')
    (folder / 'empty.mp4').write_bytes(b'')
    (folder / 'garbage.mp4').write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    data = (videos / 'vid_a.mp4').read_bytes()
    (folder / 'truncated.mp4').write_bytes(data[:len(data) // 2])
    out = tmp_path / 'out.h5'
    # two decoding worker processes (the DataLoader path) and the progress bar on
    args = [str(folder), '--out', str(out), *MODEL_ARGS, '--num-workers', '2']
    assert main(args) == 3
    err = capsys.readouterr().err
    assert 'clips/s' in err and '4/4 [' in err  # progress bar: videos done of 4 to do, clips/s
    failures = json.loads((tmp_path / 'out.h5.failures.json').read_text())
    assert [f['video_id'] for f in failures] == ['empty', 'garbage', 'truncated']
    assert 'empty' in failures[0]['reason']
    for f in failures:
        assert f'skipping {f["video_id"]} ({folder / (f["video_id"] + ".mp4")})' in err
    with FeatureStore.open(out) as store, FeatureStore.open(reference) as ref:
        assert store.ids() == ['vid_c']
        np.testing.assert_allclose(store.read('vid_c')[0], ref.read('vid_c')[0], rtol=0, atol=1e-6)
    # a rerun skips vid_c, retries the broken ones, and still reports them
    assert main(args) == 3
    assert 'out.h5: 0 videos extracted' in capsys.readouterr().err
    # once the broken files are gone, the failures file goes too
    for name in ('empty', 'garbage', 'truncated'):
        (folder / f'{name}.mp4').unlink()
    assert main(args) == 0
    assert leftovers(out) == []


# ---------------------------------------------------------------------------------------------------------------------
# distributed
# ---------------------------------------------------------------------------------------------------------------------
def test_torchrun_two_processes_equal_single_process(videos, reference, tmp_path):
    torchrun = Path(sys.executable).with_name('torchrun')
    if not torchrun.exists():
        pytest.skip(f'torchrun is not installed next to {sys.executable}')
    out = tmp_path / 'dist.h5'
    proc = run_torchrun(TOOL, [videos, '--out', out, *TINY])  # gloo, on the CPU (TINY has --device cpu)
    # rank 0 took vid_a and vid_c (sorted indices 0 and 2), rank 1 vid_b; the shards were merged and removed
    assert 'dist.h5: 3 videos extracted' in proc.stderr
    stores_equal(out, reference, exact=False)  # to 1e-6: features computed in other processes
    assert leftovers(out) == []
