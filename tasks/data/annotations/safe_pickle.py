"""Unpickling without running code: the restricted reader of the pickles the suite reads as data (AVA person
proposals), and the checked numpy rebuilders it shares with the training-checkpoint allow-list
(docs/security.md#pickles).

A pickle names the functions that rebuild its objects, and ``pickle.load`` calls them: a file can name ``os.system``.
:class:`RestrictedUnpickler` resolves a name only from a fixed table (numpy arrays and scalars of numbers, their
dtypes, the bytes helpers of protocols 0-2, ``OrderedDict``) and calls nothing else. The table holds checked
stand-ins, not numpy's own functions: numpy's ``dtype.__setstate__`` and ``ndarray.__setstate__`` accept states no
numpy writes (a float dtype claiming object fields, then raw bytes read as object pointers), which crash the
interpreter or worse (docs/security.md#numpy-inside-pickles). Everything else is refused, before it is called, with
:class:`UnsafePickleError` naming the ``module.name``.
"""
from __future__ import annotations

import io
import math
import pickle
import struct
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from .common import AnnotationError, PathLike

__all__ = ['NDARRAY', 'NUMERIC_KINDS', 'RestrictedUnpickler', 'UnsafePickleError', 'check_numeric_dtype',
           'interned_numpy_dtype', 'load_restricted_pickle', 'numpy_frombuffer', 'numpy_pickle_globals',
           'numpy_reconstruct', 'numpy_scalar']

#: dtype kinds that can be rebuilt: bool, signed and unsigned integers, floats, complex. No object, string, void,
#: structured or datetime dtypes: their pickled states are where numpy's own checks fall short.
NUMERIC_KINDS = 'biufc'


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle that names something the restricted reader does not build, or a numpy state no numpy writes."""


class _NdarrayName:
    """What the name ``numpy.ndarray`` resolves to: only :func:`numpy_reconstruct` takes it, as the array class it
    rebuilds, so the class itself (whose constructor takes a buffer, offsets and strides) is never callable."""

    def __repr__(self) -> str:
        return 'numpy.ndarray'


NDARRAY = _NdarrayName()


def check_numeric_dtype(dtype: object, where: str = '') -> np.dtype:
    """``dtype`` if it is a plain numeric numpy dtype (kind in :data:`NUMERIC_KINDS`, no fields, no sub-array, the
    flags numpy gives such a dtype), else :class:`UnsafePickleError` (its message starts with ``where``)."""
    if not isinstance(dtype, np.dtype):
        raise UnsafePickleError(f'{where}a {type(dtype).__name__} where numpy writes a dtype')
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None or dtype.flags:
        raise UnsafePickleError(f'{where}dtype {dtype} is not a plain numeric dtype (only bool, integer, float and '
                                'complex arrays are read)')
    return dtype


def _numeric_dtype_from_spec(spec: object) -> np.dtype:
    if type(spec) is not str:
        raise UnsafePickleError(f'numpy.dtype({spec!r}): the dtype must be given by a string such as "f4"')
    try:
        dtype = np.dtype(spec)
    except (TypeError, ValueError) as e:
        raise UnsafePickleError(f'numpy.dtype({spec!r}): {e}') from None
    return check_numeric_dtype(dtype, f'numpy.dtype({spec!r}): ')


def _numpy_dtype(spec: object, align: object = False, copy: object = False) -> np.dtype:
    """``numpy.dtype`` for :class:`RestrictedUnpickler`: a fresh numeric dtype, whose pickled state (byte order)
    :meth:`RestrictedUnpickler.load_build` checks before numpy applies it."""
    _numeric_dtype_from_spec(spec)
    return np.dtype(spec, bool(align), True)


def interned_numpy_dtype(spec: object, align: object = False, copy: object = False) -> np.dtype:
    """``numpy.dtype`` for unpicklers that cannot check a ``BUILD`` (torch's weights-only one): numpy's shared
    instance of the dtype. numpy ignores ``__setstate__`` on those (``fields`` is None: descriptor.c,
    ``arraydescr_setstate``), so no pickled state can alter them; a byte order other than the native one, which
    only that state carries, is therefore not applied."""
    dtype = _numeric_dtype_from_spec(spec)
    if dtype is not np.dtype(dtype.type):  # e.g. '>f8' names a new instance that a state could alter
        raise UnsafePickleError(f'numpy.dtype({spec!r}) is not one of numpy\'s shared dtypes (numpy writes "f8")')
    return dtype


def _shape(value: object, what: str) -> tuple[int, ...]:
    if type(value) is not tuple or not all(type(n) is int and n >= 0 for n in value):
        raise UnsafePickleError(f'{what}: shape {value!r} is not a tuple of non-negative integers')
    return value


def numpy_reconstruct(cls: object, shape: object, typecode: object) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct`` (numpy 1.x) / ``numpy._core.multiarray._reconstruct`` (2.x): the
    empty ``int8`` array that the pickle's ``BUILD`` then fills, for exactly the arguments numpy writes."""
    if cls is not NDARRAY or shape != (0,) or type(shape) is not tuple or typecode not in (b'b', 'b'):
        raise UnsafePickleError(f'_reconstruct({cls!r}, {shape!r}, {typecode!r}): numpy writes '
                                "_reconstruct(numpy.ndarray, (0,), b'b')")
    return np.empty(0, np.int8)


def numpy_scalar(dtype: object, data: object) -> np.generic:
    """``numpy.(_)core.multiarray.scalar``: one numeric scalar from its bytes."""
    dtype = check_numeric_dtype(dtype, 'scalar: ')
    if type(data) is not bytes or len(data) != dtype.itemsize:
        raise UnsafePickleError(f'scalar of {dtype}: expected {dtype.itemsize} bytes, got {type(data).__name__}')
    return np.frombuffer(data, dtype)[0]


def numpy_frombuffer(buf: object, dtype: object, shape: object, order: object,
                     axis_order: object = None) -> np.ndarray:
    """``numpy.(_)core.numeric._frombuffer``: an array written with pickle protocol 5."""
    dtype = check_numeric_dtype(dtype, '_frombuffer: ')
    shape = _shape(shape, '_frombuffer')
    if type(buf) not in (bytes, bytearray) or len(buf) != math.prod(shape) * dtype.itemsize:
        raise UnsafePickleError(f'_frombuffer: {type(buf).__name__} of the wrong size for {shape} x {dtype}')
    array = np.frombuffer(buf, dtype)
    if order == 'K' and axis_order is not None:  # numpy's own rule: the axis order applies to 'K' only
        if type(axis_order) is not tuple or sorted(axis_order) != list(range(len(shape))):
            raise UnsafePickleError(f'_frombuffer: axis order {axis_order!r} is not a permutation of the axes')
        return array.reshape(shape, order='C').transpose(axis_order)
    if order not in ('C', 'F'):
        raise UnsafePickleError(f'_frombuffer: order {order!r}')
    return array.reshape(shape, order=order)


def _latin1_encode(text: object, encoding: object = 'utf-8') -> bytes:
    """``_codecs.encode``, as protocols 0-2 write a ``bytes`` object: ``encode(text, 'latin1')`` and nothing else
    (another codec name would import an ``encodings`` module)."""
    if type(text) is not str or encoding != 'latin1':
        raise UnsafePickleError(f'_codecs.encode with {type(text).__name__}, {encoding!r}: only (str, "latin1")')
    return text.encode('latin1')


def _empty_bytes() -> bytes:
    """``bytes()``, as protocols 0-2 write ``b''`` (no argument: ``bytes(n)`` would allocate n bytes)."""
    return b''


def numpy_pickle_globals(*, interned_dtypes: bool = False) -> dict[str, Callable]:
    """``'module.name'`` -> stand-in, for every name numpy 1.x and 2.x pickles use for arrays and scalars of
    numbers with protocols 0-5, plus the ``bytes`` helpers of protocols 0-2."""
    table: dict[str, Callable] = {
        'numpy.dtype': interned_numpy_dtype if interned_dtypes else _numpy_dtype,
        '_codecs.encode': _latin1_encode, '__builtin__.bytes': _empty_bytes, 'builtins.bytes': _empty_bytes,
    }
    for core in ('numpy.core', 'numpy._core'):  # numpy 1.x writes numpy.core, numpy 2.x numpy._core
        table[f'{core}.multiarray._reconstruct'] = numpy_reconstruct
        table[f'{core}.multiarray.scalar'] = numpy_scalar
        table[f'{core}.numeric._frombuffer'] = numpy_frombuffer
    return table


def _check_dtype_state(dtype: np.dtype, state: object) -> None:
    # The state numpy writes for a numeric dtype: (3, byte order, no sub-array, no names, no fields, -1, -1, flags 0).
    if (type(state) is not tuple or len(state) != 8 or state[0] != 3 or state[1] not in ('<', '>', '|', '=')
            or state[2:] != (None, None, None, -1, -1, 0)):
        raise UnsafePickleError(f'dtype {dtype} with the state {state!r}, which numpy does not write for it')


def _check_array_state(state: object) -> None:
    # (version 1, shape, dtype, Fortran order, raw bytes): object arrays (a list instead of bytes) are refused.
    if type(state) is not tuple or len(state) != 5 or state[0] != 1 or type(state[3]) is not bool:
        raise UnsafePickleError(f'array state {str(state)[:80]}, which numpy does not write')
    shape = _shape(state[1], 'array')
    dtype = check_numeric_dtype(state[2], 'array: ')
    if type(state[4]) is not bytes or len(state[4]) != math.prod(shape) * dtype.itemsize:
        raise UnsafePickleError(f'array of {shape} x {dtype}: its data is not {math.prod(shape) * dtype.itemsize} '
                                'bytes')


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that builds plain data only: dict, list, tuple, set, str, bytes, numbers, ``None``,
    ``OrderedDict``, and numpy arrays and scalars of numbers (numpy 1.x and 2.x, protocols 0-5).

    It is the pure-Python unpickler, because only that one lets a subclass check each ``BUILD`` (numpy's
    ``__setstate__``) and ``REDUCE`` (a call) before it happens; the C one resolves names only. Why what it allows
    cannot run code: every callable comes from :func:`numpy_pickle_globals` or is ``set``, ``frozenset`` or
    ``OrderedDict``; every argument is a container, a number, a string or an object those built; a dtype comes only
    from a string naming a number type (numpy parses it, nothing is evaluated); the ``ndarray`` class is never
    callable (:data:`NDARRAY`); ``BUILD`` reaches numpy only for an array or dtype whose state is exactly one that
    numpy writes for numbers, and numpy then checks the data length against shape and dtype; instance creation
    (``NEWOBJ``, ``INST``, ``OBJ``) is refused outright.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: io.BufferedIOBase):
        super().__init__(file)
        # protocols 0-3 write sets as calls of set / frozenset (as __builtin__ before protocol 3)
        containers = {f'{m}.{c.__name__}': c for m in ('builtins', '__builtin__') for c in (set, frozenset)}
        self._globals: dict[str, Any] = {**numpy_pickle_globals(), **containers, 'numpy.ndarray': NDARRAY,
                                         'collections.OrderedDict': OrderedDict}
        self._callables = {id(f) for f in self._globals.values() if f is not NDARRAY}

    def find_class(self, module: str, name: str) -> Any:
        found = self._globals.get(f'{module}.{name}')
        if found is None:
            raise UnsafePickleError(f'{module}.{name} is not allowed: only plain data (dict, list, tuple, str, '
                                    'numbers, numpy arrays of numbers) is read from pickles')
        return found

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if id(func) not in self._callables or type(args) is not tuple:
            raise UnsafePickleError(f'call of {type(func).__name__} {str(func)[:60]!r} is not allowed')
        self.stack[-1] = func(*args)
    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_bytearray8(self) -> None:
        # pickle._Unpickler allocates the announced size before reading: 20 bytes could ask for 16 GB (or 2**62)
        size, = struct.unpack('<Q', self.read(8))
        data = self.read(size)  # at most what the file holds
        if len(data) != size:
            raise UnsafePickleError(f'BYTEARRAY8 announces {size} bytes, the pickle holds {len(data)}')
        self.append(bytearray(data))
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if type(inst) is np.ndarray:
            _check_array_state(state)
        elif isinstance(inst, np.dtype):
            _check_dtype_state(inst, state)
        else:
            raise UnsafePickleError(f'setting the state of a {type(inst).__name__} is not allowed')
        inst.__setstate__(state)
        if isinstance(inst, np.dtype):
            check_numeric_dtype(inst)
    dispatch[pickle.BUILD[0]] = load_build

    def load_inst(self) -> None:
        module, name = (self.readline()[:-1].decode('ascii') for _ in range(2))
        self.find_class(module, name)  # an unknown name is refused as such
        self.refuse_instance()
    dispatch[pickle.INST[0]] = load_inst

    def refuse_instance(self) -> None:
        raise UnsafePickleError('creating class instances (NEWOBJ, INST, OBJ) is not allowed')
    for _opcode in (pickle.NEWOBJ, pickle.NEWOBJ_EX, pickle.OBJ):
        dispatch[_opcode[0]] = refuse_instance
    del _opcode


def load_restricted_pickle(path: PathLike) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`.

    Raises:
        AnnotationError: a missing or unreadable file, a name or state it does not build (naming it; nothing named
            in the file has run), or a truncated or corrupt pickle.
    """
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        raise AnnotationError(path, 'file not found') from None
    except OSError as e:  # a folder, no permission
        raise AnnotationError(path, f'cannot read it ({e.strerror or e})') from None
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError as e:
        raise AnnotationError(path, f'refused to unpickle: {e}') from None
    except Exception as e:  # noqa: BLE001 - a truncated or corrupt pickle fails in many ways (EOFError, KeyError ...)
        raise AnnotationError(path, f'cannot unpickle: {type(e).__name__}: {e}') from None
