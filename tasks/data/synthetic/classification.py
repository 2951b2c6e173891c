"""Synthetic temporal-order classification ("something-something in miniature").

Three textured objects per clip, all performing the class's motion, over a faint static textured background; ten
classes in five time-reversed pairs (moving left/right, up/down, rotating and orbiting clockwise/anticlockwise,
growing/shrinking) whose single frames all have the same distribution, so only the order of the frames carries the
label. The classes, and why no single frame reveals its class, are documented in this folder's ``README.md``
("Classification: temporal order only").
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tasks.data.annotations import ssv2_class_name
from tasks.data.files import write_text_atomic

from . import render

SCALE_MIN, SCALE_MAX = 0.75, 1.35

Motion = Literal['translate', 'rotate', 'scale', 'orbit']


@dataclass(frozen=True)
class ClassSpec:
    """One class: its SSv2-style template and the motion that defines it.

    Attributes:
        template: SSv2 template with the ``[something]`` placeholder.
        motion: motion family.
        direction: for ``translate`` the (dx, dy) unit vector (y down); for ``rotate``/``orbit`` +1 anticlockwise,
            -1 clockwise; for ``scale`` +1 growing, -1 shrinking.
    """

    template: str
    motion: Motion
    direction: tuple[float, float] | int

    @property
    def name(self) -> str:
        return ssv2_class_name(self.template)


_SPECS = [
    ClassSpec('Growing [something]', 'scale', +1),
    ClassSpec('Moving [something] down', 'translate', (0.0, 1.0)),
    ClassSpec('Moving [something] from left to right', 'translate', (1.0, 0.0)),
    ClassSpec('Moving [something] from right to left', 'translate', (-1.0, 0.0)),
    ClassSpec('Moving [something] in a clockwise circle', 'orbit', -1),
    ClassSpec('Moving [something] in an anticlockwise circle', 'orbit', +1),
    ClassSpec('Moving [something] up', 'translate', (0.0, -1.0)),
    ClassSpec('Rotating [something] anticlockwise', 'rotate', +1),
    ClassSpec('Rotating [something] clockwise', 'rotate', -1),
    ClassSpec('Shrinking [something]', 'scale', -1),
]
CLASSES: tuple[ClassSpec, ...] = tuple(sorted(_SPECS, key=lambda s: s.name))


# Scene settings, tuned at 128x96 (speeds and sizes scale with the frame). Measured with the `vit_test` ViT trained
# from scratch (8 frames every 4th, 96x96 crops, batch 16, lr 3e-3, 1000 clips): one small object over a full-contrast
# background panning in its own direction stayed at chance (loss 2.29 after 1500 steps); a static background, faster
# motion and larger objects started learning after ~1000 steps; three objects sharing the class's motion over a faint
# background reached 31 % validation accuracy after 500 steps and 47 % after 1000 (tasks/data/synthetic/README.md).
OBJECTS_PER_CLIP = 3
BACKGROUND_CONTRAST = 0.2  # faint texture: the objects' motion is most of what changes in the picture
SPEED_PX = (1.8, 3.2)  # translation, px/frame
SPIN_DEG = (6.0, 12.0)  # rotation, deg/frame
ORBIT_DEG = (8.0, 14.0)  # orbit, deg/frame
SIZE_FRACTION = (0.28, 0.37)  # sprite side / frame height; the largest, turned 45 deg at the largest scale, still
#                               fits the 96-px height, as wrapping needs


@dataclass(frozen=True)
class ObjectParams:
    """Everything random about one object of a clip, drawn independently of the class."""

    sprite: render.Sprite
    start: tuple[float, float]  # object centre (translate, rotate, scale) or orbit centre, px
    angle0: float  # orientation at frame 0, radians
    log_scale0: float  # in [0, 1): position on the log-size range at frame 0
    speed: float  # px/frame (translate)
    spin: float  # rad/frame (rotate)
    orbit_radius: float  # px
    orbit_phase0: float  # rad
    orbit_speed: float  # rad/frame
    scale_period: float  # frames per sawtooth period (scale)


@dataclass(frozen=True)
class ClipParams:
    """A clip's scene: a static background and objects that all perform the class's motion (each at its own speed,
    from its own start); nothing else depends on the class."""

    background: render.PanningBackground
    objects: tuple[ObjectParams, ...]
    placeholder: str  # the first object, named for the SSv2-style label text


def sample_params(rng: np.random.Generator, width: int, height: int,
                  num_objects: int = OBJECTS_PER_CLIP) -> ClipParams:
    """Draw the class-independent parameters of one clip."""
    unit = min(width, height) / 96  # speeds and sizes are tuned at 128x96 and scale with the frame
    background = render.PanningBackground(
        render.background_texture(rng, height, width, contrast=BACKGROUND_CONTRAST))
    objects, placeholder = [], ''
    for i in range(num_objects):
        shape = str(rng.choice(['ellipse', 'box', 'triangle']))
        size = int(round(rng.uniform(*SIZE_FRACTION) * min(width, height)))
        palette = render.contrasting_palette(rng, background.mean_luma)
        sprite = render.make_sprite(rng, size, shape, palette)
        if i == 0:
            placeholder = f'{render.colour_name(sprite.mean_rgb)} {shape}'
        objects.append(ObjectParams(
            sprite=sprite,
            start=(rng.uniform(0, width), rng.uniform(0, height)),
            angle0=rng.uniform(0, 2 * math.pi),
            log_scale0=rng.uniform(0, 1),
            speed=rng.uniform(*SPEED_PX) * unit,
            spin=math.radians(rng.uniform(*SPIN_DEG)),
            orbit_radius=rng.uniform(0.12, 0.22) * min(width, height),
            orbit_phase0=rng.uniform(0, 2 * math.pi),
            orbit_speed=math.radians(rng.uniform(*ORBIT_DEG)),
            scale_period=rng.uniform(24.0, 40.0)))
    return ClipParams(background=background, objects=tuple(objects), placeholder=placeholder)


def object_state(spec: ClassSpec, p: ObjectParams, t: int, width: int,
                 height: int) -> tuple[float, float, float, float]:
    """(cx, cy, angle, scale) of an object at frame ``t``; positions wrap around the frame."""
    cx, cy = p.start
    angle = p.angle0
    u = p.log_scale0
    if spec.motion == 'translate':
        dx, dy = spec.direction
        cx, cy = cx + dx * p.speed * t, cy + dy * p.speed * t
    elif spec.motion == 'rotate':
        angle = p.angle0 + spec.direction * p.spin * t
    elif spec.motion == 'orbit':
        phase = p.orbit_phase0 + spec.direction * p.orbit_speed * t
        # anticlockwise on screen (y down): right -> up -> left -> down
        cx, cy = cx + p.orbit_radius * math.cos(phase), cy - p.orbit_radius * math.sin(phase)
    elif spec.motion == 'scale':
        u = (p.log_scale0 + spec.direction * t / p.scale_period) % 1.0
    scale = SCALE_MIN * (SCALE_MAX / SCALE_MIN) ** u
    return cx % width, cy % height, angle, scale


def render_clip(
        label: int,
        params: ClipParams,
        num_frames: int,
        *,
        return_alpha: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Render one clip of class ``label`` (objects drawn in order, later ones in front).

    Returns:
        (T, H, W, 3) uint8 frames; with ``return_alpha`` also (T, K, H, W) float32 coverage of each of the K objects
        as drawn (tests that need to know where an object is).
    """
    spec = CLASSES[label]
    height, width = params.background.h, params.background.w
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    num_objects = len(params.objects)
    alphas = np.zeros((num_frames, num_objects, height, width), dtype=np.float32) if return_alpha else None
    background = params.background.frame(0.0, 0.0)  # a static camera: all motion is the objects'
    for t in range(num_frames):
        canvas = background.copy()
        for k, obj in enumerate(params.objects):
            cx, cy, angle, scale = object_state(spec, obj, t, width, height)
            cov = render.draw(canvas, obj.sprite, cx, cy, angle=angle, scale=scale, wrap=True)
            if alphas is not None and cov is not None:
                alphas[t, k][np.ix_(cov.rows % height, cov.cols % width)] = cov.alpha
        frames[t] = render.to_uint8(canvas)
    return (frames, alphas) if return_alpha else frames


# ----------------------------------------------------------------------------------------------------------------------
# dataset files


@dataclass(frozen=True)
class Job:
    """One video to render (picklable, for worker processes)."""

    video_id: str
    label: int
    split: Literal['train', 'val']
    entropy: tuple[int, ...]
    width: int
    height: int
    num_frames: int
    fps: float
    path: str


@dataclass(frozen=True)
class ClassificationConfig:
    """Frame size, clip length and videos per class of one preset."""

    width: int
    height: int
    num_frames: int
    fps: float
    train_per_class: int
    val_per_class: int


def make_jobs(cfg: ClassificationConfig, seed: int, root: Path) -> list[Job]:
    """Balanced classes per split, shuffled, with SSv2-like numeric ids assigned in random order.

    The ids are shuffled across classes and splits so a file name says nothing about its label.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1, 0]))
    splits = [('train', cfg.train_per_class), ('val', cfg.val_per_class)]
    items = []
    for split, per_class in splits:
        labels = np.repeat(np.arange(len(CLASSES)), per_class)
        rng.shuffle(labels)
        items += [(split, int(lab)) for lab in labels]
    ids = rng.permutation(len(items)) + 1
    jobs = []
    for i, ((split, label), vid) in enumerate(zip(items, ids)):
        jobs.append(Job(video_id=str(vid), label=label, split=split, entropy=(seed, 1, 1, i), width=cfg.width,
                        height=cfg.height, num_frames=cfg.num_frames, fps=cfg.fps,
                        path=str(root / 'videos' / f'{vid}.mp4')))
    return jobs


def run_job(job: Job) -> dict:
    """Render and encode one clip; returns what the annotation files need."""
    from tasks.data.video.writer import write_video

    rng = np.random.default_rng(np.random.SeedSequence(list(job.entropy)))
    params = sample_params(rng, job.width, job.height)
    frames = render_clip(job.label, params, job.num_frames)
    write_video(job.path, frames, job.fps, preset=render.ENCODER_PRESET)
    return {'placeholder': params.placeholder}


def write_annotations(root: Path, jobs: list[Job], results: list[dict]) -> tuple[list[str], dict]:
    """mmaction2 video lists and SSv2-style json files.

    Returns:
        (written files relative to ``root``, counts for the manifest).
    """
    files = []
    labels = {spec.name: str(i) for i, spec in enumerate(CLASSES)}
    write_text_atomic(root / 'labels.json', json.dumps(labels, indent=2) + '\n')
    files.append('labels.json')
    counts = {'num_classes': len(CLASSES)}
    for split, list_name, json_name in (('train', 'train_list_videos.txt', 'train.json'),
                                        ('val', 'val_list_videos.txt', 'validation.json')):
        chosen = [(j, r) for j, r in zip(jobs, results) if j.split == split]
        lines = [f'videos/{j.video_id}.mp4 {j.label}' for j, _ in chosen]
        write_text_atomic(root / list_name, '\n'.join(lines) + '\n')
        entries = []
        for j, r in chosen:
            template = CLASSES[j.label].template
            text = template.replace('[something]', r['placeholder'])
            entries.append({'id': j.video_id, 'label': text[0].lower() + text[1:], 'template': template,
                            'placeholders': [r['placeholder']]})
        write_text_atomic(root / json_name, json.dumps(entries, indent=1) + '\n')
        files += [list_name, json_name]
        counts[split] = len(chosen)
    files += [str(Path(j.path).relative_to(root)) for j in jobs]
    return files, counts
