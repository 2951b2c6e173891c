"""Every command and code block shown in the READMEs is exercised (issue 9).

README commands rot silently: an option renamed, a config moved, a ``--cfg-options`` key misspelt (mmengine adds an
unknown key without a word, so the run silently ignores it). So:

* every shell command and Python block of every README in the repository is collected (continuation lines joined,
  comments dropped) and must match exactly one entry of ``COVERAGE``, which says how it is exercised: run here as
  written (``HERE``: in a scratch folder on the tiny synthetic benchmark, with only the substitutions listed next to
  it) and/or by the named tests, which run the same tool or config at tiny scale;
* every test named there exists;
* every command that runs one of our tools (or mmaction2's ``tools/test.py``) is parsed by that tool's own argument
  parser; every config it names loads, and every ``--cfg-options`` key it sets is already a key of that config;
* the ``HERE`` commands and blocks run in document order in one scratch folder, and their outputs are checked
  against what is known by construction (a converted checkpoint round-trips, predictions equal to the ground truth
  score mAP 1, a store holds one row per window, ...).
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {'.venv', 'data', 'work_dirs', 'node_modules', 'build', 'dist'}
HERE = 'here'  # in Coverage.tests: the command runs verbatim in test_here_commands_run_as_written


@contextlib.contextmanager
def working_dir(path: Path):
    """contextlib.chdir, which Python 3.10 lacks."""
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


# ---------------------------------------------------------------------------------------------------------------------
# collecting the commands
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snippet:
    doc: str  # README path relative to the repository
    line: int  # first line of the command or block
    kind: str  # 'shell' or 'python'
    text: str  # shell: one command, whitespace collapsed, comments dropped; python: the block

    def __str__(self) -> str:
        return f'{self.doc}:{self.line}: {self.text.splitlines()[0]}'


def readme_paths() -> list[Path]:
    """Every README.md of the repository outside hidden folders and the top-level venv, data and output folders."""
    found = []
    for path in REPO.rglob('README.md'):
        parts = path.relative_to(REPO).parts[:-1]
        if not (parts and parts[0] in SKIP_DIRS) and not any(p.startswith('.') for p in parts):
            found.append(path)
    return sorted(found)


def strip_comment(line: str) -> str:
    """The line without a shell comment: a '#' at the start of a word, outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in '\'"':
            quote = ch
        elif ch == '#' and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def parse_snippets(path: Path) -> list[Snippet]:
    doc = path.relative_to(REPO).as_posix()
    snippets, lines = [], path.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = re.fullmatch(r'```(\w*)\s*', lines[i])
        if not fence:
            i += 1
            continue
        lang, start, i = fence.group(1), i + 1, i + 1
        body = []
        while i < len(lines) and not lines[i].startswith('```'):
            body.append(lines[i])
            i += 1
        assert i < len(lines), f'{doc}:{start}: code block never closed'
        i += 1
        if lang == 'python':
            snippets.append(Snippet(doc, start + 1, 'python', '\n'.join(body) + '\n'))
        elif lang in ('bash', 'sh', 'shell'):
            pending, first = '', 0
            for n, raw in enumerate(body, start=start + 1):
                text = strip_comment(raw)
                if not pending:
                    first = n
                if text.endswith('\\'):
                    pending += text[:-1] + ' '
                    continue
                command = ' '.join((pending + text).split())
                pending = ''
                if command:
                    snippets.append(Snippet(doc, first, 'shell', command))
    return snippets


SNIPPETS = [s for path in readme_paths() for s in parse_snippets(path)]


def test_the_readmes_have_commands():
    """The collector sees what a reader sees (a broken fence parser would make every other test here vacuous)."""
    docs = {s.doc for s in SNIPPETS}
    assert {'README.md', 'configs/README.md', 'configs/pretrain/README.md', 'feature_store/README.md'} <= docs
    main = [s.text for s in SNIPPETS if s.doc == 'README.md']
    assert main[0].startswith('python tools/infer.py ')  # the Quick start comes first
    first = main.index('make demo')
    assert main[first:first + 2] == ['make demo', 'make test']
    # a continuation line is joined and a trailing comment dropped
    assert ('python tools/linear_probe.py work_dirs/feats.h5 work_dirs/feats.h5 --labels '
            'data/synthetic/classification/train_list_videos.txt data/synthetic/classification/val_list_videos.txt'
            in main)
    assert 'python tools/make_synthetic.py --out data/synthetic --preset default --seed 0' in main
    assert sum(s.kind == 'python' for s in SNIPPETS) >= 5


def test_strip_comment_keeps_quoted_hashes():
    assert strip_comment('make demo   # creates .venv') == 'make demo'
    assert strip_comment("python -c 'print(\"#\")'  # x") == "python -c 'print(\"#\")'"
    assert strip_comment('# only a comment') == ''
    assert strip_comment('echo a#b') == 'echo a#b'


# ---------------------------------------------------------------------------------------------------------------------
# how each command is exercised
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Coverage:
    """How the README commands matching ``pattern`` (a regex, full match on the collapsed command or, for Python
    blocks, searched in the block) are exercised."""

    pattern: str
    tests: tuple[str, ...]  # HERE and/or 'tests/test_x.py::test_name'
    substitutions: tuple[tuple[str, str], ...] = ()  # applied before running HERE: tiny data instead of the default
    parse: bool = True  # parse with the tool's parser (False only where the README elides required options)
    why: str = ''


T = 'tests/'
DEMO = T + 'tools/test_demo.py::test_whole_demo_on_the_tiny_benchmark_then_reuses_its_cache'  # slow: the whole `make demo`
TINY_PRESET = (('--preset default', '--preset tiny'),)
CONVERT = T + 'backbone/test_checkpoint.py::test_cli_official_k710_to_mmaction2'
EXTRACT_PARITY = T + 'feature_store/test_extract.py::test_parity_with_official_tad_extractor'
EXTRACT_DDP = T + 'feature_store/test_extract.py::test_torchrun_two_processes_equal_single_process'
TRAIN_DDP = T + 'pretrain/test_training.py::test_two_processes_match_one_process_with_the_same_global_batch'
TEST_DDP = T + 'tools/test_test.py::test_torchrun_two_processes'
TAD_CONFIGS = (T + 'localization/test_train.py::test_feature_configs_differ_only_in_features',
               T + 'localization/test_train.py::test_synthetic_config_reaches_high_map')

COVERAGE: tuple[Coverage, ...] = (
    # the two commands
    Coverage(r'make (demo|test)', (HERE, DEMO), why='`make -n` shows the target; CI runs `make test` itself'),
    Coverage(r'pip install -e \.', (HERE,), why='the Makefile set-up that `make demo` and `make test` run'),
    # checkpoints
    Coverage(r'python tools/convert_checkpoint\.py .*',
             (HERE, CONVERT, T + 'backbone/test_checkpoint.py::test_cli_hf_safetensors')),
    # the synthetic benchmark (the demo generates the default preset; here the tiny one)
    Coverage(r'python tools/make_synthetic\.py --out data/synthetic --preset default( --seed 0)?', (
        HERE, T + 'data/test_synthetic.py::test_tool_script_runs', DEMO), substitutions=TINY_PRESET),
    # feature store
    Coverage(r'python tools/extract_features\.py data/synthetic/classification/videos .*', (
        HERE, T + 'feature_store/test_extract.py::test_patch_size_from_the_option_or_the_config',
        T + 'feature_store/test_extract.py::test_online_features_equal_cached')),
    Coverage(r'python tools/extract_features\.py (videos/|data/thumos/videos) .*--arch vit_giant .*',
             (EXTRACT_PARITY,), why='real videos and ViT-g weights'),
    Coverage(r'torchrun --nproc_per_node 8 tools/extract_features\.py .*', (EXTRACT_DDP,)),
    Coverage(r'python tools/merge_features\.py OUT\.h5 shard0\.h5 shard1\.h5', (
        HERE, T + 'feature_store/test_store.py::test_merge_cli')),
    Coverage(r'python tools/extract_features\.py my_clips/ --recursive --id-from relpath .*', (
        T + 'feature_store/test_extract_frictions.py::test_recursive_folder_with_equal_names_and_relpath_ids',
        T + 'feature_store/test_extract_frictions.py::test_fp16_storage_is_the_fp32_rows_rounded'),
             why='your own videos and ViT-g weights'),
    Coverage(r'python tools/export_features\.py .*', (
        T + 'feature_store/test_npy_tools.py::test_export_then_import_from_the_command_line_gives_the_same_store',)),
    Coverage(r'python tools/import_features\.py .*', (
        T + 'feature_store/test_npy_tools.py::test_export_then_import_from_the_command_line_gives_the_same_store',
        T + 'feature_store/test_npy_tools.py::test_plain_npy_folder_with_the_grid_on_the_command_line')),
    Coverage(r'python tools/linear_probe\.py .*', (HERE, T + 'classification/test_probe.py::test_cli_json_and_determinism')),
    # pre-training
    Coverage(r'python tools/train\.py configs/pretrain/videomaev2/vit-test-p16_\S+ --work-dir work_dirs/pt[-_]tiny', (
        T + 'pretrain/test_training.py::test_training_runs_and_draws_the_loss_curve', DEMO)),
    Coverage(r'python tools/train\.py configs/pretrain/videomaev2/vit-test-p8_\S+ --work-dir work_dirs/pt-tiny-p8', (
        T + 'pretrain/test_training.py::test_long_patch8_config_has_one_token_grid_and_trains',),
             why='29 minutes; the test trains the same config for a few iterations'),
    Coverage(r'python tools/visualize_reconstruction\.py configs/\S+ work_dirs/\S+ data/synthetic/\S+ --out \S+', (
        HERE, T + 'pretrain/test_training.py::test_reconstruction_picture', DEMO),
             substitutions=(('videos/556.mp4', 'videos/3.mp4'),), why='the tiny preset has no video 556'),
    Coverage(r'python tools/visualize_reconstruction\.py CONFIG .*', (
        T + 'pretrain/test_training.py::test_reconstruction_picture',)),
    Coverage(r'torchrun --nproc_per_node 8 tools/train\.py configs/pretrain/\S+ .*', (
        TRAIN_DDP, T + 'pretrain/test_training.py::test_configs_follow_the_official_recipe')),
    Coverage(r'torchrun --nproc_per_node 8 tools/train\.py CONFIG --launcher pytorch --work-dir \S+ --resume', (
        T + 'pretrain/test_training.py::test_resume_continues_from_the_saved_iteration', TRAIN_DDP)),
    # classification
    Coverage(r'torchrun --nproc_per_node 8 tools/train\.py configs/recognition/\S+ --launcher pytorch', (
        T + 'classification/test_finetune.py::test_every_finetune_config_parses_and_chains_point_at_earlier_stages',
        T + 'classification/test_finetune.py::test_runner_fine_tunes_and_tests_the_synthetic_config', TRAIN_DDP)),
    Coverage(r'(torchrun --nproc_per_node 8 |python )tools/test\.py CONFIG CHECKPOINT( .*)?', (
                 T + 'tools/test_test.py::test_stock_config_end_to_end', TEST_DDP,
                 T + 'tools/test_test.py::test_wrong_checkpoint_stops_before_testing')),
    Coverage(r'MMACTION=\$\(python -c .*\)', (HERE,)),
    Coverage(r'python \$MMACTION/\.mim/tools/test\.py .*', (
        T + 'configs/test_mmaction_configs.py::test_runner_tests_converted_checkpoint',),
             why='Kinetics videos and ViT-B weights; the test runs the same config through the same Runner'),
    # AVA
    Coverage(r'python tools/train\.py configs/detection/ava/vit-base\S+', (
        T + 'detection/test_model.py::test_configs_follow_the_published_recipes',)),
    Coverage(r'python tools/(train|test)\.py configs/detection/ava/vit-test-p8\S+( work_dirs/ava_tiny/epoch_40\.pth)? '
             r'--work-dir work_dirs/ava_tiny', (T + 'detection/test_end_to_end.py::test_config_overfits_training_keyframes',
                                                DEMO)),
    Coverage(r'python tools/extract_features\.py data/synthetic/ava/videos --kind featmap .*', (
        T + 'detection/test_cached_featmaps.py::test_cached_config_trains_and_tests_end_to_end',
        T + 'detection/test_cached_featmaps.py::test_stored_maps_and_logits_equal_online')),
    Coverage(r'python tools/train\.py configs/detection/ava/vit-test-p8_videomaev2-frozen-featmaps\S+ --work-dir \S+', (
        T + 'detection/test_cached_featmaps.py::test_cached_config_trains_and_tests_end_to_end',)),
    Coverage(r'python tools/eval_ava\.py .*', (HERE, T + 'detection/test_evaluation.py::test_cli_prints_writes_json_and_png')),
    # THUMOS14
    Coverage(r'python tools/(train|test)\.py configs/localization/thumos14/actionformer_vit-giant\S+( \S+)?',
             TAD_CONFIGS, why='ViT-g features of THUMOS14'),
    Coverage(r'python tools/train\.py configs/localization/thumos14/actionformer_vit-giant\S+ --cfg-options '
             r'data_root=\S+ feature_store=\S+',
             (T + 'engine/test_config_frictions.py::test_feature_store_and_ann_file_keys_repoint_both_thumos_loaders',)),
    Coverage(r'python tools/train\.py configs/recognition/\S+ --cfg-options data_root=\S+',
             (T + 'engine/test_config_frictions.py::test_data_root_repoints_every_loader',)),
    Coverage(r'torchrun --nproc_per_node 8 tools/train\.py configs/recognition/\S+ --launcher pytorch --auto-scale-lr',
             (T + 'engine/test_config_frictions.py::test_auto_scale_lr_flag_scales_the_lr', TRAIN_DDP)),
    Coverage(r'python tools/eval_tad\.py .*', (HERE, T + 'localization/test_evaluation.py::test_eval_tad_cli')),
    # inference on one's own videos
    Coverage(r'python tools/infer\.py \S+ --config configs/recognition/videomaev2/\S+ --checkpoint \S+( --long)?'
             r'( --topk \d+)?( --out \S+)?', (
                 T + 'tools/test_infer.py::test_classification_scores_are_those_of_the_test_protocol',
                 T + 'tools/test_infer.py::test_long_windows_cover_the_video_and_match_the_model_by_hand',
                 T + 'backbone/test_released.py::test_load_checkpoint_by_name'),
             why='a fine-tuned checkpoint; the tests run the tool on the tiny benchmark with weights made there'),
    Coverage(r'python tools/infer\.py \S+ --config configs/localization/thumos14/\S+ --checkpoint \S+ --features \S+'
             r'( --out \S+)?', (
                 T + 'tools/test_infer.py::test_localization_on_the_fly_gives_the_segments_of_the_store',),
             why='a trained detector and its feature store; the test extracts a store and runs the tool on it'),
    # evaluation suites
    Coverage(r'python tools/evaluate\.py configs/suites/(k400_vit-[sb]_distilled|finetune_vit-b)\.py( --checkpoint \S+)?'
             r'( --dry-run)?', (
                 T + 'tools/test_suites.py::test_every_stage_command_parses_and_its_config_keys_exist',
                 T + 'tools/test_suites.py::test_real_suites_find_their_inputs_in_the_public_layouts',
                 T + 'tools/test_evaluate.py::test_the_tiny_suite_from_a_released_name_to_the_report'),
             why='Kinetics-400 / SSv2 and released weights; the tests put every stage command of the suites through '
                 "its tool's parser and config keys, check their inputs in the datasets' layouts, and run the tiny "
                 'suite from a released name'),
    Coverage(r'python tools/evaluate\.py --compare \S+ \S+', (
        T + 'tools/test_evaluate.py::test_the_whole_tiny_suite_a_subset_and_a_comparison',
        T + 'tools/test_evaluate.py::test_the_report_puts_each_result_beside_the_published_figure_and_baseline')),
    # Python blocks
    Coverage(r"VideoMAEv2ViT\('vit_base', num_classes=400\)", (HERE, T + 'backbone/test_checkpoint.py::test_k710_head_slicing')),
    Coverage(r"h5py\.File\('th14_vit_g_16_4\.h5'", (HERE,)),
    Coverage(r"FeatureStore\.open\('th14_vit_g_16_4\.h5'\)", (HERE,)),
    Coverage(r"h5py\.File\('feats\.h5'", (HERE,)),
    Coverage(r'Runner\.from_cfg\(cfg\)', (T + 'configs/test_mmaction_configs.py::test_runner_tests_converted_checkpoint',),
             why='Kinetics videos and ViT-S weights; the test runs the same config through the same Runner'),
)


def coverage_of(snippet: Snippet) -> list[Coverage]:
    if snippet.kind == 'python':
        return [c for c in COVERAGE if re.search(c.pattern, snippet.text)]
    return [c for c in COVERAGE if re.fullmatch(c.pattern, snippet.text)]


def test_every_readme_command_is_covered_exactly_once():
    problems = []
    for s in SNIPPETS:
        found = coverage_of(s)
        if len(found) != 1:
            problems.append(f'{s}: matches {len(found)} coverage entries {[c.pattern for c in found]}')
    assert not problems, 'README commands without exactly one way of being exercised:\n' + '\n'.join(problems)


def test_every_coverage_entry_matches_a_readme_command():
    unused = [c.pattern for c in COVERAGE if not any(c in coverage_of(s) for s in SNIPPETS)]
    assert not unused, f'coverage entries no README command uses (stale): {unused}'
    stale = [(c.pattern, old) for c in COVERAGE for old, _ in c.substitutions
             if not any(c in coverage_of(s) and old in s.text for s in SNIPPETS)]
    assert not stale, f'substitutions that no longer apply to any command: {stale}'


def test_the_named_tests_exist():
    missing = []
    for test_id in sorted({t for c in COVERAGE for t in c.tests if t != HERE}):
        file, name = test_id.split('::')
        path = REPO / file
        names = {node.name for node in ast.parse(path.read_text()).body
                 if isinstance(node, ast.FunctionDef)} if path.is_file() else set()
        if name not in names:
            missing.append(test_id)
    assert not missing, f'coverage names tests that do not exist: {missing}'


# ---------------------------------------------------------------------------------------------------------------------
# every tool command parses; its configs and --cfg-options keys exist
# ---------------------------------------------------------------------------------------------------------------------
class _Parsed(BaseException):  # BaseException: a tool's `except Exception` must not swallow it
    pass


def parse_with_tool(script: Path, argv: list[str]) -> argparse.Namespace:
    """Run ``script`` as ``__main__`` until it has parsed ``argv`` with its own argparse parser; return the result."""
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    stderr = io.StringIO()
    with mock.patch.object(argparse.ArgumentParser, 'parse_args', parse_then_stop), \
            mock.patch.object(sys, 'argv', [str(script), *argv]), contextlib.redirect_stderr(stderr):
        try:
            runpy.run_path(str(script), run_name='__main__')
        except _Parsed as parsed:
            return parsed.args[0]
        except SystemExit as e:
            raise AssertionError(f'{script.name} rejects {argv} (exit {e.code}): {stderr.getvalue().strip()}') from None
    raise AssertionError(f'{script.name} finished without parsing its arguments')


def mmaction_dir() -> Path:
    import mmaction
    return Path(mmaction.__file__).parent


# Placeholders of the READMEs, for parsing only: CONFIG is the config of the same family the README means.
PLACEHOLDER_CONFIGS = {
    'tools/train.py': 'configs/pretrain/videomaev2/vit-test-p16_videomaev2-pt-2e_8x2x1_synthetic.py',
    'tools/test.py': 'configs/recognition/videomaev2/vit-test-p16_videomaev2-ft_8x4x1_synthetic.py',
    'tools/visualize_reconstruction.py': 'configs/pretrain/videomaev2/vit-test-p16_videomaev2-pt-2e_8x2x1_synthetic.py',
}


def command_argv(text: str) -> tuple[str, list[str]] | None:
    """(tool script, its arguments) of a README command that runs a Python tool, else None. Optional ``[...]`` groups
    are kept (so their options are checked too) and ``...`` (elided options) is dropped."""
    words = text.replace('$MMACTION', str(mmaction_dir())).replace('[', ' ').replace(']', ' ').split()
    if words[:2] == ['torchrun', '--nproc_per_node']:
        words = words[3:]
    elif words[:1] == ['python']:
        words = words[1:]
    else:
        return None
    if not words or not words[0].endswith('.py'):
        return None
    script, args = words[0], [w for w in words[1:] if w != '...']
    if 'CONFIG' in args:
        args[args.index('CONFIG')] = PLACEHOLDER_CONFIGS[script]
    return script, args


def config_has_key(cfg, dotted: str) -> bool:
    node = cfg
    for part in dotted.split('.'):
        if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True


def check_configs(snippet: Snippet, configs: list[str], cfg_options: dict | None = None) -> None:
    """Every config exists and loads; every --cfg-options key is already a key of each of them."""
    from mmengine.config import Config

    for path in configs:
        assert (REPO / path).is_file(), f'{snippet}: config {path} does not exist'
        cfg = Config.fromfile(str(REPO / path)).to_dict()
        unknown = [k for k in (cfg_options or {}) if not config_has_key(cfg, k)]
        assert not unknown, f'{snippet}: --cfg-options keys not in {path} (mmengine would add them silently): {unknown}'


TOOL_COMMANDS = [s for s in SNIPPETS if s.kind == 'shell' and command_argv(s.text) is not None]


@pytest.mark.parametrize('snippet', TOOL_COMMANDS, ids=str)
def test_tool_command_parses_and_its_configs_exist(snippet):
    (cover,) = coverage_of(snippet)
    script, args = command_argv(snippet.text)
    path = Path(script) if Path(script).is_absolute() else REPO / script
    assert path.is_file(), f'{snippet}: no such tool {script}'
    if not cover.parse:
        return
    with working_dir(REPO):
        ns = parse_with_tool(path, args)
    configs = [a for a in args if a.startswith('configs/') and a.endswith('.py')]
    options = {k: v for k, v in (getattr(ns, 'cfg_options', None) or {}).items() if k != 'k'}  # `k=v`: placeholder
    check_configs(snippet, configs[:1], options)  # the options apply to the tool's config
    check_configs(snippet, configs[1:])


def test_the_checks_catch_a_renamed_option_and_a_misspelt_key():
    """The parse and key checks are not vacuous: they reject what a stale README would say."""
    with working_dir(REPO), pytest.raises(AssertionError, match='--per-category'):
        parse_with_tool(REPO / 'tools/eval_tad.py', ['--gt', 'a.json', '--pred', 'b.json', '--per-category'])
    with working_dir(REPO):
        ns = parse_with_tool(REPO / 'tools/eval_tad.py', ['--gt', 'a.json', '--pred', 'b.json', '--per-class'])
    assert ns.gt == 'a.json' and ns.per_class
    snippet = Snippet('README.md', 1, 'shell', 'python tools/train.py ...')
    config = 'configs/localization/thumos14/actionformer_vit-test-p16_synthetic-feat_16x4_synthetic-thumos.py'
    check_configs(snippet, [config], {'train_dataloader.dataset.feature_store': 'F.h5', 'train_cfg.max_epochs': 1})
    with pytest.raises(AssertionError, match=r"\['train_dataloader.dataset.feature_stor'\]"):
        check_configs(snippet, [config], {'train_dataloader.dataset.feature_stor': 'F.h5'})
    with pytest.raises(AssertionError, match='does not exist'):
        check_configs(snippet, ['configs/no_such_config.py'])


# ---------------------------------------------------------------------------------------------------------------------
# the HERE commands, run as written
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class Workspace:
    root: Path
    label_map_400: list[int] = field(default_factory=list)
    shards: list[np.ndarray] = field(default_factory=list)

    def path(self, relative: str) -> Path:
        return self.root / relative


def run_tool_in_process(ws: Workspace, script: str, args: list[str]) -> str:
    """``python SCRIPT ARGS`` in this process (tools are thin ``sys.exit(main())`` scripts), cwd = the workspace;
    returns stdout. Torch's thread count is restored afterwards (the extractor and the probe set their own)."""
    out, err, threads = io.StringIO(), io.StringIO(), torch.get_num_threads()
    code = 0
    with working_dir(ws.root), mock.patch.object(sys, 'argv', [script, *args]), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(str(REPO / script), run_name='__main__')
        except SystemExit as e:
            code = e.code or 0
        finally:
            torch.set_num_threads(threads)
    assert code == 0, f'{script} {args} exited {code}:\n{out.getvalue()[-2000:]}\n{err.getvalue()[-2000:]}'
    return out.getvalue()


# The released distilled files the READMEs name: (preset, seed of the stand-in weights).
K710_FILES = {'vit_b_k710_dl_from_giant.pth': ('vit_base', 0), 'vit_s_k710_dl_from_giant.pth': ('vit_small', 1)}


def official_k710(ws: Workspace, name: str) -> dict[str, torch.Tensor]:
    """The state of ``name`` in the workspace, a released-style fine-tuned file (``{'module': fp16 state}``) of its
    preset with a 710-way head, written with random weights the first time it is asked for."""
    from backbone import VideoMAEv2ViT

    path = ws.path(name)
    if not path.exists():
        arch, seed = K710_FILES[name]
        torch.manual_seed(seed)
        model = VideoMAEv2ViT(arch, num_classes=710)
        with torch.no_grad():
            model.head.weight.normal_(0, 0.02)
            model.head.bias.normal_(0, 0.02)
        torch.save({'module': {k: v.half() for k, v in model.state_dict().items()}}, path)
    return torch.load(path, weights_only=True)['module']


def fabricate_pretrain_checkpoint(ws: Workspace, config: str, out: str) -> None:
    """An mmengine checkpoint of the pre-training model a config builds (what tools/train.py would save)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmaction.registry import MODELS

    cfg = Config.fromfile(str(REPO / config))
    init_default_scope('mmaction')
    model = MODELS.build(cfg.model)
    ws.path(out).parent.mkdir(parents=True, exist_ok=True)
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 1}}, ws.path(out))


def write_ava_files(ws: Workspace, annotations: str, predictions: str) -> None:
    """The synthetic validation annotations under the README's names, and predictions equal to the ground truth."""
    src = ws.path('data/synthetic/ava/annotations')
    dst = ws.path(annotations)
    dst.mkdir(parents=True, exist_ok=True)
    for name in ('ava_val_v2.2.csv', 'ava_action_list_v2.2_for_activitynet_2019.pbtxt',
                 'ava_val_excluded_timestamps_v2.2.csv'):
        shutil.copy(src / name, dst / name)
    rows = [line.split(',') for line in (src / 'ava_val_v2.2.csv').read_text().splitlines() if line]
    assert rows, 'the tiny AVA validation video has no labelled keyframe'
    pred = ws.path(predictions)
    pred.parent.mkdir(parents=True, exist_ok=True)
    pred.write_text(''.join(','.join(r[:7] + ['1.0']) + '\n' for r in rows))


def write_tad_files(ws: Workspace, gt: str, pred: str) -> None:
    """The synthetic THUMOS annotations under the README's name, and test-subset predictions equal to the truth."""
    src = ws.path('data/synthetic/thumos/annotations/thumos14.json')
    ws.path(gt).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, ws.path(gt))
    database = json.loads(src.read_text())['database']
    results = {video: [{'segment': a['segment'], 'label': a['label'], 'score': 1.0} for a in entry['annotations']
                       if a['label'] != 'Ambiguous']
               for video, entry in database.items() if entry['subset'].lower() == 'test'}
    assert any(results.values())
    ws.path(pred).parent.mkdir(parents=True, exist_ok=True)
    ws.path(pred).write_text(json.dumps({'results': results}))


def write_store(path: Path, video_id: str, rows: int, dim: int, seed: int) -> np.ndarray:
    """A one-video store with official TAD windows (16 frames every 4, 30 fps) and its container times."""
    from feature_store import StoreInfo, VideoFeatureMeta, build_store
    from tasks.data.video.sampling import sliding_window_sample

    info = StoreInfo(arch='vit_test', checkpoint_sha256='ab' * 32, feature_kind='pooled',
                     preprocessing={'resize': 'squash', 'size': 224, 'normalize': None, 'frame_dtype': 'uint8'},
                     dtype='float32', config={'sampling': {'clip_len': 16, 'frame_interval': 1, 'stride': 4}})
    sample = sliding_window_sample(16 + 4 * (rows - 1), clip_len=16, stride=4, fps=30.0)
    meta = VideoFeatureMeta.from_clip_sample(video_id, sample, stride=4, timestamps=np.arange(sample.num_frames) / 30)
    feats = np.random.default_rng(seed).standard_normal((meta.num_rows, dim)).astype(np.float32)
    build_store(path, info, [(video_id, feats, meta)])
    return feats


def option(command: str, name: str) -> str:
    """The value of option ``name`` in a README command (optional ``[...]`` groups included)."""
    words = command.replace('[', ' ').replace(']', ' ').split()
    return words[words.index(name) + 1]


# What to prepare before a HERE command and what to check after it, keyed by a regex on the command.
def _before_convert(ws: Workspace, s: Snippet) -> None:
    source = s.text.split()[2]
    if source in K710_FILES:
        official_k710(ws, source)


def _after_convert(ws: Workspace, s: Snippet, out: str) -> None:
    written = s.text.split()[3]
    assert f'wrote {written}' in out and ws.path(written).is_file()
    if written == 'vit_b_k400_official.pth':  # the end of the chain official -> mmaction2 -> hf -> official
        source = official_k710(ws, 'vit_b_k710_dl_from_giant.pth')
        back = torch.load(ws.path(written), weights_only=True)
        back = back.get('module', back.get('model', back))
        assert sorted(back) == sorted(source)
        for key, value in source.items():
            expected = value[ws.label_map_400] if key.startswith('head.') else value
            assert torch.equal(back[key].to(expected.dtype), expected), key


def _before_extract(ws: Workspace, s: Snippet) -> None:
    if 'work_dirs/pt-tiny-p8/epoch_80.pth' in s.text:
        config = 'configs/pretrain/videomaev2/vit-test-p8_videomaev2-pt-80e_8x2x1_synthetic.py'
        fabricate_pretrain_checkpoint(ws, config, 'work_dirs/pt-tiny-p8/epoch_80.pth')


def _after_extract(ws: Workspace, s: Snippet, out: str) -> None:
    from feature_store import FeatureStore

    store_path = ws.path(option(s.text, '--out'))
    videos = sorted(p.stem for p in ws.path('data/synthetic/classification/videos').glob('*.mp4'))
    with FeatureStore.open(store_path) as store:
        assert sorted(store.ids()) == videos
        for video_id in videos:
            feats, meta = store.read(video_id)
            # official windows: starts 0, stride, ... while the 15-frame span (8 frames, every 2nd) fits; a window
            # is centred on its frame clip_len // 2 (docs/thumos14.md#official-feature-extractor: frame 8 + 4k for 16 frames at stride 4)
            span = (meta.clip_len - 1) * meta.frame_interval + 1
            assert meta.clip_len == 8 and meta.frame_interval == 2
            assert list(meta.centre_frames) == [start + 4 * 2 for start in
                                                range(0, meta.num_frames - span + 1, meta.stride)]
            assert feats.shape == (meta.num_rows, 64) and np.isfinite(feats).all()
        info = store.info
    assert info.arch == 'vit_test'
    assert info.config['model'].get('patch_size') == (8 if '--patch-size 8' in s.text else None)


def _before_merge(ws: Workspace, s: Snippet) -> None:
    ws.shards = [write_store(ws.path(f'shard{i}.h5'), f'video_test_000000{i + 1}', rows=5 + i, dim=8, seed=i)
                 for i in range(2)]


def _after_merge(ws: Workspace, s: Snippet, out: str) -> None:
    from feature_store import FeatureStore

    assert '2 videos from 2 shards' in out
    with FeatureStore.open(ws.path('OUT.h5')) as store:
        for i, expected in enumerate(ws.shards):
            assert np.array_equal(store.read_features(f'video_test_000000{i + 1}'), expected)


def _after_probe(ws: Workspace, s: Snippet, out: str) -> None:
    # train and val are the same store here, as in the README; each of the 10 classes has one training video
    assert 'linear' in out.lower() and 'k-nn' in out.lower(), out


def _before_visualize(ws: Workspace, s: Snippet) -> None:
    words = s.text.split()
    fabricate_pretrain_checkpoint(ws, words[2], words[3])


def _after_visualize(ws: Workspace, s: Snippet, out: str) -> None:
    from mmengine.config import Config
    from PIL import Image

    data = Config.fromfile(str(REPO / s.text.split()[2])).train_dataloader.dataset
    frames, side = data.clip_len, data.input_size
    scale = int(option(s.text, '--scale')) if '--scale' in s.text.split() else (2 if side < 128 else 1)
    with Image.open(ws.path(option(s.text, '--out'))) as png:
        # the size the tool documents: a 120-px label column, one column per frame, four rows, 2-px gaps
        size = (120 + frames * scale * side + (frames - 1) * 2, 4 * scale * side + 3 * 2)
        assert (png.format, png.size) == ('PNG', size)
    assert 'MSE' in out or 'mse' in out, out


def _before_eval_ava(ws: Workspace, s: Snippet) -> None:
    gt = option(s.text, '--gt')
    write_ava_files(ws, str(Path(gt).parent), option(s.text, '--pred'))


def _after_eval_ava(ws: Workspace, s: Snippet, out: str) -> None:
    result = json.loads(ws.path(option(s.text, '--out')).read_text())
    assert result['mAP'] == pytest.approx(1.0), result  # predictions are the ground truth with score 1


def _before_eval_tad(ws: Workspace, s: Snippet) -> None:
    write_tad_files(ws, option(s.text, '--gt'), option(s.text, '--pred'))


def _after_eval_tad(ws: Workspace, s: Snippet, out: str) -> None:
    (row,) = [line for line in out.splitlines() if line.startswith('mAP (%)')]
    assert [float(v) for v in row.split()[2:]] == [100.0] * 6, out  # five tIoUs and their average
    if '--out ' in s.text:
        result = json.loads(ws.path(option(s.text, '--out')).read_text())
        assert result['average_mAP'] == pytest.approx(1.0), result


def _after_synthetic(ws: Workspace, s: Snippet, out: str) -> None:
    assert ws.path('data/synthetic/manifest.json').is_file()
    assert len(list(ws.path('data/synthetic/classification/videos').glob('*.mp4'))) == 20  # tiny: 10 classes x 2


HOOKS: tuple[tuple[str, Callable | None, Callable | None], ...] = (
    (r'python tools/convert_checkpoint\.py .*', _before_convert, _after_convert),
    (r'python tools/make_synthetic\.py .*', None, _after_synthetic),
    (r'python tools/extract_features\.py .*', _before_extract, _after_extract),
    (r'python tools/merge_features\.py .*', _before_merge, _after_merge),
    (r'python tools/linear_probe\.py .*', None, _after_probe),
    (r'python tools/visualize_reconstruction\.py .*', _before_visualize, _after_visualize),
    (r'python tools/eval_ava\.py .*', _before_eval_ava, _after_eval_ava),
    (r'python tools/eval_tad\.py .*', _before_eval_tad, _after_eval_tad),
)


def run_here_shell(ws: Workspace, s: Snippet, cover: Coverage) -> None:
    text = s.text
    for old, new in cover.substitutions:  # test_every_coverage_entry_matches_a_readme_command checks they apply
        text = text.replace(old, new)
    snippet = Snippet(s.doc, s.line, s.kind, text)
    if text.startswith('make '):
        proc = subprocess.run(['make', '-n', '-C', str(REPO), text.split()[1]], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert {'make demo': 'tools/evaluate.py configs/suites/synthetic_demo.py', 'make test': '-m pytest'}[text] \
            in proc.stdout, proc.stdout
        return
    if text == 'pip install -e .':  # what the Makefile's set-up runs for both commands
        proc = subprocess.run(['make', '-n', '-B', '-C', str(REPO), 'venv'], capture_output=True, text=True)
        assert proc.returncode == 0 and 'pip install -e .' in proc.stdout, proc.stdout + proc.stderr
        return
    if text.startswith('MMACTION='):
        # `python` is the environment's, as for a user who activated it
        env = {**os.environ, 'PATH': f'{Path(sys.executable).parent}{os.pathsep}{os.environ.get("PATH", "")}'}
        proc = subprocess.run(['bash', '-c', f'{text} && echo "$MMACTION"'], capture_output=True, text=True,
                              cwd=ws.root, env=env)
        assert proc.returncode == 0, proc.stderr
        assert (Path(proc.stdout.strip()) / '.mim' / 'tools' / 'test.py').is_file(), proc.stdout
        return
    hooks = [(before, after) for pattern, before, after in HOOKS if re.fullmatch(pattern, text)]
    assert len(hooks) == 1, f'{s}: no preparation/check registered for a HERE command'
    before, after = hooks[0]
    if before:
        before(ws, snippet)
    script, args = command_argv(text)
    out = run_tool_in_process(ws, script, args)
    after(ws, snippet, out)


def run_here_python(ws: Workspace, s: Snippet) -> None:
    namespace: dict = {}
    if "VideoMAEv2ViT('vit_base'" in s.text:
        source = official_k710(ws, 'vit_b_k710_dl_from_giant.pth')
        with working_dir(ws.root), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            exec(compile(s.text, s.doc, 'exec'), namespace)
        assert namespace['logits'].shape == (2, 400) and namespace['feats'].shape == (2, 768)
        head = namespace['model'].head.weight
        assert torch.equal(head, source['head.weight'][ws.label_map_400].float())  # the 710 -> 400 slice
        assert not namespace['result'].missing  # every weight of the model came from the file
        return
    if 'th14_vit_g_16_4.h5' in s.text or "'feats.h5'" in s.text:
        name = 'th14_vit_g_16_4.h5' if 'th14_vit_g_16_4.h5' in s.text else 'feats.h5'
        expected = write_store(ws.path(name), 'video_test_0000004', rows=9, dim=12, seed=4)
        with working_dir(ws.root):
            exec(compile(s.text, s.doc, 'exec'), namespace)
        centres = (8 + 4 * np.arange(9)) / 30.0  # official windows: centre frame 8 + 4 k at 30 fps
        if 'feats' in namespace:  # FeatureStore API
            assert np.array_equal(namespace['feats'], expected)
            assert np.allclose(namespace['t'], centres)
            assert np.allclose(namespace['rows'], (np.array([12.3, 15.0]) * 30 - 8) / 4)
        else:
            assert np.array_equal(namespace['x'], expected)
            assert np.allclose(namespace['centre_s'], centres)
            if 'ids' in namespace:
                assert namespace['ids'] == ['video_test_0000004']
                assert namespace['config']['sampling']['stride'] == 4
        return
    raise AssertionError(f'{s}: no check registered for a HERE Python block')


def test_here_commands_run_as_written(tmp_path):
    """The HERE commands and blocks of every README, in document order, in one scratch folder that has the
    repository's ``tools`` and ``configs`` (as a user's checkout has) and the tiny synthetic benchmark."""
    ws = Workspace(tmp_path)
    for name in ('tools', 'configs'):
        (tmp_path / name).symlink_to(REPO / name)
    ws.label_map_400 = sorted(np.random.default_rng(0).choice(710, 400, replace=False).tolist())
    (tmp_path / 'label_710to400.json').write_text(json.dumps(ws.label_map_400))
    here = [(s, c) for s in SNIPPETS for c in coverage_of(s) if HERE in c.tests]
    # the benchmark first: later commands of a README read it even where that README generates it further down
    here.sort(key=lambda sc: (not sc[0].text.startswith('python tools/make_synthetic.py'), sc[0].doc != 'README.md',
                              sc[0].doc, sc[0].line))
    assert len(here) >= 15
    for s, cover in here:
        try:
            if s.kind == 'python':
                run_here_python(ws, s)
            else:
                run_here_shell(ws, s, cover)
        except AssertionError as e:
            raise AssertionError(f'{s}\n{e}') from None
