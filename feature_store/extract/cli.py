"""Command line of the extraction (``tools/extract_features.py``): options -> :class:`ExtractConfig` ->
:func:`extract_to_store`. Exit status: 0 done, 2 bad arguments or an incompatible store, 3 some videos could not be
decoded."""
from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tasks.data.video import BACKENDS

from ..errors import FeatureStoreError
from .inputs import ExtractError
from .preprocess import Preprocess
from .provenance import ExtractConfig
from .run import ExtractResult, extract_to_store
from .threads import DECODE_STALL, decode_share_max

__all__ = ['PROG', 'build_parser', 'config_from_args', 'main']

PROG = 'extract_features'


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r'\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*', text)
    if not m:
        raise ValueError(f'expected HxW (e.g. 224x224) or a single side, got {text!r}')
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) else h
    if h < 1 or w < 1:
        raise ValueError(f'sizes must be positive, got {text!r}')
    return h, w


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f'must be >= 1, got {value}')
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float('inf'):
        raise ValueError(f'must be a positive number, got {text}')
    return value


def build_parser() -> argparse.ArgumentParser:
    def typed(fn: Callable[[str], Any], name: str) -> Callable[[str], Any]:
        def parse(text: str) -> Any:
            try:
                return fn(text)
            except ValueError as e:
                raise argparse.ArgumentTypeError(str(e)) from None
        parse.__name__ = name
        return parse

    size, positive = typed(_size, 'size'), typed(_positive, 'positive int')
    parser = argparse.ArgumentParser(
        prog=PROG, description='Extract VideoMAE V2 clip features of untrimmed videos into one HDF5 feature store '
                               '(resumable; run under torchrun for several processes/GPUs; one run per store at a '
                               'time: OUT.h5.lock). Exit status: 0 done, 2 bad arguments, incompatible store, store '
                               'locked by another run, a failed write, or shards of other ranks that rank 0 cannot '
                               'see (OUT not on a shared file system), 3 some videos could not be decoded (every '
                               'rank returns 3; torchrun itself then reports a failure with status 1).')
    parser.add_argument('input', metavar='INPUT', help='a video file, a folder of videos (--recursive: with its '
                                                       'sub-folders), or a text file of video paths (one per line, '
                                                       'relative to the file\'s folder)')
    parser.add_argument('--out', required=True, metavar='OUT.h5', help='feature store to create or append to')
    parser.add_argument('--recursive', action='store_true', help='search the sub-folders of a folder INPUT too')
    parser.add_argument('--id-from', choices=('stem', 'relpath'), default='stem',
                        help='video ids: stem, the file name up to the first "." (the official extractor\'s names), '
                             'or relpath, the path relative to the folder (or the list\'s folder) without the '
                             'suffix, e.g. a/x.mp4 -> a/x, for equal names in different folders (default stem)')
    kind = parser.add_argument_group('feature kind (docs/feature_caching.md#feature-maps-for-ava)')
    kind.add_argument('--kind', choices=('pooled', 'featmap'), default='pooled',
                      help="pooled: one C-vector per window (default); featmap: per AVA keyframe the detector "
                           "backbone's C x H' x W' map of the keyframe-centred clip, mean over time, for the RoI "
                           'head; needs --keyframes and --config (the detection config: its test clips, model and '
                           'weights); the window and preprocessing options below do not apply')
    kind.add_argument('--keyframes', action='append', metavar='FILE',
                      help='--kind featmap: an AVA csv, or lines "video_id,timestamp"; repeat for several files '
                           '(e.g. the train and val csv); INPUT is the folder of the videos')
    model = parser.add_argument_group('model')
    model.add_argument('--arch', help='backbone preset: vit_small, vit_base, vit_large, vit_huge, vit_giant, vit_test '
                                      '(default vit_giant, or the config\'s)')
    model.add_argument('--checkpoint', help='weights, any VideoMAE layout (official, mmaction2, HF); required '
                                            'unless --config names them (load_from) or --random-init is given')
    model.add_argument('--random-init', action='store_true',
                       help='no weights: a model randomly initialised from --seed (features of an untrained model, '
                            'for tests and baselines)')
    model.add_argument('--config', help='mmengine/mmaction2 config: arch, img_size, all_frames, patch_size from '
                                        'model.backbone and the checkpoint from load_from (explicit options win); its '
                                        'img_size and all_frames must equal the input size and --clip-len')
    model.add_argument('--seed', type=int, default=0, help='seed of --random-init (default 0)')
    model.add_argument('--img-size', type=size, help='frame size HxW the model is built for (default: the input '
                                                     'size; another size resizes the position table)')
    model.add_argument('--frames', type=positive, help='clip length the model is built for (default: --clip-len; '
                                                       'another length resizes the position table)')
    model.add_argument('--patch-size', type=positive, help="spatial patch size, where it is not the preset's (e.g. "
                                                          "8 for the tiny 8-px configs; default: the preset's, "
                                                          "or the config's)")
    model.add_argument('--explicit-attn', action='store_true',
                       help='the official explicit softmax attention instead of fused SDPA')
    win = parser.add_argument_group(
        'windows (defaults: the official THUMOS14 extractor, docs/thumos14.md#official-feature-extractor)')
    win.add_argument('--clip-len', type=positive, default=16, help='frames per window (16)')
    win.add_argument('--frame-interval', type=positive, default=1, help='step between frames of a window (1)')
    win.add_argument('--stride', type=positive, default=4, help='frames between window starts (4)')
    win.add_argument('--fps', type=typed(_positive_float, 'positive number'), metavar='N',
                     help='resample every video to N frames per second by its timestamps first (windows and stride '
                          'then count resampled frames): one uniform time axis for variable or mixed frame rates, '
                          "as video_features' extraction_fps; default: the native frames (the official protocol)")
    pre = parser.add_argument_group(
        'preprocessing (defaults: the official TAD preprocessing, squash to 224x224 without mean/std)')
    pre.add_argument('--resize', type=size, help='squash every frame to HxW (height x width), aspect ratio lost: '
                                                 'the official TAD preprocessing (default 224x224)')
    pre.add_argument('--short-side', type=positive, metavar='N', help='instead: short side to N px, then --crop')
    pre.add_argument('--crop', choices=('center',), default='center', help='crop after --short-side: an N x N '
                                                                          'central crop')
    pre.add_argument('--normalize', action=argparse.BooleanOptionalAction, default=False,
                     help='ImageNet mean/std after /255, as the models were trained; the official TAD features are '
                          'made without (default: --no-normalize)')
    _add_execution_args(parser, positive)
    return parser


def _add_execution_args(parser: argparse.ArgumentParser, positive: Callable[[str], int]) -> None:
    """The options that decide how a run goes (and the storage dtype), not what the model computes."""
    run = parser.add_argument_group('execution')
    run.add_argument('--dtype', choices=('fp32', 'bf16'), default='fp32', help='compute dtype (default fp32)')
    run.add_argument('--store-dtype', choices=('fp32', 'fp16'),
                     help='dtype of the stored rows: fp16 halves the file and rounds every value to 11 significant '
                          'bits (a store holds one dtype; default fp32, fp16 for --kind featmap)')
    run.add_argument('--batch-size', type=positive, default=None,
                     help='windows per forward (default: 16 on CUDA, 4 on the CPU, where larger batches outgrow the '
                          'caches)')
    run.add_argument('--num-workers', type=int, help='decoding processes; 0: a background thread (default: 2 on the '
                                                     'CPU; on CUDA the cores per GPU on this machine less one, at '
                                                     'most 8)')
    run.add_argument('--device', help='cpu, cuda, cuda:N (default: cuda if available; one GPU per torchrun rank)')
    run.add_argument('--compile', action='store_true',
                     help="torch.compile the backbone's blocks: the same features to 1e-5, so a store made without "
                          'it is appended to; compiles at the first batches (on the CPU once the model threads are '
                          'decided), whose time is reported apart from the clips/s. Where torch.compile cannot run, '
                          'says why and runs eager')
    run.add_argument('--model-threads', type=positive, metavar='N',
                     help="the model's intra-op threads on the CPU (default: every core when decoding is cheap "
                          "next to the model, measured over the first batches: at most 1/(%g x cores) of the model's "
                          'time per decoder, %.1f%%%% on 2 cores; else the cores the decoders leave; never more than '
                          'the threads torch has at the start)' % (DECODE_STALL, 100 * decode_share_max(2, 0)))
    run.add_argument('--backend', choices=BACKENDS, default='auto',
                     help='video decoder: auto (decord, or PyAV for files decord cannot read, such as AV1; the '
                          'store records which read each video), decord or pyav (default auto)')
    run.add_argument('--overwrite', action='store_true',
                     help='replace OUT.h5 instead of appending to it, and discard leftovers of interrupted runs made '
                          'with other settings (part files and shards made with these settings are still reused)')
    run.add_argument('--wait-lock', action='store_true',
                     help='if another run is writing OUT.h5, wait for it to finish instead of stopping (exit 2); '
                          'then extract only what it did not')
    run.add_argument('--no-progress', action='store_true', help='no progress bar')


def _config_model(path: str) -> dict[str, Any]:
    """arch / img_size / all_frames / patch_size / checkpoint from an mmengine config (``model.backbone`` and
    ``load_from``)."""
    from mmengine.config import Config

    cfg = Config.fromfile(path)
    model = cfg.get('model', {})
    backbone = model.get('backbone', model)
    if backbone.get('type') not in (None, 'VideoMAEv2ViT', 'mmaction.VideoMAEv2ViT'):
        raise ValueError(f'{path}: model.backbone.type is {backbone.get("type")!r}, not VideoMAEv2ViT')
    found: dict[str, Any] = {}
    if 'arch' in backbone:
        found['arch'] = backbone['arch']
    if 'img_size' in backbone:
        img = backbone['img_size']
        found['img_size'] = (int(img), int(img)) if isinstance(img, int) else tuple(int(v) for v in img)
    if 'all_frames' in backbone:
        found['frames'] = int(backbone['all_frames'])
    if backbone.get('patch_size') is not None:
        found['patch_size'] = int(backbone['patch_size'])
    ckpt = cfg.get('load_from') or backbone.get('pretrained')
    if ckpt:
        # mmengine reads load_from relative to the working directory; a path next to the config is accepted too
        beside = Path(path).parent / ckpt
        found['checkpoint'] = str(beside if not Path(ckpt).exists() and beside.exists() else ckpt)
    return found


def _check_config_model(path: str, from_cfg: dict[str, Any], args: argparse.Namespace, pre: Preprocess) -> None:
    """Refuse a config whose model takes other clips than the windows cut (``ValueError`` naming both values and the
    option to change): a model built for 8 frames at 96x96 given 16-frame 96x128 windows would resize its position
    table silently. An explicit ``--frames`` / ``--img-size`` overrides the config and is taken as meant."""
    frames = from_cfg.get('frames')
    if frames is not None and args.frames is None and frames != args.clip_len:
        raise ValueError(f'--config {path}: model.backbone.all_frames is {frames}, but the windows have --clip-len '
                         f'{args.clip_len} frames: pass --clip-len {frames} (or --frames {args.clip_len} to build the '
                         f'model for {args.clip_len}-frame clips instead)')
    img = from_cfg.get('img_size')
    if img is not None and args.img_size is None and tuple(img) != tuple(pre.size):
        (h, w), (ih, iw) = img, pre.size
        if pre.resize == 'squash':
            given, fix = f'--resize {ih}x{iw}' + ('' if args.resize else ' (the default)'), f'--resize {h}x{w}'
        else:
            given = f'--short-side {pre.short_side} (a {ih}x{iw} crop)'
            fix = f'--short-side {h}' if h == w else f'--resize {h}x{w}'
        raise ValueError(f'--config {path}: model.backbone.img_size is {h}x{w}, but the frames are {given}: pass '
                         f'{fix} (or --img-size {ih}x{iw} to build the model for {ih}x{iw} frames instead)')


def _featmap_config(args: argparse.Namespace) -> ExtractConfig:
    """``--kind featmap``: the clips, model and weights of the detection config's test set
    (``test_dataloader.dataset``, ``model.backbone``, ``model.data_preprocessor``); explicit --arch, --checkpoint,
    --random-init, --patch-size, --img-size and --frames win."""
    from mmengine.config import Config

    from .featmaps import KeyframeClips, read_keyframes

    if not args.keyframes or not args.config:
        raise ValueError('--kind featmap needs --keyframes FILE (an AVA csv or "video_id,timestamp" lines) and '
                         '--config (the detection config whose test clips and backbone the maps are made with)')
    given = [o for o, v in (('--resize', args.resize), ('--short-side', args.short_side), ('--fps', args.fps),
                            ('--normalize', args.normalize)) if v]
    if given:
        raise ValueError(f'--kind featmap takes its clips from --config {args.config}; drop {", ".join(given)}')
    cfg = Config.fromfile(args.config)
    data = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    pre = cfg.get('model', {}).get('data_preprocessor') or {}
    from_cfg = _config_model(args.config)
    clips = KeyframeClips(read_keyframes(args.keyframes), short_side=data.get('test_short_side', 256),
                          timestamp_start=float(data.get('timestamp_start', 900)), fps=data.get('fps'),
                          **{k: tuple(pre[k]) for k in ('mean', 'std') if k in pre},
                          sources=tuple(str(p) for p in args.keyframes))
    checkpoint = args.checkpoint or (None if args.random_init else from_cfg.get('checkpoint'))
    if checkpoint is None and not args.random_init:
        raise ValueError(f'no weights given: pass --checkpoint CKPT (a trained detector or a backbone; --config '
                         f'{args.config} names none), or --random-init')
    if checkpoint is not None and args.random_init:
        raise ValueError('--random-init and --checkpoint exclude each other: drop one')
    return ExtractConfig(
        arch=args.arch or from_cfg.get('arch', 'vit_giant'), checkpoint=checkpoint, seed=args.seed,
        img_size=args.img_size or from_cfg.get('img_size'),
        frames=args.frames or from_cfg.get('frames'), clip_len=int(data.get('clip_len', 16)),
        frame_interval=int(data.get('frame_interval', 4)), keyframe_clips=clips, dtype=args.dtype,
        store_dtype={'fp32': 'float32', 'fp16': 'float16'}[args.store_dtype or 'fp16'], batch_size=args.batch_size,
        num_workers=args.num_workers, device=args.device, backend=args.backend, fused_attn=not args.explicit_attn,
        patch_size=args.patch_size or from_cfg.get('patch_size'), compile=args.compile,
        model_threads=args.model_threads)


def config_from_args(args: argparse.Namespace) -> ExtractConfig:
    """:class:`ExtractConfig` from parsed command-line arguments (``ValueError`` names the bad option)."""
    if args.kind == 'featmap':
        return _featmap_config(args)
    if args.keyframes:
        raise ValueError('--keyframes belongs to --kind featmap')
    from_cfg = _config_model(args.config) if args.config else {}
    if args.resize is not None and args.short_side is not None:
        raise ValueError('--resize (squash) and --short-side (resize + crop) exclude each other')
    if args.short_side is not None:
        pre = Preprocess('short_side', (args.short_side, args.short_side), args.short_side, normalize=args.normalize)
    else:
        pre = Preprocess('squash', args.resize or (224, 224), normalize=args.normalize)
    checkpoint = args.checkpoint or from_cfg.get('checkpoint')
    origin = '--checkpoint' if args.checkpoint else f'load_from of {args.config}'
    if checkpoint is not None:
        from backbone import CheckpointError, resolve_checkpoint

        # a released name becomes its file in the Hugging Face cache (docs/checkpoints.md#released-weights-by-name)
        try:
            checkpoint = str(resolve_checkpoint(checkpoint))
        except CheckpointError as err:
            raise ValueError(f'{origin}: {err}') from None
    if checkpoint is not None and args.random_init:
        raise ValueError(f'--random-init and {origin} ({checkpoint}) exclude each other: drop one')
    if checkpoint is None and not args.random_init:
        raise ValueError('no weights given: pass --checkpoint CKPT (or a --config with load_from); features of a '
                         'randomly initialised model need --random-init (seeded by --seed)')
    if args.config:
        _check_config_model(args.config, from_cfg, args, pre)
    return ExtractConfig(
        arch=args.arch or from_cfg.get('arch', 'vit_giant'), checkpoint=checkpoint, seed=args.seed,
        img_size=args.img_size or from_cfg.get('img_size'), frames=args.frames or from_cfg.get('frames'),
        clip_len=args.clip_len, frame_interval=args.frame_interval, stride=args.stride, sample_fps=args.fps,
        preprocess=pre,
        dtype=args.dtype, store_dtype={'fp32': 'float32', 'fp16': 'float16'}[args.store_dtype or 'fp32'],
        batch_size=args.batch_size, num_workers=args.num_workers, device=args.device,
        backend=args.backend, fused_attn=not args.explicit_attn,
        patch_size=args.patch_size or from_cfg.get('patch_size'), compile=args.compile,
        model_threads=args.model_threads)


def _announce(block: str) -> None:
    print(block, file=sys.stderr, flush=True)


def _speed(result: ExtractResult) -> str:
    """'N clips, R clips/s' of the steady state, with the warm-up (first batches, compilation) apart."""
    if not result.warmup_clips or not result.clips_per_s:
        rate = result.num_clips / result.seconds if result.seconds > 0 else 0.0
        return f'{result.num_clips} clips, {rate:.1f} clips/s'
    n, share = result.model_threads, result.decode_share
    threads = f'; {n} model thread{"s" if n > 1 else ""}' if n else ''
    if n and share is not None:
        threads += f' (decoding {100 * share:.1f} % of the model\'s time)'
    return (f'{result.num_clips} clips, {result.clips_per_s:.1f} clips/s after a warm-up of '
            f'{result.warmup_seconds:.1f} s for the first {result.warmup_clips} clips'
            + (' (compilation included)' if result.compiled else '') + threads)


def main(argv: Sequence[str] | None = None) -> int:
    """``tools/extract_features.py``; returns the exit status (0, 2 or 3)."""
    from backbone import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        result = extract_to_store(args.input, args.out, cfg, overwrite=args.overwrite, progress=not args.no_progress,
                                  wait_lock=args.wait_lock, recursive=args.recursive, id_from=args.id_from,
                                  announce=_announce)
    except (ExtractError, FeatureStoreError, CheckpointError, ValueError, KeyError, OSError) as e:
        message = ' '.join(str(e).split())  # one line, whatever the exception text holds
        print(f'{PROG}: error: {message}', file=sys.stderr)
        return 2
    if int(os.environ.get('RANK', '0')) == 0:
        print(f'{result.out}: {len(result.extracted)} videos extracted ({_speed(result)}), '
              f'{len(result.skipped)} already complete, {len(result.failed)} failed', file=sys.stderr)
        if result.variable_frame_rate:
            print(f'{PROG}: {len(result.variable_frame_rate)} of the extracted videos have a variable frame rate '
                  '(flagged variable_frame_rate in the store; their rows are placed by the container timestamps)',
                  file=sys.stderr)
        if result.failed:
            print(f'{PROG}: {len(result.failed)} videos could not be decoded, listed in '
                  f'{result.out.name}.failures.json:', file=sys.stderr)
            for f in result.failed:
                listed = f', {f["line"]}' if 'line' in f else ''
                print(f'  {f["video_id"]} ({f["path"]}{listed}): {f["reason"]}', file=sys.stderr)
    return 3 if result.failed else 0
