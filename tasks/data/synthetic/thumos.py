"""Synthetic THUMOS14-style temporal action localisation.

Long videos of one figure that now and then performs one of six actions (one of which is always also labelled as
another, like THUMOS14's CliffDiving / Diving) over background motion, with faint ``Ambiguous`` instances; ActionFormer
json, OpenTAD json + class map, and official-style per-class txt files. Classes, time conventions, Ambiguous handling
and splits are documented in this folder's ``README.md`` ("THUMOS-like").
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tasks.data.annotations import AMBIGUOUS
from tasks.data.files import write_text_atomic

from . import render

CLASSES = ('Bounce', 'Dash', 'Flash', 'Pulse', 'Somersault', 'Spin')
ALSO_LABELLED = {'Somersault': 'Bounce'}  # like THUMOS14's CliffDiving -> Diving
_SUBSETS = {'val': ('Validation', 'training', 'video_validation'), 'test': ('Test', 'validation', 'video_test')}


@dataclass(frozen=True)
class Instance:
    """One performed action: [start, end) seconds, the motion that is rendered, and whether it is Ambiguous."""

    start: float
    end: float
    kind: str
    ambiguous: bool


@dataclass(frozen=True)
class Job:
    """One video to render (picklable)."""

    video_id: str
    split: Literal['val', 'test']
    entropy: tuple[int, ...]
    width: int
    height: int
    duration: int  # seconds
    fps: float
    path: str
    kinds: tuple[str, ...]  # classes of the video's non-Ambiguous instances, in time order


def num_instances(duration: float) -> tuple[int, int]:
    """(instances, of which Ambiguous) in a ``duration``-second video: about one per 7 s, at least two, and about one
    in seven Ambiguous but at least one, so every video has both kinds."""
    n = max(2, int(round(duration / 7)))
    return n, max(1, int(round(n / 7)))


@dataclass(frozen=True)
class THUMOSConfig:
    """Frame size, length and videos per split of one preset."""

    width: int
    height: int
    duration: int  # seconds
    fps: float
    val_videos: int
    test_videos: int


def make_jobs(cfg: THUMOSConfig, seed: int, root: Path) -> list[Job]:
    """Videos of both splits. Within a split the classes of the real instances go round shuffled copies of the class
    list, so every class appears as soon as a split has six instances (ActionFormer's loader insists on seeing them
    all)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3, 9]))
    n, n_amb = num_instances(cfg.duration)
    jobs = []
    for split, count in (('val', cfg.val_videos), ('test', cfg.test_videos)):
        prefix = _SUBSETS[split][2]
        cycle: list[str] = []
        while len(cycle) < count * (n - n_amb):
            cycle += [str(c) for c in rng.permutation(CLASSES)]
        for i in range(count):
            vid = f'{prefix}_{i + 1:07d}'
            kinds = tuple(cycle[i * (n - n_amb):(i + 1) * (n - n_amb)])
            jobs.append(Job(video_id=vid, split=split, entropy=(seed, 3, 0 if split == 'val' else 1, i),
                            width=cfg.width, height=cfg.height, duration=cfg.duration, fps=cfg.fps,
                            path=str(root / 'videos' / f'{vid}.mp4'), kinds=kinds))
    return jobs


def sample_instances(rng: np.random.Generator, duration: float, kinds: tuple[str, ...]) -> list[Instance]:
    """Non-overlapping instances filling a ``duration``-second video, >= 1 s apart and >= 1 s from the ends.

    Args:
        rng: random source.
        duration: video length in seconds.
        kinds: classes of the non-Ambiguous instances, in time order (``num_instances`` tells how many); the
            Ambiguous ones (faint versions of a random class) are placed at random among them.
    """
    n, n_amb = num_instances(duration)
    if len(kinds) != n - n_amb:
        raise ValueError(f'a {duration}-s video has {n - n_amb} non-Ambiguous instances, got {len(kinds)} classes')
    lengths = rng.uniform(2.0, 5.0, size=n)
    min_gap, margin = 1.0, 1.0
    room = duration - 2 * margin - min_gap * (n - 1)
    if lengths.sum() > 0.8 * room:  # short videos: shrink the instances so some slack remains
        lengths *= 0.8 * room / lengths.sum()
    slack = rng.dirichlet(np.ones(n + 1)) * (room - lengths.sum())
    ambiguous = set(int(i) for i in rng.choice(n, size=n_amb, replace=False))
    real = iter(kinds)
    out = []
    t = margin + slack[0]
    for i in range(n):
        start, end = t, t + lengths[i]
        kind = str(rng.choice(CLASSES)) if i in ambiguous else next(real)
        # one decimal like the official files; the 1-s gaps keep rounded instances disjoint and inside the video
        out.append(Instance(round(float(start), 1), round(float(end), 1), kind, i in ambiguous))
        t = end + min_gap + slack[i + 1]
    return out


def run_job(job: Job) -> dict:
    """Render and encode one video; returns its instances."""
    from tasks.data.video.writer import write_video

    rng = np.random.default_rng(np.random.SeedSequence(list(job.entropy)))
    w, h = job.width, job.height
    unit = min(w, h) / 96
    instances = sample_instances(rng, job.duration, job.kinds)
    background = render.PanningBackground(render.background_texture(rng, h, w))
    pan_dir = rng.uniform(0, 2 * math.pi)
    pan = rng.uniform(0.0, 0.3) * unit * np.array([math.cos(pan_dir), math.sin(pan_dir)])

    blobs = []
    for _ in range(2):
        shape = str(rng.choice(['ellipse', 'box', 'triangle']))
        sprite = render.make_sprite(rng, int(round(rng.uniform(0.12, 0.2) * min(w, h))), shape,
                                    render.contrasting_palette(rng, background.mean_luma))
        direction = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(0.15, 0.6) * unit
        blobs.append((sprite, rng.uniform(0, w), rng.uniform(0, h), speed * math.cos(direction),
                      speed * math.sin(direction), rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(-1.5, 1.5))))

    size = int(round(rng.uniform(0.34, 0.4) * h))
    athlete = render.make_sprite(rng, size, 'figure', render.contrasting_palette(rng, background.mean_luma))
    x, y = rng.uniform(0, w), rng.uniform(0.5, 0.62) * h
    drift = rng.uniform(-0.15, 0.15) * unit
    directions = rng.choice([-1.0, 1.0], size=len(instances))
    num_frames = int(round(job.duration * job.fps))

    def frames():
        nonlocal x
        current = 0
        for f in range(num_frames):
            tau = f / job.fps
            canvas = background.frame(pan[0] * f, pan[1] * f)
            for sprite, bx, by, vx, vy, a0, spin in blobs:
                render.draw(canvas, sprite, bx + vx * f, by + vy * f, angle=a0 + spin * f, wrap=True)
            while current < len(instances) and tau >= instances[current].end:
                current += 1
            inst = instances[current] if current < len(instances) and tau >= instances[current].start else None
            lift, angle, scale, gain, dx = 0.0, 0.0, 1.0, 1.0, drift
            if inst is not None:
                amp = 0.2 if inst.ambiguous else 1.0  # a faint version of the action
                length = inst.end - inst.start
                u = (tau - inst.start) / length  # progress through the instance, in [0, 1)
                sign = directions[current]
                # whole periods per instance, so the figure is back in its rest pose when the instance ends
                if inst.kind in ('Bounce', 'Somersault'):
                    hops = max(1, round(length / 0.5))
                    lift = amp * 0.35 * size * abs(math.sin(math.pi * hops * u))
                if inst.kind in ('Spin', 'Somersault'):
                    turns = max(1, round(length * job.fps * math.radians(10.0) / (2 * math.pi)))
                    angle = (sign * 2 * math.pi * turns * u if not inst.ambiguous
                             else sign * 0.3 * math.sin(2 * math.pi * u))  # faint: a small wobble
                if inst.kind == 'Dash':
                    dx = sign * amp * 2.5 * unit
                if inst.kind == 'Pulse':
                    cycles = max(1, round(length * 1.5))
                    scale = 1.0 + amp * 0.3 * math.sin(2 * math.pi * cycles * u)
                if inst.kind == 'Flash':
                    gain = 1.0 + amp * (0.5 if math.sin(2 * math.pi * 4.0 * (tau - inst.start)) >= 0 else -0.5)
            x = (x + dx) % w
            render.draw(canvas, athlete, x, y - lift, angle=angle, scale=scale, gain=gain, wrap=True)
            yield render.to_uint8(canvas)

    write_video(job.path, frames(), job.fps, preset=render.ENCODER_PRESET)
    return {'instances': instances, 'num_frames': num_frames}


def _labels(inst: Instance) -> list[str]:
    if inst.ambiguous:
        return [AMBIGUOUS]
    return [inst.kind] + ([ALSO_LABELLED[inst.kind]] if inst.kind in ALSO_LABELLED else [])


def write_annotations(root: Path, jobs: list[Job], results: list[dict]) -> tuple[list[str], dict]:
    """ActionFormer json, OpenTAD json + class map, official-style txt files. Returns (files, counts)."""
    class_id = {name: i for i, name in enumerate(CLASSES)}
    af_db, ot_db = {}, {}
    official: dict[str, list[str]] = {}
    counts: dict = {'classes': list(CLASSES)}
    for job, res in zip(jobs, results):
        af_subset, ot_subset, _ = _SUBSETS[job.split]
        fps = float(job.fps)
        duration = round(res['num_frames'] / fps, 3)
        af_anns, ot_anns = [], []
        for inst in res['instances']:
            for label in _labels(inst):
                seg = [inst.start, inst.end]
                ot_anns.append({'label': label, 'segment': seg})
                suffix = 'val' if job.split == 'val' else 'test'
                official.setdefault(f'{label}_{suffix}.txt', []).append(f'{job.video_id} {inst.start:.1f} '
                                                                        f'{inst.end:.1f}')
                if label != AMBIGUOUS:
                    af_anns.append({'label': label, 'segment': seg,
                                    'segment(frames)': [round(inst.start * fps, 2), round(inst.end * fps, 2)],
                                    'label_id': class_id[label]})
        af_db[job.video_id] = {'subset': af_subset, 'duration': duration, 'fps': fps, 'annotations': af_anns}
        ot_db[job.video_id] = {'subset': ot_subset, 'duration': duration, 'frame': res['num_frames'],
                               'annotations': ot_anns}
        key = af_subset
        c = counts.setdefault(key, {'videos': 0, 'instances': 0, 'ambiguous': 0, 'annotations': 0})
        c['videos'] += 1
        c['instances'] += sum(not i.ambiguous for i in res['instances'])
        c['ambiguous'] += sum(i.ambiguous for i in res['instances'])
        c['annotations'] += len(af_anns)
    files = ['annotations/thumos14.json', 'annotations/thumos_14_anno.json', 'annotations/category_idx.txt']
    write_text_atomic(root / files[0],
                      json.dumps({'version': 'synthetic-thumos14', 'database': af_db}, indent=2) + '\n')
    write_text_atomic(root / files[1], json.dumps({'database': ot_db}, indent=2) + '\n')
    write_text_atomic(root / files[2], ''.join(c + '\n' for c in CLASSES))
    # one file per class and split even when empty, as the official release has
    for name in (*CLASSES, AMBIGUOUS):
        for suffix in ('val', 'test'):
            rel = f'annotations/official/{name}_{suffix}.txt'
            lines = official.get(f'{name}_{suffix}.txt', [])
            write_text_atomic(root / rel, ''.join(line + '\n' for line in lines))
            files.append(rel)
    files += [str(Path(j.path).relative_to(root)) for j in jobs]
    return files, counts
