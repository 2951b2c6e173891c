"""Released weights by name (backbone/released.py): resolved through a Hugging Face hub cache laid out in tmp_path as
the hub lays it out, offline, with tiny files made here. Nothing may reach the network: sockets are refused.

Before this, ``load_checkpoint(model, 'vit_b_k710_distill')`` failed with "no such checkpoint file" and tools/test.py
refused any checkpoint that was not a file.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from backbone import (RELEASED, ARCH_PRESETS, CheckpointError, ReleasedCheckpoint, filter_checkpoint, load_checkpoint,
                      read_checkpoint, resolve_checkpoint)

from tests.hub_kit import offline_hub, snapshot_dir

REPO = Path(__file__).resolve().parents[2]


def populate(cache: Path, repo_id: str, files: dict[str, object]) -> dict[str, Path]:
    """Lay out ``cache`` as huggingface_hub does: ``models--<owner>--<name>/refs/main`` holding the revision and the
    files under ``snapshots/<revision>/`` (the hub links them to ``blobs/``; plain files read the same)."""
    snapshot = snapshot_dir(cache, repo_id)
    paths = {}
    for filename, payload in files.items():
        path = snapshot / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)
        paths[filename] = path
    return paths


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An offline hub cache in tmp_path; any socket connection fails the test."""
    return offline_hub(tmp_path / 'hub', monkeypatch)


@pytest.fixture
def tiny_entry(monkeypatch):
    """A table entry for a tiny file (a real name would promise a ViT-g the test cannot make)."""
    entry = ReleasedCheckpoint('vit_test_k5_ft', 'OpenGVLab/VideoMAE2', 'tiny/vit_test_k5_ft.pth', 'vit_test', 5, None,
                               'official', 'float16')
    monkeypatch.setitem(RELEASED, entry.name, entry)
    return entry


def tiny_state(tiny_vit, seed: int = 0) -> dict[str, torch.Tensor]:
    model = tiny_vit(num_classes=5)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=gen))
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_released_name_resolves_to_the_cached_file(hub, tiny_vit):
    entry = RELEASED['vit_b_k710_distill']
    paths = populate(hub, entry.repo_id, {entry.filename: {'module': tiny_state(tiny_vit)}})
    assert resolve_checkpoint('vit_b_k710_distill') == paths[entry.filename]
    assert resolve_checkpoint(Path('vit_b_k710_distill')) == paths[entry.filename]


def test_load_checkpoint_by_name(hub, tiny_vit, tiny_entry):
    state = tiny_state(tiny_vit)
    populate(hub, tiny_entry.repo_id, {tiny_entry.filename: {'module': {k: v.half() for k, v in state.items()}}})
    model = tiny_vit(num_classes=5)
    result = load_checkpoint(model, tiny_entry.name)
    assert (result.layout, result.missing, result.unexpected) == ('official', [], [])
    for key, value in model.state_dict().items():  # the fp16 file, cast to the model's fp32
        assert value.dtype == torch.float32 and torch.equal(value, state[key].half().float()), key
    filtered, _ = filter_checkpoint(tiny_entry.name, tiny_vit(num_classes=5), mode='exact')
    assert filtered.keys() == state.keys()
    assert read_checkpoint(tiny_entry.name).keys() == state.keys()


def test_an_existing_path_wins_over_a_name(hub, tiny_vit, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save(tiny_state(tiny_vit), tmp_path / 'vit_b_k710_distill')  # not in the cache: the hub is never asked
    assert resolve_checkpoint('vit_b_k710_distill') == Path('vit_b_k710_distill')
    assert load_checkpoint(tiny_vit(num_classes=5), 'vit_b_k710_distill').missing == []


def test_unknown_names_are_errors_listing_the_known_ones(hub, tiny_vit):
    message = r'vit_b_k400_ft: no such checkpoint file, and not a released checkpoint name \(known names: .*vit_g_k710_ft'
    with pytest.raises(CheckpointError, match=message):
        resolve_checkpoint('vit_b_k400_ft')
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tiny_vit(num_classes=5), 'vit_b_k400_ft')


def test_a_name_not_in_the_offline_cache_says_what_to_do(hub):
    with pytest.raises(CheckpointError, match=r'vit_g_ssv2_ft \(OpenGVLab/VideoMAE2/mae-g/vit_g_hybrid_pt_1200e_ssv2_'
                                              r'ft\.pth\): the Hugging Face hub could not give the file .*HF_HUB_OFFLINE'
                                              r'.*hf download OpenGVLab/VideoMAE2 mae-g/vit_g_hybrid_pt_1200e_ssv2_ft'):
        resolve_checkpoint('vit_g_ssv2_ft')


def test_the_environment_variables_are_honoured(hub, tiny_vit):
    """A fresh process reads HF_HUB_OFFLINE and HF_HUB_CACHE as a user sets them (no network there either: offline
    mode refuses it, and the file is found in the cache)."""
    entry = RELEASED['vit_s_k710_distill']
    paths = populate(hub, entry.repo_id, {entry.filename: {'module': tiny_state(tiny_vit)}})
    script = ('from backbone import resolve_checkpoint, read_checkpoint; '
              "print(resolve_checkpoint('vit_s_k710_distill')); print(len(read_checkpoint('vit_s_k710_distill')))")
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_HUB_CACHE': str(hub), 'PYTHONPATH': str(REPO),
           'OMP_NUM_THREADS': '1'}
    proc = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(paths[entry.filename]), str(len(tiny_state(tiny_vit)))]


def test_tools_test_takes_a_name(monkeypatch, tmp_path):
    """tools/test.py checked `osp.isfile` and refused names; now a name goes on to the loader."""
    spec = importlib.util.spec_from_file_location('test_tool', REPO / 'tools' / 'test.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    calls = []
    monkeypatch.setattr(tool, 'evaluate_checkpoint', lambda config, checkpoint, **kwargs: calls.append(checkpoint))
    tool.main(['config.py', 'vit_g_k710_ft', '--work-dir', str(tmp_path)])
    assert calls == ['vit_g_k710_ft']
    with pytest.raises(SystemExit, match='vit_b_k400_ft does not exist and is not a released checkpoint name'):
        tool.main(['config.py', 'vit_b_k400_ft', '--work-dir', str(tmp_path)])


def test_the_table():
    """Entries are consistent with the presets and with the shipped label sets."""
    from tasks.data.labels import class_names

    assert set(RELEASED) == {'vit_g_hybrid_pt', 'vit_g_k710_ft', 'vit_g_ssv2_ft', 'vit_s_k710_distill',
                             'vit_b_k710_distill', 'vit_l_hybrid_pt', 'vit_h_hybrid_pt'}
    for name, entry in RELEASED.items():
        assert entry.name == name and entry.arch in ARCH_PRESETS and entry.repo_id == 'OpenGVLab/VideoMAE2'
        assert name.startswith(f'vit_{entry.arch.removeprefix("vit_")[0]}_')
        assert (entry.labels is None) == (entry.num_classes == 0)
        if entry.labels:
            assert len(class_names(entry.labels)) == entry.num_classes


def test_convert_a_released_name_to_transformers(hub, tiny_vit, tmp_path, monkeypatch):
    """IN may be a name; its table entry gives config.json its class names (unless --label-map slices the head)."""
    (tmp_path / 'five.txt').write_text('a\nb\nc\nd\ne\n')
    entry = ReleasedCheckpoint('vit_test_k5_ft', 'OpenGVLab/VideoMAE2', 'tiny/vit_test_k5_ft.pth', 'vit_test', 5,
                               str(tmp_path / 'five.txt'), 'official', 'float16')
    monkeypatch.setitem(RELEASED, entry.name, entry)
    populate(hub, entry.repo_id, {entry.filename: {'module': {k: v.half() for k, v in tiny_state(tiny_vit).items()}}})
    spec = importlib.util.spec_from_file_location('convert_tool', REPO / 'tools' / 'convert_checkpoint.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'hf'
    assert tool.main([entry.name, str(out), '--to', 'hf', '--img-size', '32', '--num-frames', '4']) == 0
    config = json.loads((out / 'config.json').read_text())
    assert config['id2label'] == dict(zip('01234', 'abcde')) and config['dtype'] == 'float16'
