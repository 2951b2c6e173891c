"""Synthetic AVA-style spatio-temporal action detection.

2-4 person-like figures per video with a pose action (stand / walk) and optional extra actions (jump, spin, pulse,
flash) per second; AVA csv, excluded-timestamps csv, label-map pbtxt and person-proposals pickle. Classes, the
timestamp <-> frame mapping (T0 = 900 s, 30 fps) and the file contents are documented in this folder's ``README.md``
("AVA-like").
"""
from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tasks.data.files import write_bytes_atomic, write_text_atomic

from . import render

T0 = 900
FPS = 30
ACTIONS = {1: 'stand', 2: 'walk', 3: 'jump', 4: 'spin', 5: 'pulse', 6: 'flash'}
EVALUATED = (1, 2, 3, 4, 5)
LABEL_MAP_NAME = 'ava_action_list_v2.2_for_activitynet_2019.pbtxt'
_EXTRAS = (3, 4, 5, 6)
_ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'


def keyframe_seconds(duration: int) -> range:
    """Keyframe offsets k (timestamp ``T0 + k``) of a ``duration``-second video."""
    return range(2, duration - 1)


@dataclass(frozen=True)
class AVAConfig:
    """Frame size, length, videos per split and people per video of one preset."""

    width: int
    height: int
    duration: int  # seconds; keyframes are T0 + 2 .. T0 + duration - 2
    train_videos: int
    val_videos: int
    max_actors: int


@dataclass(frozen=True)
class Job:
    """One video to render (picklable)."""

    video_id: str
    split: Literal['train', 'val']
    entropy: tuple[int, ...]
    width: int
    height: int
    duration: int  # seconds
    max_actors: int
    path: str


def _video_ids(rng: np.random.Generator, n: int) -> list[str]:
    """YouTube-like 11-character ids (AVA names videos by YouTube id; some start with '-')."""
    ids: list[str] = []
    while len(ids) < n:
        vid = ''.join(_ID_CHARS[i] for i in rng.integers(0, len(_ID_CHARS), size=11))
        if vid not in ids:
            ids.append(vid)
    return ids


def make_jobs(cfg: AVAConfig, seed: int, root: Path) -> list[Job]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2, 0]))
    splits = ['train'] * cfg.train_videos + ['val'] * cfg.val_videos
    ids = _video_ids(rng, len(splits))
    return [Job(video_id=vid, split=split, entropy=(seed, 2, 1, i), width=cfg.width, height=cfg.height,
                duration=cfg.duration, max_actors=cfg.max_actors, path=str(root / 'videos' / f'{vid}.mp4'))
            for i, (vid, split) in enumerate(zip(ids, splits))]


def _markov(rng: np.random.Generator, n: int, p_on: float, p_switch: float) -> np.ndarray:
    """(n,) bool: a two-state chain that starts on with ``p_on`` and flips with ``p_switch`` each second."""
    out = np.empty(n, dtype=bool)
    state = rng.random() < p_on
    for k in range(n):
        out[k] = state
        if rng.random() < p_switch:
            state = not state
    return out


@dataclass
class _Actor:
    sprite: render.Sprite
    x: float
    y: float
    vx: float
    spin_dir: float  # +1 anticlockwise, -1 clockwise
    states: dict[int, np.ndarray]  # action id -> (duration,) bool per second


def _make_actors(rng: np.random.Generator, job: Job, background: render.PanningBackground) -> list[_Actor]:
    w, h = job.width, job.height
    unit = min(w, h) / 96
    actors = []
    for _ in range(int(rng.integers(2, job.max_actors + 1))):
        size = int(round(rng.uniform(0.3, 0.42) * h))
        palette = render.contrasting_palette(rng, background.mean_luma)
        sprite = render.make_sprite(rng, size, 'figure', palette)
        walk = _markov(rng, job.duration, 0.5, 0.3)
        states = {1: ~walk, 2: walk}
        for a in _EXTRAS:
            states[a] = _markov(rng, job.duration, 0.3, 0.3)
        actors.append(_Actor(
            sprite=sprite,
            x=rng.uniform(0.15, 0.85) * w,
            y=rng.uniform(0.45, 0.7) * h,
            vx=rng.choice([-1.0, 1.0]) * rng.uniform(0.7, 1.2) * unit,
            spin_dir=float(rng.choice([-1.0, 1.0])),
            states=states,
        ))
    # draw the ones higher in the frame (further away) first
    actors.sort(key=lambda a: a.y)
    return actors


def run_job(job: Job) -> dict:
    """Render and encode one video; returns per-keyframe boxes, actions and proposals."""
    from tasks.data.video.writer import write_video

    rng = np.random.default_rng(np.random.SeedSequence(list(job.entropy)))
    w, h = job.width, job.height
    background = render.PanningBackground(render.background_texture(rng, h, w))
    pan_dir = rng.uniform(0, 2 * math.pi)
    pan = rng.uniform(0.0, 0.3) * np.array([math.cos(pan_dir), math.sin(pan_dir)])
    actors = _make_actors(rng, job, background)
    keyframes = {int(k * FPS): k for k in keyframe_seconds(job.duration)}
    boxes: dict[int, list[tuple[int, tuple[float, float, float, float], tuple[int, ...]]]] = {}

    def frames():
        for f in range(job.duration * FPS):
            tau = f / FPS
            second = min(int(math.floor(tau + 0.5)), job.duration - 1)  # state of [k - 0.5, k + 0.5)
            # Periodic motions are functions of the time since the last slot boundary (tau + 0.5 mod 1), with an
            # even number of half-periods per slot: every action starts and ends in the rest pose (state changes never
            # jump), and at the keyframe itself (phase 0.5) the figure is in its rest pose too, so the keyframe image
            # alone does not show which periodic action is going on; the frames around it do.
            phase = (tau + 0.5) % 1.0
            canvas = background.frame(pan[0] * f, pan[1] * f)
            for pid, a in enumerate(actors):
                on = {act: bool(s[second]) for act, s in a.states.items()}
                margin = 0.3 * a.sprite.size
                if on[2]:
                    a.x += a.vx
                    if not margin <= a.x <= w - margin:  # turn round at the edges
                        a.vx = -a.vx
                        a.x = min(max(a.x, margin), w - margin)
                angle = a.spin_dir * 2 * math.pi * 2 * phase if on[4] else 0.0  # two turns per second
                lift = 0.3 * a.sprite.size * abs(math.sin(2 * math.pi * phase)) if on[3] else 0.0  # two hops
                scale = 1.0 + 0.22 * math.sin(2 * math.pi * 2 * phase) if on[5] else 1.0  # 2 Hz
                gain = 1.0 + 0.6 * math.sin(2 * math.pi * 3 * phase) if on[6] else 1.0  # 3 Hz
                cov = render.draw(canvas, a.sprite, a.x, a.y - lift, angle=angle, scale=scale, gain=gain)
                if f in keyframes and cov is not None:
                    box = cov.box()
                    if box is not None:
                        norm = (box[0] / w, box[1] / h, box[2] / w, box[3] / h)
                        acts = tuple(act for act in sorted(on) if on[act])
                        boxes.setdefault(keyframes[f], []).append((pid, norm, acts))
            yield render.to_uint8(canvas)

    write_video(job.path, frames(), FPS, preset=render.ENCODER_PRESET)

    # proposals: jittered true boxes plus false positives, drawn after rendering from the same stream
    proposals = {}
    for k in keyframe_seconds(job.duration):
        rows = []
        for _, box, _ in boxes.get(k, []):
            # each side moves by at most 5 % of the box size: the jittered box keeps IoU >= 0.8 with the true one
            bw, bh = box[2] - box[0], box[3] - box[1]
            shift = rng.uniform(-0.05, 0.05, size=4) * np.array([bw, bh, bw, bh])
            x1, y1, x2, y2 = np.clip(np.array(box) + shift, 0.0, 1.0)
            score = rng.uniform(0.9, 1.0) if rng.random() < 0.85 else rng.uniform(0.6, 0.9)
            rows.append([x1, y1, x2, y2, score])
        for _ in range(int(rng.integers(0, 4))):
            bw, bh = rng.uniform(0.08, 0.3), rng.uniform(0.15, 0.45)
            x1, y1 = rng.uniform(0, 1 - bw), rng.uniform(0, 1 - bh)
            rows.append([x1, y1, x1 + bw, y1 + bh, rng.uniform(0.05, 0.85)])
        rows.sort(key=lambda r: -r[4])  # stable: ties keep their order
        # plain floats, not arrays: arrays that travelled through a worker pipe pickle to different bytes (their
        # dtype objects are no longer shared), which would make the proposals file depend on the worker count
        proposals[k] = [[float(v) for v in r] for r in rows]
    keys = list(keyframe_seconds(job.duration))
    excluded = [int(rng.choice(keys))] if rng.random() < 0.5 else []
    return {'boxes': boxes, 'proposals': proposals, 'excluded': excluded}


def _label_map_text() -> str:
    return ''.join(f'item {{\n  name: "{ACTIONS[i]}"\n  id: {i}\n}}\n' for i in EVALUATED)


def write_annotations(root: Path, jobs: list[Job], results: list[dict]) -> tuple[list[str], dict]:
    """AVA csv files, label map, excluded timestamps and proposals. Returns (files relative to ``root``, counts)."""
    ann = root / 'annotations'
    files = [f'annotations/{LABEL_MAP_NAME}']
    write_text_atomic(ann / LABEL_MAP_NAME, _label_map_text())
    counts: dict = {'actions': len(ACTIONS), 'evaluated_actions': len(EVALUATED), 'timestamp_start': T0, 'fps': FPS}
    for split in ('train', 'val'):
        rows, excluded, props = [], [], {}
        n_boxes = n_keyframes = 0
        for job, res in zip(jobs, results):
            if job.split != split:
                continue
            skip = set(res['excluded'])
            for k in keyframe_seconds(job.duration):
                ts = T0 + k
                props[f'{job.video_id},{ts:04d}'] = np.array(res['proposals'][k], dtype=np.float32).reshape(-1, 5)
                if k in skip:
                    excluded.append(f'{job.video_id},{ts:04d}')
                    continue
                n_keyframes += 1
                for pid, box, acts in sorted(res['boxes'].get(k, [])):
                    n_boxes += 1
                    coords = ','.join(f'{v:.3f}' for v in box)
                    rows += [f'{job.video_id},{ts:04d},{coords},{a},{pid}' for a in acts]
        csv_name = f'annotations/ava_{split}_v2.2.csv'
        exc_name = f'annotations/ava_{split}_excluded_timestamps_v2.2.csv'
        pkl_name = f'annotations/ava_dense_proposals_{split}.synthetic.pkl'
        write_text_atomic(root / csv_name, ''.join(r + '\n' for r in rows))
        write_text_atomic(root / exc_name, ''.join(r + '\n' for r in excluded))
        write_bytes_atomic(root / pkl_name, pickle.dumps(props, protocol=4))
        files += [csv_name, exc_name, pkl_name]
        counts[split] = {'videos': sum(j.split == split for j in jobs), 'keyframes': n_keyframes, 'boxes': n_boxes,
                         'rows': len(rows), 'excluded': len(excluded), 'proposal_keys': len(props)}
    files += [str(Path(j.path).relative_to(root)) for j in jobs]
    return files, counts
