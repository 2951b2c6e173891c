"""File-level provenance of a store (:class:`StoreInfo`) and the one rule that decides whether two stores hold
interchangeable features (:meth:`StoreInfo.differences`): appending, merging, npy import, the linear probe and
extraction all ask it, so they refuse exactly the same things."""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import FeatureStoreError

__all__ = [
    'SCHEMA_VERSION', 'FEATURE_KINDS', 'PROVENANCE_FIELDS', 'PROVENANCE_CONFIG_KEYS', 'PROVENANCE_CONFIG_DEFAULTS', 'MISSING',
    'StoreInfo', 'ProvenanceDifference', 'describe_differences', 'checkpoint_id', 'package_version',
]

SCHEMA_VERSION = 1
"""Version of the file layout written by this package; readers refuse files with a newer version."""

StoreDType = Literal['float32', 'float16']

FEATURE_KINDS = {'pooled': '(num_clips, C) rows: forward_features, fc_norm(mean of tokens), one per window',
                 'featmap': '(num_keyframes, C, H\', W\') maps: norm(tokens) of the keyframe-centred clip, mean over T\''}
"""What a store's rows are (``StoreInfo.feature_kind``); a reader of one kind refuses the other
(:meth:`FeatureStore.require_kind`)."""

PROVENANCE_FIELDS = ('arch', 'checkpoint_sha256', 'feature_kind', 'preprocessing', 'dtype')
"""File attributes that must be equal for two stores' features to be interchangeable."""

PROVENANCE_CONFIG_KEYS = ('clip_len', 'frame_interval', 'stride', 'sampler', 'sample_fps', 'img_size', 'frames',
                          'patch_size', 'compute_dtype', 'device_type', 'tf32_matmul', 'tf32_conv',
                          'timestamp_start', 'keyframe_fps', 'featmap_norm', 'temporal_pool')
"""Entries of ``config`` that change the features, matched by their last key at any depth. An entry absent from
both stores is equal, so keys written only when set (``model.patch_size``, only when it overrides the preset's)
keep older stores appendable (the last four are written by ``featmap`` stores only). The device type and TF32 are in it because CUDA kernels (TF32 ones above all: a 10-bit
mantissa) give other last digits than the CPU, and one store must not mix them."""

PROVENANCE_CONFIG_DEFAULTS = {'tf32_matmul': None, 'tf32_conv': None}
"""The value of a provenance config entry in a store that does not record it, where not :data:`MISSING`. Stores
written before TF32 was recorded count as None, the CPU's value ("does not apply"): older CPU stores stay appendable
on the CPU, while older CUDA stores are refused by a CUDA run (their TF32 setting is unknown)."""


class _Missing:
    def __repr__(self) -> str:
        return '<missing>'


MISSING: Any = _Missing()
"""The value of a provenance config entry that a store does not record."""


def package_version() -> str:
    """This suite's version: the installed one, else pyproject's with '+source' (a bare checkout), else 'unknown'."""
    try:
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version('videomaev2-suite')
        except PackageNotFoundError:
            pass
        import tomllib  # source checkout without `pip install -e .`: read pyproject.toml
        pyproject = Path(__file__).resolve().parents[1] / 'pyproject.toml'
        return f"{tomllib.loads(pyproject.read_text())['project']['version']}+source"
    except Exception:  # version lookup is provenance only; never fail a write over it
        return 'unknown'


def checkpoint_id(path: str | os.PathLike | None, seed: int = 0) -> str:
    """The ``checkpoint_sha256`` of features made from ``path``: the file's SHA-256 (hex), or ``'random-init:<seed>'``
    for a randomly initialised model."""
    if path is None:
        return f'random-init:{seed}'
    from backbone import resolve_checkpoint

    path = resolve_checkpoint(path)  # a released name: the file it resolves to
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _flatten(d: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f'{prefix}.{k}' if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def _as_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class ProvenanceDifference:
    """A field in which two stores' provenance differs.

    Attributes:
        field: a file attribute (``'arch'``) or a config entry (``'config.sampling.stride'``).
        old: its value in the existing store (:data:`MISSING` when not recorded).
        new: its value in the other one.
    """

    field: str
    old: Any
    new: Any


def describe_differences(differences: Sequence[ProvenanceDifference], old: str = 'stored', new: str = 'new') -> str:
    """``'field: old (label) vs new (label); ...'``, for error messages."""
    return '; '.join(f'{d.field}: {d.old!r} ({old}) vs {d.new!r} ({new})' for d in differences)


@dataclass
class StoreInfo:
    """File-level provenance of a store (README: "File attributes").

    Attributes:
        arch: backbone preset, e.g. ``'vit_giant_patch14_224'``.
        checkpoint_sha256: hex SHA-256 of the checkpoint file the features came from (:func:`checkpoint_id`).
        feature_kind: what a row is (:data:`FEATURE_KINDS`): ``'pooled'`` (``forward_features``, mean-pooled
            tokens) or ``'featmap'`` (a keyframe's spatial map, docs/feature_caching.md#feature-maps-for-ava).
        preprocessing: resize mode and size, normalisation (or ``None``), frame dtype, ... (JSON-serialisable).
        dtype: storage dtype, ``'float32'`` or ``'float16'`` (docs/video_decoding.md: float16 halves the size).
        config: the full extraction config (JSON-serialisable).
        schema_version: layout version (:data:`SCHEMA_VERSION`).
        package_version: version of this suite that wrote the file.
        created: ISO-8601 UTC time the file was written (set on write; not provenance).
    """

    arch: str
    checkpoint_sha256: str
    feature_kind: str
    preprocessing: dict
    dtype: StoreDType
    config: dict
    schema_version: int = SCHEMA_VERSION
    package_version: str = field(default_factory=package_version)
    created: str | None = None

    def __post_init__(self) -> None:
        if self.dtype not in ('float32', 'float16'):
            raise ValueError(f"dtype must be 'float32' or 'float16', got {self.dtype!r}")
        for name in ('preprocessing', 'config'):
            try:
                json.dumps(getattr(self, name))
            except TypeError as e:
                raise ValueError(f'StoreInfo.{name} must be JSON-serialisable: {e}') from None

    def differences(self, other: StoreInfo) -> list[ProvenanceDifference]:
        """Where ``other``'s features are not interchangeable with this store's (empty: compatible).

        Compared: :data:`PROVENANCE_FIELDS`, then every config entry whose last key is in
        :data:`PROVENANCE_CONFIG_KEYS` (sorted by dotted path; an entry one store lacks has its
        :data:`PROVENANCE_CONFIG_DEFAULTS` value, else :data:`MISSING`). Other config entries (paths, batch size,
        device index, workers, decoder), versions and times may differ.
        """
        diff = [ProvenanceDifference(name, getattr(self, name), getattr(other, name))
                for name in PROVENANCE_FIELDS if getattr(self, name) != getattr(other, name)]
        mine, theirs = _flatten(self.config), _flatten(other.config)
        for key in sorted(set(mine) | set(theirs)):
            last = key.rsplit('.', 1)[-1]
            if last not in PROVENANCE_CONFIG_KEYS:
                continue
            default = PROVENANCE_CONFIG_DEFAULTS.get(last, MISSING)
            old, new = mine.get(key, default), theirs.get(key, default)
            if old != new:
                diff.append(ProvenanceDifference(f'config.{key}', old, new))
        return diff

    def compatible_with(self, other: StoreInfo) -> list[str]:
        """The names of :meth:`differences` (empty if compatible)."""
        return [d.field for d in self.differences(other)]

    def to_attrs(self) -> dict[str, Any]:
        """HDF5 file attributes; ``created`` is now unless set."""
        return {'schema_version': np.int64(self.schema_version), 'arch': self.arch,
                'checkpoint_sha256': self.checkpoint_sha256, 'feature_kind': self.feature_kind,
                'preprocessing': json.dumps(self.preprocessing, sort_keys=True), 'dtype': self.dtype,
                'package_version': self.package_version, 'config': json.dumps(self.config, sort_keys=True),
                'created': self.created or datetime.now(timezone.utc).isoformat(timespec='seconds')}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], where: str) -> StoreInfo:
        names = ('arch', 'checkpoint_sha256', 'feature_kind', 'preprocessing', 'dtype', 'config', 'package_version')
        missing = [n for n in names if n not in attrs]
        if missing:
            raise FeatureStoreError(f'{where}: file attributes {missing} are missing (not a feature store written by '
                                    'this suite, or a damaged one)')
        values = {n: _as_str(attrs[n]) for n in names}
        try:
            values['preprocessing'] = json.loads(values['preprocessing'])
            values['config'] = json.loads(values['config'])
        except json.JSONDecodeError as e:
            raise FeatureStoreError(f'{where}: file attribute preprocessing/config is not valid JSON: {e}') from None
        return cls(**values, schema_version=int(attrs['schema_version']),
                   created=_as_str(attrs['created']) if 'created' in attrs else None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StoreInfo:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
