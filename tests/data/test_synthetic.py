"""The embedded synthetic benchmark: files parse with the task readers, match the manifest, decode, are deterministic,
and the classification classes differ only in the order of their frames.

The ``tiny`` preset is generated once per module; the class-design tests render clips directly (no encoding).
"""
from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import decord
import numpy as np
import pytest
from scipy.stats import ks_2samp

from tasks.data import annotations as A
from tasks.data.synthetic import GENERATOR_VERSION, PRESETS, classification, generate, is_complete, read_manifest
from tasks.data.synthetic import ava, render, thumos
from tasks.data.synthetic.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]
SEED = 0
TINY = PRESETS['tiny']


@pytest.fixture(scope='module')
def bench(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('synthetic') / 'tiny'
    generate(out, 'tiny', SEED, workers=1, log=lambda msg: None)
    return out


def decode(path: Path) -> np.ndarray:
    """All frames, (T, H, W, 3) uint8, with decord (the decoder the tasks use)."""
    vr = decord.VideoReader(str(path))
    return vr.get_batch(list(range(len(vr)))).asnumpy()


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# ----------------------------------------------------------------------------------------------------------------------
# manifest, skipping, CLI


def test_manifest_lists_exactly_the_files_written(bench):
    manifest = read_manifest(bench)
    assert (manifest['generator'], manifest['version'], manifest['preset'], manifest['seed']) == \
        ('tasks.data.synthetic', GENERATOR_VERSION, 'tiny', SEED)
    on_disk = {p.relative_to(bench).as_posix() for p in bench.rglob('*') if p.is_file()}
    # no temporary or stray files: everything but the manifest is listed
    assert on_disk == set(manifest['files']) | {'manifest.json'}
    for rel, info in manifest['files'].items():
        assert (bench / rel).stat().st_size == info['bytes'], rel
        assert hashlib.sha256((bench / rel).read_bytes()).hexdigest() == info['sha256'], rel
    # counts follow from the preset
    c, a, t = TINY.classification, TINY.ava, TINY.thumos
    counts = manifest['counts']
    assert counts['classification'] == {'num_classes': 10, 'train': 10 * c.train_per_class,
                                        'val': 10 * c.val_per_class}
    assert (counts['ava']['train']['videos'], counts['ava']['val']['videos']) == (a.train_videos, a.val_videos)
    assert (counts['thumos']['Validation']['videos'], counts['thumos']['Test']['videos']) == \
        (t.val_videos, t.test_videos)
    n_videos = 10 * (c.train_per_class + c.val_per_class) + a.train_videos + a.val_videos + t.val_videos + \
        t.test_videos
    assert sum(rel.endswith('.mp4') for rel in manifest['files']) == n_videos


def test_complete_folder_is_skipped_and_cli_agrees(bench, capsys):
    before = {p: p.stat().st_mtime_ns for p in bench.rglob('*') if p.is_file()}
    messages = []
    generate(bench, 'tiny', SEED, workers=1, log=messages.append)
    assert len(messages) == 1 and 'nothing to do' in messages[0]
    assert cli_main(['--out', str(bench), '--preset', 'tiny', '--seed', str(SEED)]) == 0
    assert 'nothing to do' in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in bench.rglob('*') if p.is_file()} == before
    assert is_complete(bench, 'tiny', SEED)
    assert not is_complete(bench, 'tiny', SEED + 1)
    assert not is_complete(bench, 'default', SEED)


def test_incomplete_or_interrupted_folder_is_not_complete(bench, tmp_path, monkeypatch):
    copy = tmp_path / 'copy'
    shutil.copytree(bench, copy)
    assert is_complete(copy, 'tiny', SEED)
    video = next((copy / 'thumos' / 'videos').glob('*.mp4'))
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])  # truncated
    assert not is_complete(copy, 'tiny', SEED)
    video.write_bytes(data)
    assert is_complete(copy, 'tiny', SEED)

    # a run that dies half-way must not leave a folder that looks complete (the old manifest goes first)
    def boom(job):
        raise RuntimeError('simulated crash')
    monkeypatch.setattr(thumos, 'run_job', boom)
    with pytest.raises(RuntimeError, match='simulated crash'):
        generate(copy, 'tiny', SEED, workers=1, force=True, log=lambda msg: None)
    assert not (copy / 'manifest.json').exists()
    assert not is_complete(copy, 'tiny', SEED)


def test_tool_script_runs(tmp_path):
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    res = subprocess.run([sys.executable, str(REPO / 'tools' / 'make_synthetic.py'), '--help'], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert '--preset {default,tiny}' in res.stdout and '--seed' in res.stdout
    res = subprocess.run([sys.executable, str(REPO / 'tools' / 'make_synthetic.py'), '--out', str(tmp_path),
                          '--preset', 'huge'], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "invalid choice: 'huge'" in res.stderr


# ----------------------------------------------------------------------------------------------------------------------
# classification files


def test_classification_lists_and_ssv2_files_agree_and_decode(bench):
    root = bench / 'classification'
    cfg = TINY.classification
    labels = A.read_ssv2_labels(root / 'labels.json')
    # SSv2 numbers classes in alphabetical order of their names
    assert list(labels) == sorted(labels) and sorted(labels.values()) == list(range(10))
    assert set(labels) == {'Growing something', 'Shrinking something', 'Moving something up',
                           'Moving something down', 'Moving something from left to right',
                           'Moving something from right to left', 'Rotating something clockwise',
                           'Rotating something anticlockwise', 'Moving something in a clockwise circle',
                           'Moving something in an anticlockwise circle'}
    all_ids = []
    for split, list_name, json_name, per_class in (('train', 'train_list_videos.txt', 'train.json',
                                                    cfg.train_per_class),
                                                   ('val', 'val_list_videos.txt', 'validation.json',
                                                    cfg.val_per_class)):
        entries = A.read_video_list(root / list_name, root=root, num_classes=10)
        ssv2 = A.read_ssv2_split(root / json_name, labels)
        assert [Path(e.path).stem for e in entries] == [s.id for s in ssv2]
        assert [e.label for e in entries] == [s.label for s in ssv2]
        assert np.bincount([e.label for e in entries], minlength=10).tolist() == [per_class] * 10
        for s in ssv2:
            # the filled-in label names the object the template mentions
            assert s.text == (s.template[0].lower() + s.template[1:]).replace('something', s.placeholders[0])
        for e in entries:
            frames = decode(Path(e.path))
            assert frames.shape == (cfg.num_frames, cfg.height, cfg.width, 3)
        all_ids += [s.id for s in ssv2]
    # SSv2-like numeric ids, shuffled across classes: a file name says nothing about the label
    assert sorted(map(int, all_ids)) == list(range(1, len(all_ids) + 1))
    assert all_ids != sorted(all_ids, key=int)


# ----------------------------------------------------------------------------------------------------------------------
# AVA files


def test_ava_files_parse_and_are_consistent(bench):
    root = bench / 'ava'
    ann = root / 'annotations'
    cfg = TINY.ava
    manifest = read_manifest(bench)
    label_map = A.read_ava_label_map(ann / 'ava_action_list_v2.2_for_activitynet_2019.pbtxt')
    # the documented evaluated classes; 'flash' (6) is in the csv but, like AVA's 20 unevaluated ids, not in the map
    assert label_map == {1: 'stand', 2: 'walk', 3: 'jump', 4: 'spin', 5: 'pulse'}
    first_ts, last_ts = 902, 900 + cfg.duration - 2
    for split in ('train', 'val'):
        boxes = A.read_ava_csv(ann / f'ava_{split}_v2.2.csv')
        excluded = A.read_ava_excluded(ann / f'ava_{split}_excluded_timestamps_v2.2.csv')
        proposals = A.read_ava_proposals(ann / f'ava_dense_proposals_{split}.synthetic.pkl')
        counts = manifest['counts']['ava'][split]
        rows = (ann / f'ava_{split}_v2.2.csv').read_text().splitlines()
        assert counts['rows'] == len(rows) == sum(len(b.action_ids) for b in boxes)
        assert counts['boxes'] == len(boxes)
        frames = A.group_by_keyframe(boxes)
        assert counts['keyframes'] == len(frames) and counts['excluded'] == len(excluded)

        videos = {v for v, _ in proposals}
        assert len(videos) == counts['videos']
        for vid in videos:
            assert decode(root / 'videos' / f'{vid}.mp4').shape == (cfg.duration * 30, cfg.height, cfg.width, 3)
        # proposals for every keyframe of every video (excluded ones too); the csv has every non-excluded keyframe
        keyframes = {(v, t) for v in videos for t in range(first_ts, last_ts + 1)}
        assert set(proposals) == keyframes
        assert set(frames) == keyframes - excluded
        for b in boxes:
            x1, y1, x2, y2 = b.box
            assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
            assert set(b.action_ids) <= {1, 2, 3, 4, 5, 6}
            assert len({1, 2} & set(b.action_ids)) == 1  # exactly one pose: stand or walk
            assert 0 <= b.person_id < cfg.max_actors
        for key, group in frames.items():
            assert len(group) >= 2 and len({b.person_id for b in group}) == len(group)
            props = proposals[key]
            assert props.dtype == np.float32 and props.shape[1] == 5 and len(props) >= len(group)
            assert np.all(np.diff(props[:, 4]) <= 0) and np.all((props >= 0) & (props <= 1))
            for b in group:  # the jitter moves each side by <= 5 % of the box: IoU >= 0.8 by construction
                assert max(iou(b.box, p[:4]) for p in props) >= 0.8

        # boxes come from the pixels: an actor standing at two consecutive keyframes has not moved (its periodic
        # actions are back in the rest pose at every keyframe), while a walking one has
        by_person = {}
        for b in boxes:
            by_person.setdefault((b.video_id, b.person_id), {})[b.timestamp] = b
        for track in by_person.values():
            for t, b in track.items():
                nxt = track.get(t + 1)
                if nxt is None:
                    continue
                if 1 in b.action_ids and 1 in nxt.action_ids:
                    assert nxt.box == b.box
                if 2 in b.action_ids and 2 in nxt.action_ids:
                    assert nxt.box[0] != b.box[0]


# ----------------------------------------------------------------------------------------------------------------------
# THUMOS files


def test_thumos_files_parse_and_handle_ambiguous(bench):
    root = bench / 'thumos'
    ann = root / 'annotations'
    cfg = TINY.thumos
    expected_classes = {0: 'Bounce', 1: 'Dash', 2: 'Flash', 3: 'Pulse', 4: 'Somersault', 5: 'Spin'}
    af = A.read_actionformer_json(ann / 'thumos14.json')
    ot = A.read_opentad_json(ann / 'thumos_14_anno.json', ann / 'category_idx.txt')
    # ActionFormer's json has no class list: its classes are those its annotations use (all of them in `default`)
    assert af.classes.items() <= expected_classes.items() and ot.classes == expected_classes
    assert list(af.videos) == list(ot.videos)
    assert [v.video_id for v in af.subset('Validation')] == [v.video_id for v in ot.subset('training')]
    assert [v.video_id for v in af.subset('Test')] == [v.video_id for v in ot.subset('validation')]
    assert len(af.subset('Validation')) == cfg.val_videos and len(af.subset('Test')) == cfg.test_videos

    counts = read_manifest(bench)['counts']['thumos']
    official = {}
    for name in (*expected_classes.values(), 'Ambiguous'):
        for suffix in ('val', 'test'):
            for vid, s, e in A.read_thumos_txt(ann / 'official' / f'{name}_{suffix}.txt'):
                official.setdefault((vid, name), []).append((s, e))
    for vid, v in af.videos.items():
        o = ot.videos[vid]
        assert v.subset == ('Validation' if vid.startswith('video_validation_') else 'Test')
        frames = decode(root / 'videos' / f'{vid}.mp4')
        assert frames.shape == (o.num_frames, cfg.height, cfg.width, 3) and o.num_frames == cfg.duration * 30
        assert v.duration == o.duration == o.num_frames / v.fps
        # ActionFormer's file has no Ambiguous segments (its loader would count a 7th class); OpenTAD's keeps them
        assert v.ambiguous == [] and 'Ambiguous' not in (s.label for s in v.segments)
        assert len(o.ambiguous) >= 1 and len(o.segments) >= 1
        assert sorted(o.ambiguous) == sorted(official[(vid, 'Ambiguous')])
        assert [(s.label, s.start, s.end) for s in v.segments] == [(s.label, s.start, s.end) for s in o.segments]
        for s in v.segments:
            assert 0 <= s.start < s.end <= v.duration
            assert (s.start, s.end) in official[(vid, s.label)]
        # every Somersault is also a Bounce (as every CliffDiving is also Diving)
        spans = {(s.label, s.start, s.end) for s in v.segments}
        assert all(('Bounce', s, e) in spans for label, s, e in spans if label == 'Somersault')
        # instances (Ambiguous included) do not overlap: >= 1 s apart up to the 0.1-s rounding
        instances = sorted({(s.start, s.end) for s in v.segments} | set(o.ambiguous))
        assert all(b[0] - a[1] >= 0.9 for a, b in zip(instances, instances[1:]))
        assert all(0 <= s and e <= v.duration for s, e in instances)
    n_instances = sum(len({(s.start, s.end) for s in v.segments}) for v in af.videos.values())
    assert n_instances == counts['Validation']['instances'] + counts['Test']['instances']


# ----------------------------------------------------------------------------------------------------------------------
# determinism


def test_same_seed_same_files_and_frames_whatever_the_workers(bench, tmp_path):
    other = tmp_path / 'again'
    generate(other, 'tiny', SEED, workers=2, log=lambda msg: None)  # two worker processes
    ours, theirs = read_manifest(bench), read_manifest(other)
    assert ours['files'].keys() == theirs['files'].keys()
    for rel in ours['files']:
        if rel.endswith('.mp4'):
            np.testing.assert_array_equal(decode(bench / rel), decode(other / rel), err_msg=rel)
        else:
            assert (bench / rel).read_bytes() == (other / rel).read_bytes(), rel
    # and a different seed gives a different benchmark (labels, ids, instances)
    for module, cfg in ((classification, TINY.classification), (ava, TINY.ava), (thumos, TINY.thumos)):
        assert module.make_jobs(cfg, SEED, tmp_path) == module.make_jobs(cfg, SEED, tmp_path)
    assert classification.make_jobs(TINY.classification, SEED, tmp_path) != \
        classification.make_jobs(TINY.classification, SEED + 1, tmp_path)
    kinds = ('Spin',) * (thumos.num_instances(60)[0] - thumos.num_instances(60)[1])
    assert thumos.sample_instances(np.random.default_rng(SEED), 60, kinds) != \
        thumos.sample_instances(np.random.default_rng(SEED + 1), 60, kinds)


# ----------------------------------------------------------------------------------------------------------------------
# rendering conventions


def test_background_pan_is_a_shift_of_the_texture():
    tex = np.random.default_rng(0).random((6, 8, 3), dtype=np.float32)
    bg = render.PanningBackground(tex)
    # pixel (y, x) shows texture point (y + sy, x + sx): an integer pan is a roll the other way, wrapping around
    np.testing.assert_array_equal(bg.frame(3, 2), np.roll(tex, (-2, -3), axis=(0, 1)))
    np.testing.assert_array_equal(bg.frame(3 + 8, 2 - 6), bg.frame(3, 2))
    # half a pixel to the right is the mean of the two neighbouring columns
    np.testing.assert_allclose(bg.frame(0.5, 0), 0.5 * (tex + np.roll(tex, -1, axis=1)), rtol=1e-6)


def test_draw_composites_and_wraps_without_losing_area():
    size = 10
    rgba = np.zeros((size + 4, size + 4, 4), dtype=np.float32)
    rgba[2:-2, 2:-2] = [0.5, 0.25, 1.0, 1.0]  # an opaque 10x10 square, premultiplied (alpha 1)
    sprite = render.Sprite(rgba=rgba, mean_rgb=np.array([0.5, 0.25, 1.0], np.float32), shape='box')
    canvas = np.zeros((32, 48, 3), dtype=np.float32)
    cov = render.draw(canvas, sprite, 20.0, 16.0)  # pixel-aligned: covers columns 15..24, rows 11..20 exactly
    assert cov.box() == (15, 11, 25, 21)
    np.testing.assert_allclose(canvas[11:21, 15:25], np.broadcast_to([0.5, 0.25, 1.0], (10, 10, 3)))
    assert canvas.sum() == pytest.approx(100 * 1.75)
    # across the left edge on a torus: same area, split between both sides
    wrapped = np.zeros_like(canvas)
    render.draw(wrapped, sprite, 2.0, 16.0, wrap=True)
    assert wrapped[:, :7].any() and wrapped[:, -3:].any() and not wrapped[:, 8:44].any()
    assert wrapped.sum() == pytest.approx(100 * 1.75)
    # a 90-degree turn of a square and a 2x scale: area x 4, still pixel-aligned
    turned = np.zeros_like(canvas)
    render.draw(turned, sprite, 24.0, 16.0, angle=math.pi / 2, scale=2.0)
    assert turned.sum() == pytest.approx(400 * 1.75, rel=1e-4)
    # "over": an opaque sprite hides what was below
    render.draw(canvas, sprite, 20.0, 16.0, gain=0.5)
    np.testing.assert_allclose(canvas[11:21, 15:25], np.broadcast_to([0.25, 0.125, 0.5], (10, 10, 3)))


# ----------------------------------------------------------------------------------------------------------------------
# the classification classes differ only in temporal order

# (class, its time-reversed partner, motion feature, sign the feature must have for the first class), derived by hand
# in image coordinates (x right, y down): an object moving right has u > 0; moving up has v < 0; turning anticlockwise
# on screen has velocity w * (dy, -dx) about its centre, so curl = dv/dx - du/dy = -2w < 0; a centre running
# anticlockwise round a circle has a velocity that turns anticlockwise, so u0 * v1 - v0 * u1 < 0; growing has div > 0.
TIME_REVERSED_PAIRS = [
    ('Moving something from left to right', 'Moving something from right to left', 'u', +1),
    ('Moving something up', 'Moving something down', 'v', -1),
    ('Rotating something anticlockwise', 'Rotating something clockwise', 'curl', -1),
    ('Moving something in an anticlockwise circle', 'Moving something in a clockwise circle', 'cross', -1),
    ('Growing something', 'Shrinking something', 'div', +1),
]
CLASS_ID = {spec.name: i for i, spec in enumerate(classification.CLASSES)}


def torus_centre(coords: np.ndarray, period: int) -> float:
    """Circular mean of pixel-centre coordinates on a wrapping axis."""
    return (period / (2 * math.pi) * np.angle(np.exp(2j * math.pi * (coords + 0.5) / period).mean())) % period


def frame_stats(frame: np.ndarray, alpha: np.ndarray) -> list[float]:
    """What one frame says: object centre (x, y as fractions), area, orientation, mean luminance."""
    h, w = alpha.shape
    ys, xs = np.nonzero(alpha > 0.5)
    cx, cy = torus_centre(xs, w), torus_centre(ys, h)
    dx = (xs + 0.5 - cx + w / 2) % w - w / 2
    dy = (ys + 0.5 - cy + h / 2) % h - h / 2
    theta = 0.5 * math.atan2(2 * (dx * dy).mean(), (dx ** 2).mean() - (dy ** 2).mean())  # principal axis
    return [cx / w, cy / h, len(xs) / (h * w), theta / math.pi + 0.5, float(frame.mean())]


def affine_flow(f0: np.ndarray, f1: np.ndarray, a0: np.ndarray, a1: np.ndarray) -> np.ndarray | None:
    """Least-squares affine motion (Lucas-Kanade, one step) of the object between two frames.

    Solves I_x (u + u_x dx + u_y dy) + I_y (v + v_x dx + v_y dy) = -I_t over the object's interior pixels and RGB
    channels, with (dx, dy) relative to the object centre. Returns (u, u_x, u_y, v, v_x, v_y) or None.
    """
    h, w = a0.shape
    inside = (a0 > 0.99) & (a1 > 0.99)
    mask = inside.copy()
    for axis in (0, 1):  # one-pixel erosion, so that gradients do not reach into the background
        for shift in (1, -1):
            mask &= np.roll(inside, shift, axis=axis)
    if mask.sum() < 12:
        mask = inside
    if mask.sum() < 6:
        return None
    g0, g1 = f0.astype(np.float32) / 255, f1.astype(np.float32) / 255
    mid = 0.5 * (g0 + g1)
    ix = 0.5 * (np.roll(mid, -1, axis=1) - np.roll(mid, 1, axis=1))  # the scene wraps, so do the differences
    iy = 0.5 * (np.roll(mid, -1, axis=0) - np.roll(mid, 1, axis=0))
    it = g1 - g0
    ys, xs = np.nonzero(mask)
    dx = np.repeat((xs + 0.5 - torus_centre(xs, w) + w / 2) % w - w / 2, 3)
    dy = np.repeat((ys + 0.5 - torus_centre(ys, h) + h / 2) % h - h / 2, 3)
    gx, gy, gt = ix[mask].ravel(), iy[mask].ravel(), it[mask].ravel()
    design = np.stack([gx, gx * dx, gx * dy, gy, gy * dx, gy * dy], axis=1)
    return np.linalg.lstsq(design, -gt, rcond=None)[0]


def motion_features(frames: np.ndarray, alpha: np.ndarray) -> dict[str, float]:
    steps = [affine_flow(frames[t], frames[t + 1], alpha[t], alpha[t + 1]) for t in range(len(frames) - 1)]
    p = np.array([s for s in steps if s is not None]).reshape(-1, 6)
    if len(p) == 0:
        return dict(u=0.0, v=0.0, curl=0.0, div=0.0, cross=0.0)
    # medians over the steps ignore the one frame where a growing/shrinking object snaps back
    return dict(u=np.median(p[:, 0]), v=np.median(p[:, 3]), curl=np.median(p[:, 4] - p[:, 2]),
                div=np.median(p[:, 1] + p[:, 5]), cross=p[0, 0] * p[-1, 3] - p[0, 3] * p[-1, 0])


@pytest.fixture(scope='module')
def rendered_stats():
    """First/last-frame statistics and motion features of 20 freshly rendered clips per class (64x48, 6 frames)."""
    n, t, w, h = 20, 6, 64, 48
    first, last, motion = {}, {}, {}
    for label in range(len(classification.CLASSES)):
        rng = np.random.default_rng([2024, label])
        first[label], last[label], motion[label] = [], [], []
        for _ in range(n):
            # one object per clip, so that its statistics are not mixed up with the others' (the objects of a
            # scene are drawn independently of each other, so what holds for one holds for the scene)
            params = classification.sample_params(rng, w, h, num_objects=1)
            frames, alpha = classification.render_clip(label, params, t, return_alpha=True)
            alpha = alpha[:, 0]
            first[label].append(frame_stats(frames[0], alpha[0]))
            last[label].append(frame_stats(frames[-1], alpha[-1]))
            motion[label].append(motion_features(frames, alpha))
    return {k: {lab: np.array(v) for lab, v in d.items()} for k, d in (('first', first), ('last', last))}, motion


def test_single_frames_do_not_reveal_the_class(rendered_stats):
    stats, _ = rendered_stats
    names = ['centre x', 'centre y', 'area', 'orientation', 'mean intensity']
    # 5 pairs x 2 frames x 5 statistics = 50 two-sample KS tests; p < 1e-4 anywhere would flag a distribution
    # difference (family-wise false-alarm rate < 0.5 % if the design is right)
    for a, b, _, _ in TIME_REVERSED_PAIRS:
        for which in ('first', 'last'):
            sa, sb = stats[which][CLASS_ID[a]], stats[which][CLASS_ID[b]]
            for j, name in enumerate(names):
                p = ks_2samp(sa[:, j], sb[:, j]).pvalue
                assert p > 1e-4, f'{which} frame {name} differs between {a!r} and {b!r} (KS p = {p:.2g})'


def test_frame_order_reveals_the_class(rendered_stats):
    _, motion = rendered_stats
    for a, b, feature, sign in TIME_REVERSED_PAIRS:
        fa = np.array([m[feature] for m in motion[CLASS_ID[a]]])
        fb = np.array([m[feature] for m in motion[CLASS_ID[b]]])
        accuracy = (np.sum(sign * fa > 0) + np.sum(sign * fb < 0)) / (len(fa) + len(fb))
        assert accuracy >= 0.9, f'{feature} separates {a!r} from {b!r} with accuracy {accuracy:.2f} only'
        # the same KS test as above has the power to see this difference at this sample size
        assert ks_2samp(fa, fb).pvalue < 1e-4


def test_default_preset_meets_the_spec(tmp_path):
    cfg = PRESETS['default']
    # long THUMOS-like videos: 60 s or more at 30 fps
    assert cfg.thumos.duration >= 60 and cfg.thumos.fps == 30
    # every class in each split (ActionFormer's loader counts the classes it sees); job lists only, nothing rendered
    jobs = thumos.make_jobs(cfg.thumos, SEED, tmp_path)
    for split in ('val', 'test'):
        assert {k for j in jobs if j.split == split for k in j.kinds} == set(thumos.CLASSES)


def test_every_object_of_a_scene_performs_the_class_motion():
    # the default scene has several objects; each one moves the class's way, each at its own speed
    label = CLASS_ID['Moving something from left to right']
    rng = np.random.default_rng(7)
    params = classification.sample_params(rng, 128, 96)
    assert len(params.objects) == classification.OBJECTS_PER_CLIP > 1
    _, alpha = classification.render_clip(label, params, 2, return_alpha=True)
    for k, obj in enumerate(params.objects):
        xs = [torus_centre(np.nonzero(alpha[t, k] > 0.5)[1], 128) for t in range(2)]
        step = (xs[1] - xs[0] + 64) % 128 - 64  # wrapped displacement in px
        assert step == pytest.approx(obj.speed, abs=0.6), (k, step, obj.speed)
