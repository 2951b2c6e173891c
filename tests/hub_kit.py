"""An offline Hugging Face hub cache for tests that resolve released checkpoint names: files laid out as
``huggingface_hub`` caches them, the hub switched offline, and any socket connection failing the test."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

REVISION = '0123456789abcdef0123456789abcdef01234567'  # a commit hash, as refs/main holds


def offline_hub(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``huggingface_hub`` at ``cache`` (created), offline; any socket connection raises AssertionError."""
    constants = pytest.importorskip('huggingface_hub.constants', reason='huggingface_hub resolves released names')
    cache.mkdir(parents=True, exist_ok=True)
    # huggingface_hub reads HF_HUB_OFFLINE / HF_HUB_CACHE when imported, so set its constants as well as the env.
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('HF_HUB_CACHE', str(cache))
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(cache))

    def refuse(*args, **kwargs):
        raise AssertionError(f'network access attempted: {args[1:] or kwargs}')
    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)
    return cache


def snapshot_dir(cache: Path, repo_id: str) -> Path:
    """The snapshot folder of ``repo_id`` at :data:`REVISION`, with ``refs/main`` naming it."""
    repo = cache / f'models--{repo_id.replace("/", "--")}'
    (repo / 'refs').mkdir(parents=True, exist_ok=True)
    (repo / 'refs' / 'main').write_text(REVISION)
    return repo / 'snapshots' / REVISION
