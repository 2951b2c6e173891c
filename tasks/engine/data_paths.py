"""Where a config's data is: re-pointing every dataloader path from one ``--cfg-options data_root=DIR`` (or
``feature_store`` / ``ann_file``), and checking that the files exist before a run (configs/README.md#data).
"""
from __future__ import annotations

import os
import os.path as osp
from collections.abc import Mapping, Sequence
from typing import Any

from mmengine.config import Config

from tasks.data.annotations import AnnotationError

__all__ = ['PATH_KEYS', 'DataPathError', 'check_data_paths', 'data_error_message', 'missing_data_paths', 'path_leaves',
           'repoint_paths']


# Top-level keys that name where the data is (configs/README.md#data). mmengine substitutes a config's variables when
# it reads the file, so `--cfg-options data_root=DIR` alone would change only the variable; load_config re-points
# every dataloader / evaluator path that begins with the old value.
PATH_KEYS = ('data_root', 'ann_file', 'feature_store')
_PATH_SECTIONS = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator', 'test_evaluator')
# dataset arguments that are files / folders, checked before a run (check_data_paths)
_FILE_ARGS = ('ann_file', 'feature_store', 'label_file', 'exclude_file', 'proposal_file')
_DIR_ARGS = ('data_prefix',)


class DataPathError(FileNotFoundError):
    """A dataset path of the config that does not exist; the message names the config key, the path and the folder
    a relative path was resolved against."""


def path_leaves(cfg: Config) -> dict[str, str]:
    """(dotted key -> value) of every string under the dataloaders and evaluators, to tell after ``--cfg-options``
    which paths the command line set itself (:func:`repoint_paths`)."""
    return {name: node[key] for section in _PATH_SECTIONS for name, node, key in _walk(cfg.get(section), section)}


def _walk(node: Any, where: str):
    """(dotted key, container, key) of every string under ``node`` (dicts and lists)."""
    items = node.items() if isinstance(node, Mapping) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        name = f'{where}.{key}'
        if isinstance(value, str):
            yield name, node, key
        else:
            yield from _walk(value, name)


def repoint_paths(cfg: Config, before: Mapping[str, Any], leaves: Mapping[str, str] | None = None) -> list[str]:
    """Re-point the dataloader / evaluator paths after ``--cfg-options`` changed a top-level :data:`PATH_KEYS` key.

    Every string under them that equals the key's value as the file set it, or begins with it followed by ``/``,
    gets the new value instead (the longest changed key wins: ``feature_store`` inside ``data_root``). A string the
    command line set itself (``leaves`` holds the values before it) is left alone.

    Args:
        before: the :data:`PATH_KEYS` values of the file, before ``--cfg-options``.
        leaves: (dotted key -> value) of the paths before ``--cfg-options``; None: every path may be re-pointed.

    Returns:
        The dotted keys re-pointed.

    Raises:
        ValueError: a key set on the command line that the config does not have, or whose value no path begins with.
    """
    changed = []
    for key in PATH_KEYS:
        old, new = before.get(key), cfg.get(key)
        if new == old:
            continue
        if not isinstance(old, str) or not isinstance(new, str):
            raise ValueError(f'--cfg-options {key}={new!r}: this config has no top-level {key} path to re-point '
                             f'(it has {old!r}); set the dataloader fields themselves, e.g. '
                             f'train_dataloader.dataset.ann_file=...')
        changed.append((key, old.rstrip('/'), new.rstrip('/') or '/'))
    if not changed:
        return []
    changed.sort(key=lambda item: len(item[1]), reverse=True)
    done, used = [], set()
    for section in _PATH_SECTIONS:
        for name, node, index in list(_walk(cfg.get(section), section)):
            value = node[index]
            if leaves is not None and leaves.get(name) != value:
                continue  # set on the command line, or new
            for key, old, new in changed:
                if value == old or value.startswith(old + '/'):
                    node[index] = new + value[len(old):]
                    done.append(name)
                    used.add(key)
                    break
    for key, old, new in changed:
        if key not in used:
            raise ValueError(f'--cfg-options {key}={new}: no dataloader path of this config begins with its value '
                             f'in the file ({old!r}), so it would change nothing; set the dataloader fields '
                             f'themselves')
        for other in PATH_KEYS:  # e.g. feature_store under data_root: keep the top-level value in step
            value = cfg.get(other)
            if other != key and isinstance(value, str) and before.get(other) == value and value.startswith(old + '/'):
                cfg[other] = new + value[len(old):]
    return done


def data_error_message(error: Exception) -> str:
    """The one-line message the Runner tools exit with for one of :data:`DATA_ERRORS`; an annotation file given
    by a relative path also names the folder it was looked for in."""
    path = getattr(error, 'path', None)
    if isinstance(error, AnnotationError) and path is not None and not path.is_absolute():
        return f'{error} (relative to the current folder, {os.getcwd()})'
    return str(error)


def _datasets(node: Any, where: str):
    """(dotted key, dataset dict) of a loader's dataset and of those a wrapper (``dataset=``/``datasets=``) holds."""
    if not isinstance(node, Mapping):
        return
    yield where, node
    if isinstance(node.get('dataset'), Mapping):
        yield from _datasets(node['dataset'], f'{where}.dataset')
    for i, inner in enumerate(node.get('datasets') or ()):
        yield from _datasets(inner, f'{where}.datasets.{i}')


def missing_data_paths(cfg: Config, loaders: Sequence[str]) -> list[tuple[str, str, str]]:
    """``(config key, 'file' or 'folder', path)`` of every file and folder the datasets of ``loaders`` read that does
    not exist (a dataset's own ``data_root`` joined first, as mmengine's ``BaseDataset`` does)."""
    missing = []
    for loader in loaders:
        if not isinstance(cfg.get(loader), Mapping):
            continue
        for where, dataset in _datasets(cfg[loader].get('dataset'), f'{loader}.dataset'):
            for arg in _FILE_ARGS + _DIR_ARGS:
                value = dataset.get(arg)
                if arg == 'feature_store' and dataset.get('online'):
                    continue  # extracted into the store on the fly
                paths = value.items() if isinstance(value, Mapping) else [(None, value)]
                for sub, path in paths:
                    if not isinstance(path, str) or not path:
                        continue
                    root = dataset.get('data_root')
                    full = osp.join(root, path) if isinstance(root, str) and not osp.isabs(path) else path
                    if not (osp.isdir if arg in _DIR_ARGS else osp.isfile)(full):
                        key = f'{where}.{arg}' + (f'.{sub}' if sub is not None else '')
                        missing.append((key, 'folder' if arg in _DIR_ARGS else 'file', full))
    return missing


def check_data_paths(cfg: Config, loaders: Sequence[str]) -> None:
    """Check that the files and folders the datasets of ``loaders`` read exist, before anything is built.

    Relative paths resolve against the current folder (as in mmengine and mmaction2).

    Raises:
        DataPathError: naming the config key, the path and the folder it was resolved against.
    """
    missing = missing_data_paths(cfg, loaders)
    if not missing:
        return
    key, kind, full = missing[0]
    hint = ' (--cfg-options data_root=DIR)' if isinstance(cfg.get('data_root'), str) else ''
    against = '' if osp.isabs(full) else f' (relative paths resolve against the current folder, {os.getcwd()})'
    raise DataPathError(f'{key}: {kind} {full} not found{against}; run from the folder the config\'s paths are '
                        f'relative to (the repository root for the synthetic benchmark), or point the config at the '
                        f'data{hint}')
