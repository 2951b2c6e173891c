"""Feature store: per-video clip features in one HDF5 file with their provenance (layout: ``feature_store/README.md``).

* :class:`FeatureStore` opens (``open``) or creates (``create``) a store; :class:`StoreInfo` is the file provenance
  (:meth:`StoreInfo.differences` decides whether two stores' features are interchangeable) and
  :class:`VideoFeatureMeta` the per-video metadata with the row <-> seconds mapping.
* :func:`build_store` writes a whole store atomically from :func:`read_parts` (per-video part files an extractor
  writes with :func:`write_part`) and an optional base store; :func:`merge_stores` merges shards. Every writer
  holds the store's lock file (:func:`store_lock`): one writer per store.
* :class:`FeatureDataset` / :func:`collate_features` feed a torch ``DataLoader``; :func:`export_npy` /
  :func:`import_npy` convert to and from the one-``.npy``-per-video layout of ActionFormer and OpenTAD.
* :mod:`feature_store.extract` computes the features (``tools/extract_features.py``).
"""
from typing import Any

from .errors import FeatureStoreError, UnknownVideoError
from .info import SCHEMA_VERSION, ProvenanceDifference, StoreInfo, checkpoint_id, describe_differences
from .lock import StoreLockedError, store_lock
from .meta import VideoFeatureMeta
from .npy import export_npy, import_npy
from .parts import part_ids, part_path, read_parts, write_part
from .store import FeatureStore, build_store, merge_stores

__all__ = [
    'SCHEMA_VERSION', 'FeatureStore', 'FeatureStoreError', 'StoreLockedError', 'store_lock', 'UnknownVideoError',
    'StoreInfo', 'ProvenanceDifference', 'describe_differences', 'checkpoint_id', 'VideoFeatureMeta', 'build_store',
    'merge_stores', 'write_part', 'read_parts', 'part_ids', 'part_path', 'FeatureDataset', 'collate_features',
    'export_npy', 'import_npy',
]


def __getattr__(name: str) -> Any:
    # the torch dataset is imported on first use, so that reading and writing stores does not import torch
    if name in ('FeatureDataset', 'collate_features'):
        from . import dataset
        return getattr(dataset, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
