"""What decides the features of a run (:class:`ExtractConfig`) and the store provenance it writes
(:func:`make_store_info`); a store is appended to only when that provenance equals the stored one
(:meth:`feature_store.StoreInfo.differences`)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from backbone.precision import cuda_tf32
from tasks.data.video.reader import Backend

from ..info import StoreDType, StoreInfo
from .clips import ComputeDType, build_model
from .featmaps import KeyframeClips
from .preprocess import Preprocess

__all__ = ['ExtractConfig', 'make_store_info']


@dataclass
class ExtractConfig:
    """Everything that decides the features, plus how the run is executed.

    Attributes:
        arch: backbone preset (``vit_small`` ... ``vit_giant``, ``vit_test``).
        checkpoint: weights file (any layout :func:`backbone.load_checkpoint` reads); ``None``: random init.
        seed: random-init seed when there is no checkpoint.
        img_size: (h, w) the model is constructed for (fixes its position table); default: the input size.
        frames: clip length the model is constructed for; default: ``clip_len``.
        clip_len: frames per window (16, docs/thumos14.md#official-feature-extractor).
        frame_interval: step between the frames of a window (1: consecutive frames, as the official extractor).
        stride: frames between window starts (4 for THUMOS14, 16 for FineAction).
        sample_fps: resample every video to this many frames per second by its timestamps before cutting windows
            (one uniform time axis for variable or mixed frame rates); None: the native frames, as the official
            extractor.
        preprocess: frame transform (default: the official TAD one, squash to 224x224 without mean/std).
        dtype: compute dtype (``'fp32'`` or ``'bf16'`` autocast).
        store_dtype: dtype of the stored rows, ``'float32'`` or ``'float16'`` (half the size, rows rounded to 11
            significant bits); a provenance field, since it changes what is read back.
        batch_size: windows per forward; None: 16 on CUDA, 4 on the CPU
            (:func:`~feature_store.extract.decode.default_batch_size`).
        num_workers: decoding processes (0: one background thread); None: 2 on the CPU, sized to the machine on
            CUDA (:func:`~feature_store.extract.decode.default_num_workers`).
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``...; default: CUDA when available (one GPU per rank).
        backend: video decoder: ``'auto'`` (decord, or PyAV for what decord cannot read), ``'decord'`` or
            ``'pyav'``; they give identical 8-bit frames (docs/video_decoding.md#video-formats).
        fused_attn: ``scaled_dot_product_attention`` (True) or the official explicit softmax.
        chunk_size: frames per decoder call.
        patch_size: spatial patch size when it differs from the preset's (None: the preset's).
        keyframe_clips: ``feature_kind='featmap'``: the AVA keyframes and their clips
            (:class:`~feature_store.extract.featmaps.KeyframeClips`; ``clip_len`` and ``frame_interval`` above, while
            ``stride``, ``sample_fps`` and ``preprocess`` do not apply); None: pooled windows.
        compile: ``torch.compile`` the backbone's blocks (:func:`backbone.compile.compile_backbone`); the features
            equal eager ones to 1e-5, so it is recorded in the store's config but is not provenance.
        model_threads: the model's intra-op threads on the CPU; None: decided from what decoding costs over the first
            batches (:class:`~feature_store.extract.threads.ThreadPlan`).
    """

    arch: str = 'vit_giant'
    checkpoint: str | None = None
    seed: int = 0
    img_size: tuple[int, int] | None = None
    frames: int | None = None
    clip_len: int = 16
    frame_interval: int = 1
    stride: int = 4
    sample_fps: float | None = None
    preprocess: Preprocess = field(default_factory=Preprocess)
    dtype: ComputeDType = 'fp32'
    store_dtype: StoreDType = 'float32'
    batch_size: int | None = None
    num_workers: int | None = None
    device: str | None = None
    backend: Backend = 'auto'
    fused_attn: bool = True
    chunk_size: int = 16
    patch_size: int | None = None
    keyframe_clips: KeyframeClips | None = None
    compile: bool = False
    model_threads: int | None = None

    def __post_init__(self) -> None:
        for name in ('clip_len', 'frame_interval', 'stride', 'batch_size', 'chunk_size'):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if self.sample_fps is not None and not self.sample_fps > 0:
            raise ValueError(f'sample_fps must be positive, got {self.sample_fps}')
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f'num_workers must be >= 0, got {self.num_workers}')
        if self.model_threads is not None and self.model_threads < 1:
            raise ValueError(f'model_threads must be >= 1, got {self.model_threads}')
        if self.dtype not in ('fp32', 'bf16'):
            raise ValueError(f"dtype must be 'fp32' or 'bf16', got {self.dtype!r}")
        if self.store_dtype not in ('float32', 'float16'):
            raise ValueError(f"store_dtype must be 'float32' or 'float16', got {self.store_dtype!r}")

    @property
    def kind(self) -> str:
        """The store's ``feature_kind``: ``'featmap'`` with keyframes, else ``'pooled'``."""
        return 'pooled' if self.keyframe_clips is None else 'featmap'

    @property
    def resolved_patch_size(self) -> int:
        from backbone.videomaev2 import ARCH_PRESETS

        return self.patch_size if self.patch_size is not None else int(ARCH_PRESETS[self.arch]['patch_size'])

    @property
    def model_img_size(self) -> tuple[int, int]:
        return tuple(self.img_size) if self.img_size is not None else tuple(self.preprocess.size)

    @property
    def model_frames(self) -> int:
        return self.frames if self.frames is not None else self.clip_len

    def summary(self) -> list[str]:
        """What decides the features, one line per topic, for the start of a run (``tools/extract_features.py``
        prints it, so that a wrong default shows before hours of extraction)."""
        h, w = self.model_img_size
        compiled = ', torch.compile' if self.compile else ''
        patch = f', patch {self.patch_size}' if self.patch_size is not None else ''
        weights = (str(self.checkpoint) if self.checkpoint is not None
                   else f'none: random init (seed {self.seed}), the features of an untrained model')
        if self.keyframe_clips is not None:
            kc = self.keyframe_clips
            clock = 'container timestamps' if kc.fps is None else f'{kc.fps:g} fps'
            return [
                f'model       {self.arch}, built for {self.model_frames} frames x {h}x{w}{patch}, featmap_norm',
                f'checkpoint  {weights}',
                f'keyframes   {sum(map(len, kc.keyframes.values()))} in {len(kc.keyframes)} videos, clips of '
                f'{self.clip_len} frames every {self.frame_interval} centred on each (t0 {kc.timestamp_start:g} s, '
                f'{clock})',
                f'preprocess  short side {kc.short_side or "as decoded"}, mean/std {kc.mean}/{kc.std}, padded to '
                f'whole patches',
                f'compute     {self.dtype}{compiled}, stored as {self.store_dtype} (C x H\' x W\' maps, mean over '
                "T')",
            ]
        official = (self.clip_len, self.frame_interval, self.stride, self.sample_fps) == (16, 1, 4, None)
        rate = 'native frames' if self.sample_fps is None else f'resampled to {self.sample_fps:g} fps'
        return [
            f'model       {self.arch}, built for {self.model_frames} frames x {h}x{w}{patch}',
            f'checkpoint  {weights}',
            f'windows     {self.clip_len} frames, every {self.frame_interval} frame(s), a window every {self.stride} '
            f'frames, {rate}' + (' (the official THUMOS14 windows)' if official else ''),
            f'preprocess  {self.preprocess.summary()}',
            f'compute     {self.dtype}{compiled}, stored as {self.store_dtype}',
        ]

    def build_model(self) -> nn.Module:
        return build_model(self.arch, checkpoint=self.checkpoint, img_size=self.model_img_size,
                           frames=self.model_frames, seed=self.seed, fused_attn=self.fused_attn,
                           patch_size=self.patch_size, featmap=self.keyframe_clips is not None)


def make_store_info(cfg: ExtractConfig, checkpoint_sha: str, device: torch.device | str = 'cpu') -> StoreInfo:
    """Provenance of a store written with ``cfg`` on ``device``, with the TF32 settings of this moment on CUDA
    (None on the CPU, where they do not apply). Only settings go into it (no output path, device index, process count
    or worker count), so a resumed, a distributed and a plain run of the same settings write the same attributes."""
    from importlib.metadata import PackageNotFoundError, version

    decoder_versions = {}
    for package in {'decord': ('decord',), 'pyav': ('av',), 'auto': ('decord', 'av')}[cfg.backend]:
        try:
            decoder_versions[package] = version(package)
        except PackageNotFoundError:  # provenance only
            decoder_versions[package] = None
    device_type = torch.device(device).type
    tf32 = cuda_tf32() if device_type == 'cuda' else (None, None)
    config = {
        'model': {'arch': cfg.arch, 'img_size': list(cfg.model_img_size), 'frames': cfg.model_frames,
                  'checkpoint': str(cfg.checkpoint) if cfg.checkpoint is not None else None,
                  'init_seed': None if cfg.checkpoint is not None else cfg.seed, 'fused_attn': cfg.fused_attn,
                  'output': 'forward_features: fc_norm(mean of tokens)',
                  # only when given: an absent key means the preset's, and absent equals absent in the rule
                  **({'patch_size': cfg.patch_size} if cfg.patch_size is not None else {})},
        'sampling': {'sampler': 'sliding/official', 'clip_len': cfg.clip_len, 'frame_interval': cfg.frame_interval,
                     'stride': cfg.stride,
                     # only when given: stores of native frames (and those written before) have no such key
                     **({'sample_fps': cfg.sample_fps} if cfg.sample_fps is not None else {})},
        'compute_dtype': cfg.dtype,
        'batch_size': cfg.batch_size,
        # information, not provenance (like the batch size): compiled blocks give the eager features to 1e-5
        'compile': cfg.compile,
        'device_type': device_type,
        # the provenance rule compares both: TF32 changes the features' last digits (a 10-bit mantissa)
        'tf32_matmul': tf32[0],
        'tf32_conv': tf32[1],
        'decoder': {'backend': cfg.backend, 'versions': decoder_versions},
        'torch_version': torch.__version__,
    }
    if cfg.keyframe_clips is not None:
        kc = cfg.keyframe_clips
        config['model'].update(output="forward_featmap: norm(tokens), mean over T'", featmap_norm=True,
                               temporal_pool='avg', patch_size=cfg.resolved_patch_size)
        config['sampling'] = {'sampler': 'keyframe/test', 'clip_len': cfg.clip_len,
                              'frame_interval': cfg.frame_interval, 'timestamp_start': kc.timestamp_start,
                              'keyframe_fps': kc.fps}
        config['keyframe_files'] = list(kc.sources)  # not provenance: a rerun may add keyframes
        return StoreInfo(arch=cfg.arch, checkpoint_sha256=checkpoint_sha, feature_kind='featmap',
                         preprocessing=kc.describe(), dtype=cfg.store_dtype, config=config)
    return StoreInfo(arch=cfg.arch, checkpoint_sha256=checkpoint_sha, feature_kind='pooled',
                     preprocessing=cfg.preprocess.describe(), dtype=cfg.store_dtype, config=config)

