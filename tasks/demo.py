"""The main job behind ``make demo``: the whole suite on the embedded synthetic benchmark, on a CPU in minutes.

Each stage of :data:`STAGES` runs the command-line tool a user would, in a subprocess, with its log in
``<work>/logs/``. A stage that makes something expensive records a fingerprint of its inputs in
``<work>/stages/<stage>.json``, written last and atomically; a second run re-uses every stage whose fingerprint still
matches and only re-evaluates (``--fresh`` ignores the cache). A failing stage stops the demo with the tail of its log.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.data.files import write_json_atomic
from tasks.engine.report import text_table
from tasks.evaluate.tools import (ROOT, StageError, cfg_flag, file_sha256, fingerprint, last_checkpoint,
                                  loss_curve_value, relocate_data, run_tool)

DEMO_VERSION = '2'  # bump when a change to the demo alters what a cached stage would contain

# 2 epochs of the 480 training videos (240 iterations, ~1 min on 2 cores), so that the job fits in 10 minutes. This
# run learns little more than the benchmark's colours; runs of up to 9600 iterations did not make the probe it feeds
# beat random features either, and the reconstructions show layout only after thousands of iterations
# (docs/experiments.md#probing-pre-trained-features, docs/experiments.md#tiny-pre-training-with-8-px-patches).
PRETRAIN_CONFIG = 'configs/pretrain/videomaev2/vit-test-p16_videomaev2-pt-2e_8x2x1_synthetic.py'

DemoError = StageError  # a stage failed; the message names the stage, the command and its log


@dataclass
class Demo:
    """Shared state of one demo run: folders, cache and the results gathered so far.

    Args:
        work_dir: where every output goes (``work_dirs/demo``).
        data_root: the generated benchmark (``data/synthetic``).
        preset: synthetic benchmark preset (``default``; ``tiny`` for the test of this job).
        fresh: ignore cached stages.
        overrides: per-stage extra ``--cfg-options`` (the test of this job shortens the schedules).
    """

    work_dir: Path
    data_root: Path
    preset: str = 'default'
    seed: int = 0
    fresh: bool = False
    overrides: Mapping[str, Sequence[str]] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)

    # --- plumbing ---------------------------------------------------------------------------------------------------
    @property
    def log_dir(self) -> Path:
        return self.work_dir / 'logs'

    def stage_record(self, stage: str) -> Path:
        return self.work_dir / 'stages' / f'{stage}.json'

    def cached(self, stage: str, key: str) -> dict | None:
        """The stage's record if it was completed from the same inputs (and ``--fresh`` is not set)."""
        path = self.stage_record(stage)
        if self.fresh or not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError:
            return None
        if record.get('fingerprint') != key or not all(Path(p).exists() for p in record.get('outputs', [])):
            return None
        self.reused.append(stage)
        return record

    def complete(self, stage: str, key: str, outputs: Sequence[Path], **extra: Any) -> dict:
        record = {'fingerprint': key, 'outputs': [str(p) for p in outputs], **extra}
        write_json_atomic(self.stage_record(stage), record, sort_keys=True, default=float)
        return record

    def run_tool(self, stage: str, script: str, *args: str | os.PathLike) -> None:
        """:func:`tasks.evaluate.tools.run_tool` with the log in ``<work>/logs/<stage>.log``.

        Raises:
            DemoError: non-zero exit status, with the last lines of the log.
        """
        run_tool(stage, script, *args, log_dir=self.log_dir)

    def options(self, stage: str, *options: str) -> list[str]:
        """Config overrides (``key=value``) for a stage: the demo's own settings, then the caller's overrides."""
        return [*options, *self.overrides.get(stage, ())]


# --- stages ---------------------------------------------------------------------------------------------------------
def stage_data(demo: Demo) -> None:
    """Generate (or re-use) the synthetic benchmark."""
    from tasks.data.synthetic import generate

    manifest = generate(demo.data_root, demo.preset, demo.seed, log=lambda msg: print(f'    {msg}', flush=True))
    demo.results['data'] = {'preset': manifest['preset'], 'seed': manifest['seed'],
                            'root': str(demo.data_root)}


def _data_fingerprint(demo: Demo) -> str:
    return file_sha256(demo.data_root / 'manifest.json')


def stage_pretrain(demo: Demo) -> None:
    """Dual-masked pre-training of the tiny ViT on the benchmark's classification videos."""
    work = demo.work_dir / 'pretrain'
    options = demo.options('pretrain', *relocate_data(PRETRAIN_CONFIG, demo.data_root))
    key = fingerprint('pretrain', DEMO_VERSION, file_sha256(ROOT / PRETRAIN_CONFIG), _data_fingerprint(demo), options)
    record = demo.cached('pretrain', key)
    if record is None:
        if work.exists():
            shutil.rmtree(work)  # a stale or interrupted run: start clean rather than resume someone else's
        demo.run_tool('pretrain', 'tools/train.py', PRETRAIN_CONFIG, '--work-dir', work, *cfg_flag(options))
        checkpoint = last_checkpoint(work)
        curve = json.loads((work / 'loss_curve.json').read_text())
        record = demo.complete('pretrain', key, [checkpoint, work / 'loss_curve.png'], checkpoint=str(checkpoint),
                               first_loss=loss_curve_value(curve, 0), last_loss=loss_curve_value(curve, -1))
    shutil.copyfile(work / 'loss_curve.png', demo.work_dir / 'loss_curve.png')
    demo.results['pretrain'] = {k: record[k] for k in ('checkpoint', 'first_loss', 'last_loss')}


def stage_reconstruction(demo: Demo) -> None:
    """The paper-style picture of one masked validation clip and its reconstruction."""
    video = _first_listed_video(demo.data_root / 'classification' / 'val_list_videos.txt')
    out = demo.work_dir / 'reconstruction.png'
    demo.run_tool('reconstruction', 'tools/visualize_reconstruction.py', PRETRAIN_CONFIG,
                  demo.results['pretrain']['checkpoint'], video, '--out', out)
    demo.results['reconstruction'] = {'picture': str(out), 'video': str(video)}


def _first_listed_video(list_file: Path) -> Path:
    from tasks.data.annotations import read_video_list

    entries = read_video_list(list_file)
    if not entries:
        raise DemoError(f'{list_file}: no videos listed')
    return list_file.parent / entries[0].path


# Feature extraction for the cached-feature tasks (linear probe, THUMOS): the tiny model was pre-trained on 8 frames
# every 2nd frame, so windows are 8 x 2 (a 16-frame span, like the official 16 x 1) every 4 frames (THUMOS, the
# official stride) or every 8 (the probe, which averages a video's rows: 7 windows of a 64-frame clip instead of 13,
# half the cost), on the whole 128x96 frame (a 6 x 8 token grid; the sinusoid position embedding fits any grid),
# normalised with ImageNet mean/std as the tiny model saw its frames in pre-training (the extractor's default is the
# official TAD preprocessing, /255 only).
def _extract_args(stride: int) -> tuple[str, ...]:
    return ('--arch', 'vit_test', '--clip-len', '8', '--frame-interval', '2', '--stride', str(stride),
            '--resize', '96x128', '--normalize', '--batch-size', '32')


EXTRACT_ARGS = _extract_args(4)
PROBE_EXTRACT_ARGS = _extract_args(8)


def feature_store_path(demo: Demo, name: str) -> Path:
    return demo.work_dir / 'features' / f'{name}.h5'


def extract(demo: Demo, name: str, videos: Path, checkpoint: str | None,
            args: Sequence[str] = EXTRACT_ARGS) -> Path:
    """``tools/extract_features.py`` into ``<work>/features/<name>.h5`` unless an identical store is cached.

    Args:
        checkpoint: backbone weights; None for a random initialisation (seed 0).
        args: extraction options.
    """
    out = feature_store_path(demo, name)
    weights = ['--checkpoint', checkpoint] if checkpoint else ['--random-init', '--seed', '0']
    key = fingerprint('features', DEMO_VERSION, name, _data_fingerprint(demo), tuple(args),
                      file_sha256(Path(checkpoint)) if checkpoint else weights)
    stage = f'features_{name}'
    if demo.cached(stage, key) is None:
        out.parent.mkdir(parents=True, exist_ok=True)
        # --overwrite: a store made with other weights is replaced; an interrupted extraction with these settings
        # still resumes from its part files.
        demo.run_tool(stage, 'tools/extract_features.py', videos, '--out', out, *args, *weights, '--overwrite')
        demo.complete(stage, key, [out])
    return out


def stage_features(demo: Demo) -> None:
    """Clip features of the classification videos from the pre-trained and from a randomly initialised backbone."""
    videos = demo.data_root / 'classification' / 'videos'
    demo.results['features'] = {
        'cls_pretrained': str(extract(demo, 'cls_pretrained', videos, demo.results['pretrain']['checkpoint'],
                                      PROBE_EXTRACT_ARGS)),
        'cls_random': str(extract(demo, 'cls_random', videos, None, PROBE_EXTRACT_ARGS)),
    }


def stage_probe(demo: Demo) -> None:
    """Linear probe and k-NN on the cached classification features: pre-trained vs randomly initialised backbone."""
    lists = demo.data_root / 'classification'
    out = {}
    for name in ('pretrained', 'random'):
        result = demo.work_dir / 'probe' / f'{name}.json'
        result.parent.mkdir(parents=True, exist_ok=True)
        store = demo.results['features'][f'cls_{name}']
        demo.run_tool(f'probe_{name}', 'tools/linear_probe.py', store, store, '--labels',
                      lists / 'train_list_videos.txt', lists / 'val_list_videos.txt', '--out', result)
        out[name] = json.loads(result.read_text())
    demo.results['probe'] = {name: {'linear_top1': r['linear']['top1'], 'knn_top1': r['knn']['top1']}
                             for name, r in out.items()}


def train_and_test(demo: Demo, stage: str, config: str, options: Sequence[str], depends: Sequence[Any] = (),
                   test_options: Sequence[str] = ()) -> tuple[dict[str, float], Path]:
    """``tools/train.py`` (cached by fingerprint) then ``tools/test.py`` on the last checkpoint.

    Args:
        depends: fingerprints of the inputs the config options point at (checkpoints, feature stores).

    Returns:
        The metrics ``tools/test.py`` wrote to ``results.json``, and the test work directory (the metric's files).
    """
    work = demo.work_dir / stage
    options = demo.options(stage, *options)
    inputs = [file_sha256(ROOT / config), _data_fingerprint(demo), options]
    key = fingerprint(stage, DEMO_VERSION, *inputs, *depends)
    record = demo.cached(stage, key)
    if record is None:
        if (work / 'train').exists():
            shutil.rmtree(work / 'train')
        demo.run_tool(f'{stage}_train', 'tools/train.py', config, '--work-dir', work / 'train', *cfg_flag(options))
        checkpoint = last_checkpoint(work / 'train')
        record = demo.complete(stage, key, [checkpoint], checkpoint=str(checkpoint))
    test_dir = work / 'test'
    test_args = cfg_flag([*options, *demo.options(f'{stage}_test', *test_options)])
    demo.run_tool(f'{stage}_test', 'tools/test.py', config, record['checkpoint'], '--work-dir', test_dir, *test_args)
    return json.loads((test_dir / 'results.json').read_text()), test_dir


FINETUNE_CONFIG = 'configs/recognition/videomaev2/vit-test-p16_videomaev2-ft_8x4x1_synthetic.py'


def stage_finetune(demo: Demo) -> None:
    """Fine-tune the pre-trained tiny ViT on the classification set, then the multi-view test (2 clips x 3 crops)."""
    checkpoint = demo.results['pretrain']['checkpoint']
    options = [*relocate_data(FINETUNE_CONFIG, demo.data_root), f'model.pretrained={checkpoint}',
               'train_cfg.val_interval=1000']  # no validation passes: the test below is the evaluation
    metrics, test_dir = train_and_test(demo, 'finetune', FINETUNE_CONFIG, options,
                                       depends=[file_sha256(Path(checkpoint))])
    shutil.copyfile(test_dir / 'cls_confusion.png', demo.work_dir / 'cls_confusion.png')
    record = json.loads(demo.stage_record('finetune').read_text())
    num_classes = len(json.loads((demo.data_root / 'classification' / 'labels.json').read_text()))
    demo.results['finetune'] = {'top1': _metric(metrics, 'top1'), 'top5': _metric(metrics, 'top5'),
                                'mean_class_accuracy': _metric(metrics, 'mean1'), 'chance_top1': 1 / num_classes,
                                'checkpoint': record['checkpoint']}


THUMOS_CONFIG = 'configs/localization/thumos14/actionformer_vit-test-p16_synthetic-feat_16x4_synthetic-thumos.py'


def stage_thumos(demo: Demo) -> None:
    """THUMOS-like localization: ActionFormer on cached clip features of the fine-tuned backbone.

    The THUMOS14 features come from a *fine-tuned* backbone (docs/thumos14.md#official-feature-extractor), so the
    features here are extracted with the backbone fine-tuned on the classification set, whose labels are motions.
    """
    checkpoint = demo.results['finetune']['checkpoint']
    store = extract(demo, 'thumos_finetuned', demo.data_root / 'thumos' / 'videos', checkpoint)
    options = [*relocate_data(THUMOS_CONFIG, demo.data_root),
               *(f'{split}_dataloader.dataset.feature_store={store}' for split in ('train', 'test'))]
    metrics, test_dir = train_and_test(demo, 'thumos', THUMOS_CONFIG, options,
                                       depends=[file_sha256(demo.stage_record('features_thumos_finetuned'))])
    shutil.copyfile(test_dir / 'tad_map_vs_tiou.png', demo.work_dir / 'thumos_map_vs_tiou.png')
    shutil.copyfile(test_dir / 'tad_per_class_ap.png', demo.work_dir / 'thumos_per_class_ap.png')
    demo.results['thumos'] = {
        'average_mAP': _metric(metrics, 'mAP'), 'random_average_mAP': _metric(metrics, 'random_mAP'),
        'mAP_per_tIoU': {k.split('@')[1]: v for k, v in metrics.items() if k.startswith('tad/mAP@')},
        'features': str(store)}


AVA_CONFIG = 'configs/detection/ava/vit-test-p8_videomaev2_1xb8-8x4x1-40e-adamw_synthetic-ava.py'


def stage_ava(demo: Demo) -> None:
    """AVA-like spatio-temporal detection: the tiny ViT + RoI head trained end to end, frame mAP@0.5."""
    metrics, test_dir = train_and_test(demo, 'ava', AVA_CONFIG, relocate_data(AVA_CONFIG, demo.data_root))
    shutil.copyfile(test_dir / 'ava_per_class_ap.png', demo.work_dir / 'ava_per_class_ap.png')
    demo.results['ava'] = {'mAP': _metric(metrics, 'mAP'), 'random_mAP': _metric(metrics, 'mAP_random'),
                           'random_boxes_mAP': _metric(metrics, 'mAP_random_boxes'),
                           'ceiling_mAP': _metric(metrics, 'mAP_oracle')}


def _metric(metrics: Mapping[str, float], name: str) -> float:
    """A metric by its name without the evaluator's prefix (``ava/mAP`` -> ``mAP``)."""
    found = [v for k, v in metrics.items() if k == name or k.endswith('/' + name)]
    if len(found) != 1:
        raise DemoError(f'expected one metric {name!r} in {sorted(metrics)}')
    return float(found[0])


# --- the run --------------------------------------------------------------------------------------------------------
STAGES: dict[str, Callable[[Demo], None]] = {
    'data': stage_data,
    'pretrain': stage_pretrain,
    'reconstruction': stage_reconstruction,
    'features': stage_features,
    'probe': stage_probe,
    'finetune': stage_finetune,
    'ava': stage_ava,
    'thumos': stage_thumos,
}


# The stage whose results each stage reads (its checkpoint or feature stores).
STAGE_INPUT = {'reconstruction': 'pretrain', 'features': 'pretrain', 'probe': 'features', 'finetune': 'pretrain',
               'thumos': 'finetune'}


def _earlier_summary(path: Path, preset: str) -> dict[str, Any]:
    """The ``results.json`` an earlier run of the same preset and demo version wrote, or {} (none, or unreadable)."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    same = earlier.get('preset') == preset and earlier.get('demo_version') == DEMO_VERSION
    return earlier if same else {}


def run(demo: Demo, stages: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the stages in order and write ``<work>/results.json``; returns the results.

    With ``stages`` (a subset) the entries of the stages not run are kept from the ``results.json`` already there,
    and a stage whose input stage is not in the subset reads that stage's results (its checkpoint, its feature
    stores) from there.
    """
    names = list(STAGES) if stages is None else list(stages)
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise ValueError(f'unknown demo stages {unknown}; choose from {list(STAGES)}')
    path = demo.work_dir / 'results.json'
    # A run of some stages reads its input stages' results from the last run, and keeps the others' entries.
    kept = _earlier_summary(path, demo.preset) if stages is not None else {}
    for i, name in enumerate(names):
        need = STAGE_INPUT.get(name)
        if need is None or need in names[:i]:
            continue
        found = kept.get('results', {}).get(need)
        checkpoint = (found or {}).get('checkpoint')
        if not found or (checkpoint is not None and not Path(checkpoint).is_file()):
            raise DemoError(f"stage '{name}' uses the results of stage '{need}', which no earlier run of the "
                            f"{demo.preset!r} preset left in {path}" + (f' (its checkpoint {checkpoint} is gone)'
                                                                         if checkpoint else '')
                            + f': add {need} before {name} to --stages, or run the whole demo once')
        demo.results.setdefault(need, found)
    demo.work_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for i, name in enumerate(names, 1):
        print(f'[{i}/{len(names)}] {name}  (elapsed {_clock(time.perf_counter() - start)})', flush=True)
        t0 = time.perf_counter()
        STAGES[name](demo)
        demo.timings[name] = round(time.perf_counter() - t0, 1)
    demo.timings['total'] = round(time.perf_counter() - start, 1)
    summary = {'results': {**kept.get('results', {}), **demo.results},
               'seconds': {**kept.get('seconds', {}), **demo.timings}, 'reused': demo.reused,
               'stages_run': names, 'preset': demo.preset, 'demo_version': DEMO_VERSION}
    write_json_atomic(path, summary, sort_keys=True, default=float)
    from_earlier = [k for k in STAGES if k in summary['results'] and k not in names]
    demo.results = dict(summary['results'])  # the table shows what results.json holds
    print(results_table(demo, from_earlier if stages is not None else ()))
    return summary


def _clock(seconds: float) -> str:
    return f'{int(seconds // 60)}:{int(seconds % 60):02d}'


def results_table(demo: Demo, from_earlier: Sequence[str] = ()) -> str:
    """The closing results table: each number next to the baseline that says what it means. ``from_earlier``: the
    stages whose rows come from an earlier run (a ``--stages`` subset)."""
    r = demo.results
    rows: list[tuple[str, str, str, str]] = []
    if 'pretrain' in r:
        rows.append(('pre-training (dual masking)', 'loss first -> last', f"{r['pretrain']['first_loss']:.4f} -> "
                     f"{r['pretrain']['last_loss']:.4f}", ''))
    if 'probe' in r:
        pre, rnd = r['probe']['pretrained'], r['probe']['random']
        rows.append(('linear probe (cached features)', 'top-1, pre-trained vs random init',
                     f"{pre['linear_top1']:.3f}", f"{rnd['linear_top1']:.3f} (random init)"))
        rows.append(('k-NN (cached features)', 'top-1, pre-trained vs random init', f"{pre['knn_top1']:.3f}",
                     f"{rnd['knn_top1']:.3f} (random init)"))
    if 'finetune' in r:
        f = r['finetune']
        rows.append(('fine-tune, multi-view test', 'top-1 / top-5', f"{f['top1']:.3f} / {f['top5']:.3f}",
                     f"{f['chance_top1']:.3f} (chance)"))
    if 'ava' in r:
        rows.append(('AVA-like detection', 'frame mAP@0.5', f"{r['ava']['mAP']:.3f}",
                     f"{r['ava']['random_mAP']:.3f} (random scores on the proposals)"))
        rows.append(('', 'random detections', '', f"{r['ava']['random_boxes_mAP']:.3f} (random boxes and scores)"))
        # The same proposals with perfect action scores: what the person boxes allow (they miss ~15 % of people).
        rows.append(('', 'ceiling of the proposals', '', f"{r['ava']['ceiling_mAP']:.3f} (perfect scores)"))
    if 'thumos' in r:
        rows.append(('THUMOS-like localization', 'average mAP (tIoU 0.3:0.7)', f"{r['thumos']['average_mAP']:.3f}",
                     f"{r['thumos']['random_average_mAP']:.3f} (random predictions)"))
    table = text_table(('task', 'metric', 'result', 'baseline'), rows).splitlines()
    rule = table[1]
    out = ['', rule, *table, rule, f"total {_clock(demo.timings.get('total', 0.0))}"
           + (f"; re-used from an earlier run: {', '.join(demo.reused)}" if demo.reused else ''),
           *([f"rows of the stages not run now ({', '.join(from_earlier)}) are from the earlier run's results.json"]
             if from_earlier else []),
           f'outputs in {demo.work_dir}: results.json, loss_curve.png, reconstruction.png, '
           'cls_confusion.png, ava_per_class_ap.png, thumos_map_vs_tiou.png, thumos_per_class_ap.png']
    return '\n'.join(out)
