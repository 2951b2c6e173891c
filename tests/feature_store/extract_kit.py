"""What the extraction tests share: the tiny command line, the fixture videos' lengths, and store comparisons.

The fixtures themselves (``videos``, ``reference``) are in ``conftest.py`` beside this file.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from feature_store import FeatureStore
from tests.torchrun_kit import REPO, cpu_env

TOOL = REPO / 'tools' / 'extract_features.py'
FRAMES = {'vid_a': 40, 'vid_b': 52, 'vid_c': 60}
# vit_test on 4-frame windows at 32x32, every 2 frames: 19 + 25 + 29 windows, a fraction of a second on a CPU. On the
# CPU also where a GPU exists (the default is CUDA when available): the tests compare with CPU numbers at float32
# tolerances, and a store refuses to mix devices.
MODEL_ARGS = ['--arch', 'vit_test', '--random-init', '--resize', '32x32', '--clip-len', '4', '--stride', '2',
              '--batch-size', '4', '--device', 'cpu']
TINY = [*MODEL_ARGS, '--num-workers', '0', '--no-progress']  # later options win, e.g. TINY + ['--stride', '3']


def num_windows(n: int, clip_len: int, stride: int) -> int:
    return len(range(0, n - clip_len + 1, stride))


def stores_equal(a: Path, b: Path, exact: bool = True) -> None:
    """Same ids, same features (exactly, or to 1e-6), same per-video and file attributes except the time stamp."""
    with FeatureStore.open(a) as x, FeatureStore.open(b) as y:
        assert x.ids() == y.ids()
        for vid in x.ids():
            fa, ma = x.read(vid)
            fb, mb = y.read(vid)
            if exact:
                np.testing.assert_array_equal(fa, fb, err_msg=vid)
            else:
                np.testing.assert_allclose(fa, fb, rtol=0, atol=1e-6, err_msg=vid)
            assert ma.to_dict() == mb.to_dict()
    with h5py.File(a, 'r') as x, h5py.File(b, 'r') as y:
        ax = {k: v for k, v in x.attrs.items() if k != 'created'}
        ay = {k: v for k, v in y.attrs.items() if k != 'created'}
        assert ax == ay
        for vid in FRAMES:
            if vid in x:
                assert sorted(x[vid].attrs) == sorted(y[vid].attrs)
                for key in x[vid].attrs:
                    np.testing.assert_array_equal(x[vid].attrs[key], y[vid].attrs[key])


def leftovers(out: Path) -> list[str]:
    """Files of a run beside ``out``: shards, part folders, failure lists, lock files and hidden temporary files."""
    return sorted(p.name for p in out.parent.iterdir()
                  if (p.name.startswith(out.name) and p.name != out.name) or p.name.startswith(f'.{out.stem}.'))


STOP_DRIVER = '''
"""Run the extraction CLI, stopping itself (SIGSTOP) at a chosen point so that a test can act on it there."""
import os, signal, sys
import feature_store.extract.run as run
from feature_store import FeatureStore
from feature_store.extract import main

point = sys.argv[1]
if point == 'after-first-part':
    write_part = run.write_part
    written = []
    def stop_after_write(*args, **kwargs):
        path = write_part(*args, **kwargs)
        written.append(path)
        if len(written) == 1:
            os.kill(os.getpid(), signal.SIGSTOP)
        return path
    run.write_part = stop_after_write
elif point == 'inside-build-store':
    add = FeatureStore.add
    calls = []
    def stop_in_add(self, *args, **kwargs):
        add(self, *args, **kwargs)
        self.flush()
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGSTOP)
    FeatureStore.add = stop_in_add
sys.exit(main(sys.argv[2:]))
'''


def start_stopped(tmp_path: Path, point: str, args: list[str]) -> subprocess.Popen:
    """Start the extraction CLI in a subprocess and return it once it has stopped itself (SIGSTOP) at ``point``
    ('after-first-part' or 'inside-build-store'); the caller kills or continues it and closes its stderr."""
    driver = tmp_path / 'driver.py'
    driver.write_text(STOP_DRIVER)
    proc = subprocess.Popen([sys.executable, str(driver), point, *args], env=cpu_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while True:
            state = Path(f'/proc/{proc.pid}/stat').read_text().rsplit(')', 1)[1].split()[0]
            if state == 'T':
                return proc
            if proc.poll() is not None:
                raise AssertionError(f'the extraction ended before {point} (status {proc.returncode}): '
                                     f'{proc.stderr.read().decode()}')
            assert time.monotonic() < deadline, f'the extraction never reached {point}'
            time.sleep(0.02)
    except BaseException:
        proc.kill()
        proc.wait()
        proc.stderr.close()
        raise


def official_tad_rows(video: Path, ckpt: Path, size: int) -> np.ndarray:
    """The official TAD extractor, literally: strict load, eval, fp32, batch 1, one decord get_batch per 16-frame
    window every 4 frames, squashed to ``size`` x ``size`` and /255. Returns (windows, C) features."""
    import decord
    import torch
    import torch.nn.functional as F

    from backbone import VideoMAEv2ViT

    official = VideoMAEv2ViT('vit_test', img_size=size, all_frames=16, num_classes=0, fused_attn=False)
    official.load_state_dict(torch.load(ckpt, map_location='cpu')['module'], strict=True)
    official.eval()
    vr = decord.VideoReader(str(video), num_threads=1, ctx=decord.cpu(0))
    rows = []
    for start_idx in range(0, len(vr) - 15, 4):
        frame = torch.from_numpy(vr.get_batch(np.arange(start_idx, start_idx + 16)).asnumpy())  # (16, H, W, 3)
        frame_q = F.interpolate(frame.permute(3, 0, 1, 2).to(torch.float32) / 255, size=(size, size),
                                mode='bilinear', align_corners=False)  # (3, 16, s, s): 3 as batch, T as channels
        with torch.no_grad():
            rows.append(official.forward_features(frame_q.unsqueeze(0)).numpy())
    return np.vstack(rows)
