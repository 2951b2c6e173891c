"""Training checkpoints under ``tasks.engine.mmengine_checkpoint_globals``: what mmengine writes (message hub,
numpy histories and scalars) comes back as real objects through mmengine's own loader (resume, load_from) and
``load_trusted_checkpoint``; code, a general ``getattr`` and numpy states that no numpy writes are refused before
anything runs; and the block refuses to start where ``torch.load`` would unpickle anything."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import CheckpointLoader

from backbone import CheckpointError
from tasks.engine import load_trusted_checkpoint, mmengine_checkpoint_globals

REPO = Path(__file__).resolve().parents[2]
SYSTEM = f'{os.system.__module__}.system'


class Call:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def training_checkpoint(path: Path, **extra) -> MessageHub:
    """What tools/train.py saves: weights, meta with numpy scalars, and a message hub of HistoryBuffers."""
    hub = MessageHub(f'hub-{path.stem}')
    for loss in (0.5, np.float32(0.25), 0.125):
        hub.update_scalar('train/loss', loss)
    hub.update_scalar('train/lr', torch.tensor(0.1))
    hub.update_info('iter', 3)
    hub.update_info('seed', np.int64(4))
    torch.save({'state_dict': {'w': torch.arange(3.0)}, 'meta': {'epoch': 3, 'seed': np.int64(0)},
                'message_hub': hub.state_dict(), 'empty': HistoryBuffer(), **extra}, path)
    return hub


def test_mmengines_own_loader_resumes_real_objects_only_inside_the_block(tmp_path):
    path = tmp_path / 'epoch_3.pth'
    hub = training_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError, match='Unsupported global'):  # torch >= 2.6 alone refuses them
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    with mmengine_checkpoint_globals():  # what resume and load_from call, as tools/train.py runs them
        load_trusted_checkpoint(path)  # a nested block leaves the outer one in force
        ckpt = CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    resumed = MessageHub('resumed')
    resumed.load_state_dict(ckpt['message_hub'])
    for key, expected in hub.log_scalars.items():
        got = resumed.get_scalar(key)
        assert type(got) is HistoryBuffer
        np.testing.assert_array_equal(got.data[0], expected.data[0])
        assert got.data[0].dtype == expected.data[0].dtype
        assert got.mean() == expected.mean() and got.current() == expected.current()
    assert resumed.get_info('seed') == 4 and type(resumed.get_info('seed')) is np.int64
    assert ckpt['meta'] == {'epoch': 3, 'seed': 0} and type(ckpt['meta']['seed']) is np.int64
    assert type(ckpt['empty']) is HistoryBuffer and ckpt['empty'].data[0].size == 0
    torch.testing.assert_close(load_trusted_checkpoint(path)['state_dict']['w'], torch.arange(3.0))


@pytest.mark.parametrize('payload, named', [
    (Call(os.system, 'touch {marker}'), SYSTEM),
    (Call(eval, "open('{marker}', 'w')"), 'eval'),  # torch names builtins without their module
    (Call(np.save, '{marker}', np.zeros(1)), 'numpy.save'),
], ids=['os.system', 'eval', 'numpy.save'])
def test_code_in_a_training_checkpoint_is_refused_before_it_runs(tmp_path, payload, named):
    marker, path = tmp_path / 'ran', tmp_path / 'epoch_3.pth'
    payload.args = tuple(a.format(marker=marker) if isinstance(a, str) else a for a in payload.args)
    training_checkpoint(path, message_hub_extra=[payload])
    with pytest.raises(CheckpointError, match=rf'{path}: .*refused the file: .*{named}'):
        load_trusted_checkpoint(path)
    with mmengine_checkpoint_globals(), pytest.raises(pickle.UnpicklingError, match=named):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()


def test_getattr_reaches_only_the_statistics_methods_of_history_buffer(tmp_path):
    """mmengine pickles HistoryBuffer.mean as getattr(HistoryBuffer, 'mean'), and later calls what it finds there;
    a general getattr would let a file fetch any attribute, e.g. the builtins module as getattr.__self__."""
    path = tmp_path / 'epoch_3.pth'
    training_checkpoint(path, statistics=[Call(getattr, HistoryBuffer, 'max')])
    assert load_trusted_checkpoint(path)['statistics'] == [HistoryBuffer.max]
    for owner, name in ((getattr, '__self__'), (HistoryBuffer, '__init__'), (HistoryBuffer, 'register_statistics'),
                        (HistoryBuffer, '_statistics_methods')):
        training_checkpoint(path, escape=Call(getattr, owner, name))
        with pytest.raises(CheckpointError, match=rf"getattr\(.*'{name}'\): a training checkpoint may only name"):
            load_trusted_checkpoint(path)


def test_numpy_states_no_numpy_writes_are_refused_without_crashing(tmp_path):
    """A dtype whose pickled state claims an object field, filled with raw bytes: numpy's own __setstate__ accepts
    it and the array then holds wild object pointers (a segfault when freed). Loaded in a child process so that a
    crash fails this test instead of killing pytest."""
    reconstruct = np.empty(0).__reduce__()[0]

    class DType:
        def __reduce__(self):
            return np.dtype, ('V8', False, True), (3, '|', None, ('a',), {'a': (np.dtype('O'), 0)}, 8, 1, 1)

    class Array:
        def __reduce__(self):
            return reconstruct, (np.ndarray, (0,), b'b'), (1, (1,), DType(), False, b'A' * 8)

    path = tmp_path / 'epoch_3.pth'
    training_checkpoint(path, history=Array())
    script = textwrap.dedent(f'''
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from backbone import CheckpointError
        from tasks.engine import load_trusted_checkpoint
        try:
            load_trusted_checkpoint({str(path)!r})
            print('read')
        except CheckpointError as e:
            print('refused:', e)
    ''')
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f'loading crashed (exit {done.returncode}): {done.stderr[-2000:]}'
    assert done.stdout.startswith(f'refused: {path}: torch.load(weights_only=True) refused the file: it holds an '
                                  "object the allow-list refuses (numpy.dtype('V8'): dtype |V8 is not a plain numeric "
                                  'dtype'), done.stdout


def test_the_block_refuses_torch_that_unpickles_anything(monkeypatch):
    import tasks.engine.checkpoint as engine_checkpoint

    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(CheckpointError, match='TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set'):
        with mmengine_checkpoint_globals():
            pass
    monkeypatch.delenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD')
    monkeypatch.setattr(engine_checkpoint, 'scoped_allowlists', lambda: False)  # what torch < 2.6 reports
    with pytest.raises(CheckpointError, match=r'unpickles any object .* needs torch >= 2\.6'):
        with mmengine_checkpoint_globals():
            pass
