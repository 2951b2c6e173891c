"""Reading checkpoint files safely: ``.pth``/``.pt``/``.bin`` (zip or legacy pickle) and ``.safetensors``, unwrapped to
a flat ``{name: tensor}`` dict, with errors that name the file and say what is wrong (docs/checkpoints.md). Released
weights may be named instead of a path (:func:`resolve_checkpoint`).
"""
from __future__ import annotations

import contextlib
import os
import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from .released import RELEASED, ReleasedCheckpoint

__all__ = ['CheckpointError', 'Source', 'TRAINING_CHECKPOINT_GLOBALS', 'abbreviate_keys', 'load_checkpoint_file',
           'read_checkpoint', 'resolve_checkpoint', 'scoped_allowlists', 'source_name']

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
            than those of an mmengine training checkpoint (:data:`TRAINING_CHECKPOINT_GLOBALS`, which are read as
            inert stand-ins and dropped), e.g. the raw training checkpoints of the official code with an argparse
            Namespace.

    Returns:
        A flat ``{name: tensor}`` dict (CPU tensors, original dtypes).

    Raises:
        CheckpointError: missing, empty, truncated or foreign file, Python objects under ``weights_only``, or a
            content that is not a dict of tensors.
    """
    name = source_name(src)
    if isinstance(src, Mapping):
        return _unwrap(src, name)
    return _unwrap(load_checkpoint_file(src, weights_only), name)


def load_checkpoint_file(path: str | os.PathLike, weights_only: bool = True) -> object:
    """What a ``.pth``/``.pt``/``.bin``/``.safetensors`` file holds, on the CPU, not unwrapped: :func:`read_checkpoint`
    without its last step, with the same checks and errors. Under ``weights_only`` the objects of
    :data:`TRAINING_CHECKPOINT_GLOBALS` are inert stand-ins, unless an allow-list for them is in force.

    ``path`` may also be a released name (``vit_b_k710_distill``; :func:`resolve_checkpoint`), fetched through the
    Hugging Face hub cache, so every loader and tool takes names with no code of its own."""
    resolved = resolve_checkpoint(path)  # an existing path as it is; a missing one that is no name is an error
    name = str(path) if resolved == Path(path) else f'{path} ({resolved})'
    path = resolved
    if not path.is_file():
        raise CheckpointError(f'{name}: not a file (for a Hugging Face model folder, pass its model.safetensors or '
                              'pytorch_model.bin)')
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f'{name}: the file is empty')
    with path.open('rb') as handle:
        magic = handle.read(9)
    if path.suffix == '.safetensors' or _looks_like_safetensors(magic, size):
        return _read_safetensors(path, name)
    _check_torch_container(path, name, magic, size)
    return _torch_load(path, name, weights_only)


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """The local file for a checkpoint path or released name.

    An existing path is returned as it is (so a local file wins over a name). A name of
    :data:`backbone.released.RELEASED` is fetched with ``huggingface_hub.hf_hub_download``, which keeps the file in
    the hub cache (``HF_HOME`` / ``HF_HUB_CACHE``; downloaded once, with a progress bar), reads only the cache under
    ``HF_HUB_OFFLINE=1`` and sends the user's token (``HF_TOKEN`` or ``hf auth login``) to a gated repo.

    Raises:
        CheckpointError: neither an existing path nor a released name, or the hub could not give the file (offline
            and not cached, a gated repo without a token, no network), naming what to do.
    """
    path = Path(name_or_path)
    if path.exists():
        return path
    key = str(name_or_path)
    if key not in RELEASED:
        raise CheckpointError(f'{key}: no such checkpoint file, and not a released checkpoint name (known names: '
                              f'{", ".join(RELEASED)}; docs/checkpoints.md#released-weights-by-name)')
    return _download(RELEASED[key])


def _download(entry: ReleasedCheckpoint) -> Path:
    """``hf_hub_download`` (imported here: only names need huggingface_hub); every failure is one CheckpointError."""
    where = f'{entry.name} ({entry.repo_id}/{entry.filename})'
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as err:
        raise CheckpointError(f'{where}: fetching a released checkpoint by name needs `pip install huggingface_hub`; '
                              'or download the file yourself and pass its path') from err
    try:
        return Path(hf_hub_download(entry.repo_id, entry.filename))
    except Exception as err:  # the hub raises many types (offline, gated, HTTP, OS); each becomes one clear message
        raise CheckpointError(
            f'{where}: the Hugging Face hub could not give the file ({type(err).__name__}: '
            f'{" ".join(str(err).split())[:300]}). Offline (HF_HUB_OFFLINE=1), the file must already be in the hub '
            f'cache (HF_HUB_CACHE / HF_HOME): fetch it once with `hf download {entry.repo_id} {entry.filename}`; a '
            'gated repo needs `hf auth login` or HF_TOKEN; or pass the path of a downloaded copy') from err


def _refusal_reason(message: str) -> str:
    """What torch's weights-only refusal says beyond its boilerplate (e.g. a checked stand-in's reason)."""
    boilerplate = ('Weights only load failed', 'Please file an issue', 'Check the documentation', '(1)', '(2)')
    lines = [line.split('WeightsUnpickler error:', 1)[-1].strip() for line in message.splitlines()]
    reason = ' '.join(line for line in lines if line and not line.startswith(boilerplate))
    return f'it holds an object the allow-list refuses ({reason})' if reason else 'it pickles Python objects'


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
        with _training_objects_skipped() if weights_only else contextlib.nullcontext():
            return torch.load(path, map_location='cpu', weights_only=weights_only)
    except Exception as err:  # torch raises many types here (UnpicklingError, RuntimeError, OSError, EOFError ...)
        message = str(err)
        if weights_only and 'Weights only load failed' in message:
            found = sorted(set(re.findall(r'GLOBAL ([\w.]+)', message)))
            what = (f'it pickles Python objects ({", ".join(found)}), as raw training checkpoints do' if found
                    else _refusal_reason(message))
            raise CheckpointError(
                f'{name}: torch.load(weights_only=True) refused the file: {what}. If you trust the file, load it '
                'with weights_only=False (convert_checkpoint.py --unsafe-pickle), or allowlist the types with '
                'torch.serialization.add_safe_globals.') from err
        first = message.strip().splitlines()[0] if message.strip() else ''
        raise CheckpointError(f'{name}: truncated or corrupt PyTorch checkpoint ({type(err).__name__}: '
                              f'{first})') from err


#: What an mmengine training checkpoint pickles besides tensors and containers (``tools/train.py`` writes them): the
#: message hub's ``HistoryBuffer`` (its statistics methods pickled as ``getattr(HistoryBuffer, 'mean')``), and the
#: numpy arrays, scalars and dtypes of its histories (numpy 1.x and 2.x names; ``bytes()`` for an empty array's
#: data). :func:`read_checkpoint` reads them as inert stand-ins; ``tasks.engine.mmengine_checkpoint_globals``
#: rebuilds them, through checked stand-ins, for a resume (docs/security.md#checkpoints).
TRAINING_CHECKPOINT_GLOBALS = (
    'mmengine.logging.history_buffer.HistoryBuffer', 'builtins.getattr', 'builtins.bytes', 'numpy.dtype',
    'numpy.ndarray',
    *(f'{core}.{name}' for core in ('numpy.core', 'numpy._core')
      for name in ('multiarray._reconstruct', 'multiarray.scalar', 'numeric._frombuffer')),
)


def scoped_allowlists() -> bool:
    """Whether ``torch.load`` reads weights only by default and takes ``(object, 'module.name')`` allow-list entries
    in a ``with`` block: torch >= 2.6."""
    return hasattr(torch.serialization, 'safe_globals') and torch.__version__ >= (2, 6)


class _Skipped:
    """Stands in for every object of :data:`TRAINING_CHECKPOINT_GLOBALS`: it takes any arguments and state and does
    nothing with them, so reading the weights of a training checkpoint runs no code of numpy's or mmengine's."""

    def __init__(self, *args: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


@contextlib.contextmanager
def _training_objects_skipped() -> Iterator[None]:
    """Within the block, ``torch.load(weights_only=True)`` reads the objects of an mmengine training checkpoint as
    :class:`_Skipped` (and no others). Nothing changes on torch < 2.6, which then refuses those files naming them, or
    where an allow-list for these names is already in force (``tasks.engine``'s, which rebuilds the objects)."""
    if not scoped_allowlists() or _allowed_names() & set(TRAINING_CHECKPOINT_GLOBALS):
        yield
        return
    with torch.serialization.safe_globals([(_Skipped, name) for name in TRAINING_CHECKPOINT_GLOBALS]):
        yield


def _allowed_names() -> set[str]:
    """The names the allow-lists now in force give torch's weights-only unpickler."""
    return {e[1] if isinstance(e, tuple) else f'{e.__module__}.{e.__qualname__}'
            for e in torch.serialization.get_safe_globals()}


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
