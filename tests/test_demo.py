"""The `make demo` job (tools/demo.py) runs end to end: generated video -> video layer -> backbone features."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from tasks.video import VideoReader

ROOT = Path(__file__).resolve().parents[1]


def _load_demo():
    spec = importlib.util.spec_from_file_location('demo_tool', ROOT / 'tools' / 'demo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_prints_feature_shape_and_throughput(tmp_path, capsys):
    demo = _load_demo()
    assert demo.main(['--arch', 'vit_test', '--repeats', '1', '--device', 'cpu', '--work-dir', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # vit_test is 64 wide: one pooled feature of 64 per clip, in both dtypes
    assert out.count('(1, 64)') == 2
    assert 'clips/s' in out
    # the clip is the Kinetics single-view test clip: 16 frames every 4, centred in the 120-frame video
    # (official protocol: every 4th frame -> 30 frames, one clip starting at (30 - 16) // 2 = 7 -> frame 28)
    assert 'clip frames [28, 32, 36' in out and ', 88]' in out
    with VideoReader(tmp_path / 'demo_clip.mp4') as reader:
        assert reader.num_frames == 120 and abs(reader.fps - 30) < 1e-6  # 4 s at 30 fps, as make_demo_video writes


def test_demo_reports_a_bad_checkpoint_clearly(tmp_path, capsys):
    demo = _load_demo()
    bad = tmp_path / 'bad.pth'
    bad.write_text('not a checkpoint')
    assert demo.main(['--arch', 'vit_test', '--checkpoint', str(bad), '--work-dir', str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
