"""Reading checkpoint files safely: ``.pth``/``.pt``/``.bin`` (zip or legacy pickle) and ``.safetensors``, unwrapped to
a flat ``{name: tensor}`` dict, with errors that name the file and say what is wrong (docs/checkpoints.md).
"""
from __future__ import annotations

import contextlib
import os
import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

__all__ = ['CheckpointError', 'Source', 'abbreviate_keys', 'read_checkpoint', 'source_name',
           'training_checkpoint_globals']

Source = str | os.PathLike | Mapping[str, torch.Tensor]

_WRAPPER_KEYS = ('state_dict', 'model', 'module')


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, or whose keys do not account for the model exactly."""


def source_name(src: Source) -> str:
    """How messages name a checkpoint: its path, or ``'<state_dict>'`` for a mapping."""
    return '<state_dict>' if isinstance(src, Mapping) else str(src)


def abbreviate_keys(keys: list[str], limit: int = 8) -> str:
    """The first ``limit`` keys, comma-separated, and how many more there are: for error messages."""
    return ', '.join(keys[:limit]) + (f', ... (+{len(keys) - limit} more)' if len(keys) > limit else '')


def read_checkpoint(src: Source, weights_only: bool = True) -> dict[str, torch.Tensor]:
    """Read a checkpoint file (or take a state dict) and unwrap ``state_dict`` / ``model`` / ``module``.

    Args:
        src: a ``.pth``/``.pt``/``.bin``/``.safetensors`` path, or a mapping.
        weights_only: passed to ``torch.load``; set False only for trusted files that pickle Python objects other
            than those of an mmengine training checkpoint (:func:`training_checkpoint_globals`), e.g. the raw
            training checkpoints of the official code with an argparse Namespace.

    Returns:
        A flat ``{name: tensor}`` dict (CPU tensors, original dtypes).

    Raises:
        CheckpointError: missing, empty, truncated or foreign file, Python objects under ``weights_only``, or a
            content that is not a dict of tensors.
    """
    name = source_name(src)
    if isinstance(src, Mapping):
        return _unwrap(src, name)
    path = Path(src)
    if not path.exists():
        raise CheckpointError(f'{name}: no such checkpoint file')
    if not path.is_file():
        raise CheckpointError(f'{name}: not a file (for a Hugging Face model folder, pass its model.safetensors or '
                              'pytorch_model.bin)')
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f'{name}: the file is empty')
    with path.open('rb') as handle:
        magic = handle.read(9)
    if path.suffix == '.safetensors' or _looks_like_safetensors(magic, size):
        return _unwrap(_read_safetensors(path, name), name)
    _check_torch_container(path, name, magic, size)
    return _unwrap(_torch_load(path, name, weights_only), name)


def _check_torch_container(path: Path, name: str, magic: bytes, size: int) -> None:
    """torch.save writes a zip archive (torch >= 1.6) or, in the legacy format, a pickle (protocol 2: b'\\x80\\x02').

    Checking the container first turns torch's obscure errors for foreign files ("Errno 22", "KeyError: '101'") into
    messages that say what is wrong.
    """
    if magic.startswith(b'PK\x03\x04'):
        if not zipfile.is_zipfile(path):  # the end-of-archive record is missing: the tail was cut off
            raise CheckpointError(f'{name}: truncated or corrupt PyTorch checkpoint: the zip archive has no end '
                                  f'record ({size} bytes; an interrupted download or copy?)')
    elif not magic.startswith(b'\x80'):
        raise CheckpointError(f'{name}: not a PyTorch checkpoint (neither a zip archive nor a pickle; the file '
                              f'starts with {magic[:8]!r})')


def _torch_load(path: Path, name: str, weights_only: bool) -> object:
    try:
        with training_checkpoint_globals() if weights_only else contextlib.nullcontext():
            return torch.load(path, map_location='cpu', weights_only=weights_only)
    except Exception as err:  # torch raises many types here (UnpicklingError, RuntimeError, OSError, EOFError ...)
        message = str(err)
        if weights_only and 'Weights only load failed' in message:
            found = sorted(set(re.findall(r'GLOBAL ([\w.]+)', message)))
            what = f' ({", ".join(found)})' if found else ''
            raise CheckpointError(
                f'{name}: torch.load(weights_only=True) refused the file: it pickles Python objects{what}, as raw '
                'training checkpoints do. If you trust the file, load it with weights_only=False '
                '(convert_checkpoint.py --unsafe-pickle), or allowlist the types with '
                'torch.serialization.add_safe_globals.') from err
        first = message.strip().splitlines()[0] if message.strip() else ''
        raise CheckpointError(f'{name}: truncated or corrupt PyTorch checkpoint ({type(err).__name__}: '
                              f'{first})') from err


def _training_checkpoint_types() -> list:
    """What mmengine 0.10 pickles into a training checkpoint besides tensors and builtin containers.

    ``tools/train.py`` writes mmengine checkpoints: ``state_dict`` + ``meta`` + the message hub, whose loss/lr
    histories are ``HistoryBuffer`` objects holding numpy arrays and scalars. Allowing exactly these classes lets the
    weights-only unpickler read our own training runs without turning its safety check off (docs/ecosystem.md).
    """
    import numpy as np

    multiarray = (np._core if hasattr(np, '_core') else np.core).multiarray
    allowed: list = [
        # A HistoryBuffer pickles its statistics table as getattr(HistoryBuffer, 'min') etc. The weights-only
        # unpickler still refuses to *call* anything not allowed here, so getattr can only look attributes up.
        getattr,
        np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,  # numpy histories and scalars
    ]
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25 pickles dtypes through their classes (Float64DType, ...)
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    try:
        from mmengine.logging.history_buffer import HistoryBuffer
    except ImportError:  # pragma: no cover - without mmengine there are no mmengine checkpoints to read
        return allowed
    return [HistoryBuffer, *allowed]


@contextlib.contextmanager
def training_checkpoint_globals() -> Iterator[None]:
    """Within the block, ``torch.load(weights_only=True)`` also accepts the objects of an mmengine training checkpoint
    (and no others). A no-op on torch < 2.5, which has no scoped allow-list."""
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    if safe_globals is None:
        yield
        return
    with safe_globals(_training_checkpoint_types()):
        yield


def _looks_like_safetensors(magic: bytes, size: int) -> bool:
    """safetensors: an 8-byte little-endian header length, then a JSON header starting with '{'."""
    return len(magic) == 9 and magic[8:9] == b'{' and 0 < int.from_bytes(magic[:8], 'little') < size


def _read_safetensors(path: Path, name: str) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as err:  # pragma: no cover - safetensors comes with transformers
        raise CheckpointError(f'{name}: reading .safetensors needs `pip install safetensors`') from err
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own SafetensorError
        raise CheckpointError(f'{name}: truncated or corrupt safetensors file ({err})') from err


def _unwrap(obj: object, name: str) -> dict[str, torch.Tensor]:
    for _ in range(4):  # e.g. {'model': {'module': ...}}
        if not isinstance(obj, Mapping):
            raise CheckpointError(f'{name}: expected a dict of tensors, found {type(obj).__name__}')
        wrapped = [k for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        if not wrapped:
            break
        obj = obj[wrapped[0]]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f'{name}: the checkpoint holds no state dict')
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f'{name}: entries that are not tensors: {bad[:8]} (top-level keys: {list(obj)[:8]}); '
                              'is this a VideoMAE checkpoint?')
    return dict(obj)
