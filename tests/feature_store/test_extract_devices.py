"""Extraction on more than one kind of device and process: the device type and TF32 in the provenance rule, rank 0
checking that the merged store holds every rank's videos, features kept on the device until a video ends, decoding
workers sized to the machine on CUDA.

There is no GPU here: a store "made on a GPU" is a CPU store whose recorded device and TF32 are rewritten by hand, a
node-local disk is a rank whose shard goes to another folder, and the CUDA settings are read from torch's flags, which
exist without a GPU.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import feature_store.extract.run as run
from backbone.precision import cuda_tf32_settings
from feature_store import FeatureStore, FeatureStoreError, ProvenanceDifference, merge_stores
from feature_store.extract import (ExtractConfig, ExtractError, Preprocess, build_model, extract_video_features, main,
                                   sample_windows)
from feature_store.extract.cli import build_parser, config_from_args
from feature_store.extract.decode import default_num_workers
from feature_store.extract.provenance import make_store_info
from tasks.data.video import VideoReader
from tests.feature_store.extract_kit import FRAMES, TINY, leftovers, num_windows, stores_equal
from tests.torchrun_kit import run_torchrun

pytestmark = pytest.mark.usefixtures('one_thread')  # tiny tensors: one intra-op thread (tests/conftest.py)

CPU = [*TINY, '--device', 'cpu']
RUN = ExtractConfig(arch='vit_test', clip_len=4, stride=2, preprocess=Preprocess('squash', (32, 32)))


def rewrite_config(path: Path, **changes) -> None:
    """Rewrite entries of a store's ``config`` file attribute (None: delete the entry), as a store made elsewhere."""
    with h5py.File(path, 'r+') as f:
        config = json.loads(f.attrs['config'])
        for key, value in changes.items():
            if value is None:
                config.pop(key)
            else:
                config[key] = value
        f.attrs['config'] = json.dumps(config, sort_keys=True)


# ---------------------------------------------------------------------------------------------------------------------
# the device type and TF32 in the provenance rule
# ---------------------------------------------------------------------------------------------------------------------
def test_a_store_made_on_a_gpu_is_neither_appended_to_nor_merged_on_the_cpu(videos, reference, tmp_path, capsys):
    listed = tmp_path / 'a.txt'
    listed.write_text(f'{videos / "vid_a.mp4"}\n')
    gpu = tmp_path / 'gpu.h5'
    assert main([str(listed), '--out', str(gpu), *CPU]) == 0
    rewrite_config(gpu, device_type='cuda', tf32_matmul=False, tf32_conv=True)  # torch's defaults on CUDA
    before = gpu.read_bytes()
    capsys.readouterr()
    assert main([str(videos), '--out', str(gpu), *CPU]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'extract_features: error: {gpu} was made with different settings, refusing to append')
    for named in ("config.device_type: 'cuda' (stored) vs 'cpu' (this run)",
                  'config.tf32_conv: True (stored) vs None (this run)',
                  'config.tf32_matmul: False (stored) vs None (this run)',
                  'run with --device cuda and its TF32 setting', 'write to another file'):
        assert named in err, (named, err)
    assert gpu.read_bytes() == before and leftovers(gpu) == []
    # merging (tools/merge_features.py) asks the same rule
    with pytest.raises(FeatureStoreError, match=r"config\.device_type: 'cpu' \(ref\.h5\) vs 'cuda' \(gpu\.h5\)"):
        merge_stores([reference, gpu], tmp_path / 'merged.h5')
    assert not (tmp_path / 'merged.h5').exists()


def test_tf32_is_compared_on_cuda_and_does_not_apply_on_the_cpu():
    def info(device):
        return make_store_info(RUN, 'random-init:0', device)

    with cuda_tf32_settings(matmul=False, conv=True):  # torch's defaults
        cuda, cpu = info('cuda'), info('cpu')
    with cuda_tf32_settings(matmul=True, conv=True):  # e.g. torch.set_float32_matmul_precision('high')
        cuda_tf32_on, cpu_tf32 = info('cuda'), info('cpu')
    assert (cuda.config['tf32_matmul'], cuda.config['tf32_conv']) == (False, True)
    assert cuda_tf32_on.config['tf32_matmul'] is True
    assert cuda.differences(cuda_tf32_on) == [ProvenanceDifference('config.tf32_matmul', False, True)]
    assert cpu.differences(cpu_tf32) == [] and cpu.config['tf32_matmul'] is None
    assert cpu.differences(cuda) == [ProvenanceDifference('config.device_type', 'cpu', 'cuda'),
                                     ProvenanceDifference('config.tf32_conv', None, True),
                                     ProvenanceDifference('config.tf32_matmul', None, False)]
    with cuda_tf32_settings(matmul=False, conv=True):  # another GPU of the same kind is the same provenance
        assert cuda.differences(info('cuda:1')) == []


def test_stores_written_before_tf32_was_recorded(videos, reference, tmp_path, capsys):
    """A store without the TF32 entries counts as None: still appendable on the CPU, refused by a CUDA run."""
    def old(info):
        del info.config['tf32_matmul'], info.config['tf32_conv']
        return info

    cpu, cuda = make_store_info(RUN, 'random-init:0', 'cpu'), make_store_info(RUN, 'random-init:0', 'cuda')
    assert old(make_store_info(RUN, 'random-init:0', 'cpu')).differences(cpu) == []
    assert cpu.differences(old(make_store_info(RUN, 'random-init:0', 'cpu'))) == []
    assert [d.field for d in old(make_store_info(RUN, 'random-init:0', 'cuda')).differences(cuda)] == [
        'config.tf32_conv', 'config.tf32_matmul']
    # an older CPU store, appended to on the CPU: the result is the store of one run over all videos
    listed = tmp_path / 'a.txt'
    listed.write_text(f'{videos / "vid_a.mp4"}\n')
    out = tmp_path / 'out.h5'
    assert main([str(listed), '--out', str(out), *CPU]) == 0
    rewrite_config(out, tf32_matmul=None, tf32_conv=None)
    with FeatureStore.open(out) as store:
        assert 'tf32_matmul' not in store.info.config
    assert main([str(videos), '--out', str(out), *CPU]) == 0
    assert 'out.h5: 2 videos extracted' in capsys.readouterr().err
    stores_equal(out, reference)


# ---------------------------------------------------------------------------------------------------------------------
# rank 0 checks that the merged store holds every rank's videos
# ---------------------------------------------------------------------------------------------------------------------
def test_check_merged_ids_names_the_missing_videos_by_rank(tmp_path):
    out = tmp_path / 'out.h5'
    run.check_merged_ids({'a', 'b', 'c'}, [['a'], ['b', 'c'], []], out)
    run.check_merged_ids({'a', 'b', 'c', 'old'}, [['a', 'c'], ['b']], out)  # the merge may hold more (a base store)
    many = [f'v{i}' for i in range(7)]
    with pytest.raises(ExtractError) as e:
        run.check_merged_ids({'a', 'b'}, [['a'], ['b'], ['c', *many]], out)
    message = str(e.value)
    assert 'rank 2 (out.h5.rank2): 8 videos, c, v0, v1, v2, v3, ...' in message
    assert 'rank 0 (' not in message and 'rank 1 (' not in message
    assert f'in {tmp_path}' in message and 'not on a file system shared by every rank' in message
    assert 'The store was not written' in message


NODE_LOCAL_DRIVER = '''
"""The extraction CLI where rank 1 keeps its part files and shard in another folder (argv[1]): a node-local disk."""
import os, sys
from pathlib import Path
import feature_store.extract.run as run
from feature_store.extract import main

if os.environ['RANK'] == '1':
    local = Path(sys.argv[1])
    run._shard_path = lambda out, rank: local / f'{out.name}.rank{rank}'
    run._parts_dir = lambda out, rank: local / f'{out.name}.rank{rank}.parts'
sys.exit(main(sys.argv[2:]))
'''


def test_torchrun_with_a_shard_rank_0_cannot_see_fails_and_keeps_the_shards(videos, reference, tmp_path):
    driver, local, out = tmp_path / 'driver.py', tmp_path / 'node1', tmp_path / 'out.h5'
    driver.write_text(NODE_LOCAL_DRIVER)
    proc = run_torchrun(driver, [local, videos, '--out', out, *CPU], check=False)
    # every rank stops with status 2 (torchrun itself then reports 1), naming rank 1's video (sorted index 1)
    assert proc.returncode != 0, proc.stderr[-3000:]
    assert proc.stderr.count('extract_features: error: rank 0 cannot see the videos of other ranks') == 2, \
        proc.stderr[-3000:]
    assert 'rank 1 (out.h5.rank1): 1 videos, vid_b' in proc.stderr
    assert 'exitcode  : 2' in proc.stderr
    # no store that looks complete; the finished shards stay, and a rerun that sees them extracts nothing
    assert not out.exists()
    assert leftovers(out) == ['out.h5.rank0'] and sorted(p.name for p in local.iterdir()) == ['out.h5.rank1']
    shutil.move(local / 'out.h5.rank1', tmp_path / 'out.h5.rank1')
    assert main([str(videos), '--out', str(out), *CPU]) == 0
    stores_equal(out, reference, exact=False)  # to 1e-6: features computed in other processes
    assert leftovers(out) == []


# ---------------------------------------------------------------------------------------------------------------------
# speed on a GPU: one copy per video, decoding workers sized to the machine
# ---------------------------------------------------------------------------------------------------------------------
def test_features_stay_on_the_device_until_the_video_ends(videos, tmp_path, monkeypatch):
    batches, copies = [], []
    forward, to_cpu = run.forward_clips, torch.Tensor.cpu

    def counted_forward(*args, **kwargs):
        batches.append(forward(*args, **kwargs))
        return batches[-1]

    def counted_cpu(self, *args, **kwargs):
        if any(self is b for b in batches):
            copies.append(tuple(self.shape))
        return to_cpu(self, *args, **kwargs)

    monkeypatch.setattr(run, 'forward_clips', counted_forward)
    monkeypatch.setattr(torch.Tensor, 'cpu', counted_cpu)
    out = tmp_path / 'out.h5'
    assert main([str(videos), '--out', str(out), *CPU]) == 0
    assert len(batches) == sum(math.ceil(num_windows(n, 4, 2) / 4) for n in FRAMES.values())  # batch size 4
    assert copies == []  # no batch was copied to the host on its own
    # the rows are those of the functions the tool chains, run here one video at a time
    model = build_model('vit_test', img_size=32, frames=4, seed=0)
    with FeatureStore.open(out) as store:
        for vid in FRAMES:
            with VideoReader(videos / f'{vid}.mp4') as reader:
                online = extract_video_features(model, reader, sample_windows(reader, 4, 1, 2),
                                                Preprocess('squash', (32, 32)), batch_size=4)
            np.testing.assert_array_equal(store.read(vid)[0], online.numpy(), err_msg=vid)


def test_decoding_workers_are_sized_to_the_machine_on_cuda(monkeypatch):
    import feature_store.extract.decode as decode

    assert config_from_args(build_parser().parse_args(['v', '--out', 'o.h5', '--random-init'])).num_workers is None
    assert config_from_args(build_parser().parse_args(['v', '--out', 'o.h5', '--random-init', '--num-workers',
                                                       '3'])).num_workers == 3
    monkeypatch.delenv('LOCAL_WORLD_SIZE', raising=False)
    for cores, ranks, cpu, cuda in [(2, None, 2, 1), (16, None, 2, 8), (6, None, 2, 5), (64, '8', 2, 7),
                                    (16, '8', 2, 1)]:
        monkeypatch.setattr(decode, 'num_cpus', lambda: cores)
        if ranks is not None:
            monkeypatch.setenv('LOCAL_WORLD_SIZE', ranks)
        assert default_num_workers(torch.device('cpu')) == cpu
        assert default_num_workers(torch.device('cuda', 0)) == cuda, (cores, ranks)
