"""Command-line pieces the subcommands of ``tools/benchmark.py`` share: progress lines on stderr, the device and
machine record, the JSON envelope, checked argparse types and the common measurement options.

Each benchmark body and its report live beside what they measure (``backbone/bench.py``, ``backbone/bench_pretrain.py``,
``feature_store/bench*.py``); the tool only wires these options to them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .bench import machine_info

__all__ = ['COMMON_OPTIONS', 'add_clip_options', 'checked_type', 'common_parser', 'envelope', 'existing_file', 'log',
           'non_negative_int', 'positive_float', 'positive_int', 'prepare', 'warn_if_busy']

_START = time.perf_counter()


def log(message: str) -> None:
    """Progress line on stderr, stamped with the seconds since start, so stdout carries only the results."""
    print(f'[{time.perf_counter() - _START:7.1f}s] {message}', file=sys.stderr, flush=True)


def prepare(device_name: str) -> tuple[torch.device, dict[str, Any]]:
    """The ``torch.device`` (a clear error when the accelerator is not there) and the machine record, with a warning
    when the machine is already busy. Called after ``--threads`` is applied, so the record and the warning see it."""
    device = torch.device(device_name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit(f'--device {device_name}: CUDA is not available on this machine (torch {torch.__version__})')
    machine = machine_info(device)
    warn_if_busy(machine)
    return device, machine


def warn_if_busy(machine: dict[str, Any]) -> None:
    """Warn when other processes already occupy cores our threads need (the load average counts runnable tasks):
    on an oversubscribed CPU, OpenMP threads wait for each other at every barrier and timings become meaningless."""
    load, cores, threads = machine.get('loadavg_1m_at_start'), machine['cpu_count'], machine['torch_threads']
    if load is not None and cores and load + threads > cores + 0.5:
        hint = ' (consider a smaller --threads)' if threads > 1 else ''
        log(f'warning: load average {load:.1f} on {cores} cores before starting; with {threads} torch threads '
            f'the cores are oversubscribed and timings will be noisy{hint}')


def envelope(command: str, machine: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The JSON payload of one command: which command, when, on what machine (with the load at the end), then
    ``body``."""
    if hasattr(os, 'getloadavg'):
        machine['loadavg_1m_at_end'] = round(os.getloadavg()[0], 2)
    return {'command': command, 'created': datetime.now(timezone.utc).isoformat(timespec='seconds'),
            'machine': machine, **body}


def checked_type(convert: Callable[[str], Any], test: Callable[[Any], bool], message: str) -> Callable[[str], Any]:
    """An argparse ``type``: ``convert(text)``, refused with ``message`` (``{}``: the text) unless ``test`` holds."""
    def parse(text: str) -> Any:
        value = convert(text)
        if not test(value):
            raise argparse.ArgumentTypeError(message.format(text))
        return value
    parse.__name__ = convert.__name__  # argparse names it in "invalid int value: 'x'"
    return parse


positive_int = checked_type(int, lambda v: v >= 1, 'must be >= 1, got {}')
non_negative_int = checked_type(int, lambda v: v >= 0, 'must be >= 0, got {}')
positive_float = checked_type(float, lambda v: v > 0, 'must be > 0, got {}')
existing_file = checked_type(str, lambda v: Path(v).is_file(), 'no such file: {}')

#: Options :func:`common_parser` can add; each subcommand takes the ones that mean something to it.
COMMON_OPTIONS = ('warmup', 'repeats', 'threads', 'device', 'peak_size', 'seed', 'json')


def common_parser(include: Sequence[str] = COMMON_OPTIONS, helps: dict[str, str] | None = None,
                  **defaults: Any) -> argparse.ArgumentParser:
    """Options the subcommands share, added to a subparser as a parent (so they go after the command name).

    A fresh parent per subcommand: argparse shares a parent's action objects with every child, so a default set on one
    subcommand would otherwise leak into the others.

    Args:
        include: which of :data:`COMMON_OPTIONS` to add (an option a command would ignore is left out rather than
            silently accepted).
        helps: help text replacing the generic one, per option name.
        **defaults: default per option name (``warmup=1``, ``threads=1`` ...).
    """
    unknown = (set(include) | set(helps or {}) | set(defaults)) - set(COMMON_OPTIONS)
    if unknown:
        raise ValueError(f'unknown common options {sorted(unknown)}; known: {COMMON_OPTIONS}')
    helps = {
        'warmup': 'untimed runs of each implementation before timing',
        'repeats': 'timed runs of each implementation, interleaved',
        'threads': f'torch intra-op threads (torch default: {torch.get_num_threads()} here)',
        'device': "'cpu' or 'cuda[:N]'",
        'peak_size': 'side of the square matmul that measures the machine peak (default: 2048 on CPU, 8192 on GPU)',
        'seed': 'seed for weights and inputs',
        'json': 'also write the results as JSON to PATH',
    } | (helps or {})
    defaults = {'warmup': 2, 'repeats': 5, 'threads': None, 'device': 'cpu', 'peak_size': None, 'seed': 0,
                'json': None} | defaults
    types = {'warmup': non_negative_int, 'repeats': positive_int, 'threads': positive_int,
             'peak_size': positive_int, 'seed': int}
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group('measurement')
    for name in (n for n in COMMON_OPTIONS if n in include):
        shown = '' if defaults[name] is None else ' (default: %(default)s)'
        group.add_argument('--' + name.replace('_', '-'), type=types.get(name, str), default=defaults[name],
                           metavar='PATH' if name == 'json' else None, help=helps[name].replace('%', '%%') + shown)
    return parser


def add_clip_options(parser: argparse.ArgumentParser, presets: Sequence[str], arch: str, arch_help: str,
                     batch_help: str) -> None:
    """``--arch``, ``--batch``, ``--frames``, ``--img-size`` of the commands that run a model on random clips."""
    parser.add_argument('--arch', default=arch, choices=sorted(presets), help=arch_help + ' (default: %(default)s)')
    parser.add_argument('--batch', type=positive_int, default=1, help=batch_help + ' (default: %(default)s)')
    parser.add_argument('--frames', type=positive_int, default=16, help='frames per clip (default: %(default)s)')
    parser.add_argument('--img-size', type=positive_int, default=224, help='frame side in px (default: %(default)s)')
