"""What the tests of ``tools/benchmark.py`` share: the tool loaded as a module, an in-process run that returns the JSON
it wrote, and the printed tables parsed back."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def load_tool():
    """``tools/benchmark.py`` as a module: tools/ is a folder of scripts, not a package (registered in
    ``sys.modules`` so dataclasses resolve)."""
    spec = importlib.util.spec_from_file_location('benchmark_tool', ROOT / 'tools' / 'benchmark.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_tool(tool, argv: list[str], json_path: Path) -> tuple[dict, str]:
    """``benchmark.py ARGV --json JSON_PATH`` in-process: (the JSON written, stdout)."""
    threads = torch.get_num_threads()
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
            code = tool.main([*argv, '--json', str(json_path)])
    finally:
        torch.set_num_threads(threads)  # --threads is process-wide; do not leak it into other tests
    assert code == 0
    assert temporary_files(json_path.parent) == []
    return json.loads(json_path.read_text()), stdout.getvalue()


def temporary_files(folder: Path) -> list[str]:
    """Names an interrupted atomic write would leave behind (``tasks.data.files`` writes ``.NAME.XXXX.tmp.SUFFIX``)."""
    return [p.name for p in folder.iterdir() if '.tmp' in p.name]


def parse_table(stdout: str, first_header: str) -> tuple[str, list[list[str]]]:
    """(header line, body lines split on two or more spaces) of the table whose header starts with FIRST_HEADER."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first_header))
    assert set(lines[start + 1]) <= {'-', ' '}
    body = []
    for line in lines[start + 2:]:
        cells = [c for c in line.split('  ') if c.strip()]
        if len(cells) < 2:
            break
        body.append([c.strip() for c in cells])
    return lines[start], body
