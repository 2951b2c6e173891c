"""Convert a VideoMAE (V1/V2) checkpoint between the official, mmaction2 and Hugging Face layouts.

Reads every layout :func:`backbone.load_checkpoint` reads (official fine-tuned/distilled/pre-training files,
``_orig_mod.`` / ``module.`` / ``backbone.`` prefixes, mmaction2, transformers 4 and 5) and writes:

* ``--to official``: ``{'module': state_dict}`` for a fine-tuned model (as the released files), ``{'model':
  state_dict}`` for a pre-training model (encoder + decoder);
* ``--to mmaction2``: ``{'state_dict': ..., 'meta': {...}}`` with ``backbone.``/``cls_head.fc_cls.`` names; give the
  input size (``--img-size``/``--num-frames``) to also write the persistent ``backbone.pos_embed`` buffer so that the
  file loads strictly;
* ``--to hf``: a bare state dict in transformers 5 names (``VideoMAEForVideoClassification`` /
  ``VideoMAEForPreTraining``).

An OUT ending in ``.safetensors`` is written with safetensors (flat dict). The file is written under a temporary name
and renamed, so OUT is never half-written. Examples::

    python tools/convert_checkpoint.py vit_g_hybrid_pt_1200e_k710_ft.pth vit_g_k400.pth --to official \\
        --label-map label_710to400.json
    python tools/convert_checkpoint.py vit_b_k710_dl_from_giant.pth vit_b_mmaction.pth --to mmaction2 --img-size 224
    python tools/convert_checkpoint.py vit_s_k710_dl_from_giant.pth model.safetensors --to hf

Errors are one line on stderr with exit status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

PROG = 'convert_checkpoint'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0])
    parser.add_argument('input', metavar='IN', help='checkpoint in any supported layout (.pth/.pt/.bin/.safetensors)')
    parser.add_argument('output', metavar='OUT', help='file to write (.safetensors: flat safetensors file)')
    parser.add_argument('--to', required=True, choices=('official', 'mmaction2', 'hf'), help='target layout')
    parser.add_argument('--label-map', metavar='JSON',
                        help='slice a K710 head: a json list, new row i = old row list[i] (misc/label_710to400.json)')
    grid = parser.add_argument_group(
        'mmaction2 pos_embed', 'input size the persistent backbone.pos_embed is written for (--to mmaction2 only); '
        'given any of these, the rest default to 224 px / 16 frames and the tubelet/patch of the weights')
    grid.add_argument('--img-size', type=int, help='frame size in pixels (default 224)')
    grid.add_argument('--num-frames', type=int, help='frames per clip (default 16)')
    grid.add_argument('--tubelet', type=int, help='tubelet size (default: read from patch_embed.proj.weight)')
    grid.add_argument('--patch', type=int, help='patch size (default: read from patch_embed.proj.weight)')
    parser.add_argument('--unsafe-pickle', action='store_true',
                        help='torch.load with weights_only=False (only for trusted raw training/mmengine files)')
    return parser.parse_args(argv)


def token_grid(args: argparse.Namespace, state: dict[str, torch.Tensor]) -> tuple[int, int, int] | None:
    """(T', H', W') for mmaction2's pos_embed, or None when no size option was given."""
    options = (args.img_size, args.num_frames, args.tubelet, args.patch)
    if all(value is None for value in options):
        return None
    if args.to != 'mmaction2':
        raise ValueError('--img-size/--num-frames/--tubelet/--patch set the pos_embed grid of --to mmaction2 only')
    weight = state.get('patch_embed.proj.weight')
    if weight is None or weight.dim() != 5:
        raise ValueError('the checkpoint has no Conv3d patch_embed.proj.weight to take the tubelet/patch size from')
    # Conv3d weight (C, 3, tubelet, patch, patch).
    for flag, given, actual in (('--tubelet', args.tubelet, weight.shape[2]), ('--patch', args.patch, weight.shape[3])):
        if given is not None and given != actual:
            raise ValueError(f'{flag} {given} disagrees with patch_embed.proj.weight {tuple(weight.shape)} '
                             f'(kernel {actual})')
    tubelet, patch = weight.shape[2], weight.shape[3]
    img_size = 224 if args.img_size is None else args.img_size
    num_frames = 16 if args.num_frames is None else args.num_frames
    if img_size <= 0 or num_frames <= 0 or img_size % patch or num_frames % tubelet:
        raise ValueError(f'{num_frames} frames x {img_size} px do not tile into {tubelet}x{patch}x{patch} tubelets')
    return num_frames // tubelet, img_size // patch, img_size // patch


def write_atomic(obj: dict, path: Path, safetensors_meta: dict[str, str] | None = None) -> None:
    """torch.save (or safetensors) to a temporary file next to ``path``, then rename it over ``path``."""
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
    try:
        if path.suffix == '.safetensors':
            from safetensors.torch import save_file
            seen: set[int] = set()
            flat = {}
            for key, value in obj.items():  # safetensors refuses tensors that share memory
                value = value.contiguous()
                ptr = value.untyped_storage().data_ptr()
                flat[key] = value.clone() if ptr in seen else value
                seen.add(ptr)
            save_file(flat, str(tmp), metadata=safetensors_meta)
        else:
            torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def convert(args: argparse.Namespace) -> str:
    """Run the conversion; returns the one-line summary."""
    from backbone.checkpoint import convert_state_dict, to_official

    src, out = Path(args.input), Path(args.output)
    # Check the destination before reading what may be gigabytes (torch.save reports it as a RuntimeError). A missing
    # output folder is created (as `checkpoints/` in configs/README.md), but only once the input has been read.
    blocker = next((p for p in (out.parent, *out.parent.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ValueError(f'{out}: cannot create the output folder {out.parent}: {blocker} is not a folder')
    if out.is_dir():
        raise ValueError(f'{out}: is a folder; give a file name')
    weights_only = not args.unsafe_pickle
    state, layout = to_official(src, weights_only)  # read once; the grid needs the patch-embed shape
    grid = token_grid(args, state)
    converted = convert_state_dict(state, args.to, grid=grid, label_map=args.label_map)
    is_pretrain = any(k.startswith(('decoder.', 'encoder_to_decoder.', 'encoder.norm.')) or k == 'mask_token'
                      for k in state)
    meta = {'source': src.name, 'source_layout': layout, 'converted_by': 'tools/convert_checkpoint.py'}
    if out.suffix == '.safetensors':
        payload, wrapper = converted, 'flat safetensors'
    elif args.to == 'official':
        wrapper = 'model' if is_pretrain else 'module'  # how the official code saves each kind
        payload = {wrapper: converted}
    elif args.to == 'mmaction2':
        payload = {'state_dict': converted,
                   'meta': {**meta, 'label_map': args.label_map, 'pos_embed_grid': list(grid) if grid else None}}
        wrapper = 'state_dict'
    else:
        payload, wrapper = converted, 'bare'
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(payload, out, safetensors_meta={'format': 'pt', **meta})
    numel = sum(v.numel() for v in converted.values())
    dtypes = ', '.join(sorted({str(v.dtype).removeprefix('torch.') for v in converted.values()}))
    notes = [f'{layout} -> {args.to} ({wrapper})', f'{len(converted)} tensors', f'{numel:,} values ({dtypes})']
    if args.label_map:
        head = next(converted[k] for k in ('head.weight', 'cls_head.fc_cls.weight', 'classifier.weight')
                    if k in converted)
        notes.append(f'head sliced to {head.shape[0]} classes')
    if grid:
        notes.append(f'pos_embed for grid {grid}')
    return f'wrote {out}: ' + ', '.join(notes)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import backbone  # noqa: F401  (installed with `pip install -e .`; no sys.path edits here)
    except ImportError as err:
        print(f'{PROG}: error: cannot import the backbone package ({err}); install the suite with '
              '`pip install -e .` or set PYTHONPATH to the repository root', file=sys.stderr)
        return 2
    from backbone.checkpoint import CheckpointError
    try:
        print(convert(args))
    except (CheckpointError, ValueError, OSError) as err:
        message = ' '.join(str(err).split())  # one line, whatever the exception text holds
        print(f'{PROG}: error: {message}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
