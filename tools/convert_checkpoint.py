"""Convert a VideoMAE (V1/V2) checkpoint between the official, mmaction2 and Hugging Face layouts.

Reads every layout :func:`backbone.load_checkpoint` reads (official fine-tuned/distilled/pre-training files,
``_orig_mod.`` / ``module.`` / ``backbone.`` prefixes, mmaction2, transformers 4 and 5) and writes:

* ``--to official``: ``{'module': state_dict}`` for a fine-tuned model (as the released files), ``{'model':
  state_dict}`` for a pre-training model (encoder + decoder);
* ``--to mmaction2``: ``{'state_dict': ..., 'meta': {...}}`` with ``backbone.``/``cls_head.fc_cls.`` names; give the
  input size (``--img-size``/``--num-frames``) to also write the persistent ``backbone.pos_embed`` buffer so that the
  file loads strictly;
* ``--to hf`` with an OUT folder (a name without ``.pth``/``.pt``/``.bin``/``.safetensors``): ``OUT/model.safetensors``
  in transformers 5 names and ``OUT/config.json`` (a ``VideoMAEConfig``: sizes read from the weights, head counts from
  the arch presets, ``--img-size``/``--num-frames`` for the position table, ``id2label`` from ``--labels``), which
  ``transformers.VideoMAEForVideoClassification`` / ``VideoMAEModel`` / ``VideoMAEForPreTraining.from_pretrained(OUT)``
  load as they are; with an OUT file, the bare state dict only.

IN may be a released name (``vit_b_k710_distill``; docs/checkpoints.md#released-weights-by-name). An OUT ending in
``.safetensors`` is written with safetensors (flat dict). Each file is written under a temporary name and renamed, so
none is ever half-written. Errors are one line on stderr with exit status 2. Examples are in the
README's checkpoint section; the layouts in docs/checkpoints.md.
"""
from __future__ import annotations

import argparse
import sys

PROG = 'convert_checkpoint'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0])
    parser.add_argument('input', metavar='IN', help='checkpoint in any supported layout (.pth/.pt/.bin/.safetensors), '
                                                    'or a released name (vit_b_k710_distill)')
    parser.add_argument('output', metavar='OUT', help='file to write (.safetensors: flat safetensors file); for --to '
                                                      'hf a folder (model.safetensors + config.json)')
    parser.add_argument('--to', required=True, choices=('official', 'mmaction2', 'hf'), help='target layout')
    parser.add_argument('--label-map', metavar='JSON',
                        help='slice a K710 head: a json list, new row i = old row list[i] (misc/label_710to400.json)')
    grid = parser.add_argument_group(
        'input size', 'the input size the persistent backbone.pos_embed is written for (--to mmaction2; given any of '
        'these, the rest default to 224 px / 16 frames and the tubelet/patch of the weights), or config.json\'s '
        'image_size/num_frames (--to hf folder; default 224 / 16)')
    grid.add_argument('--img-size', type=int, help='frame size in pixels (default 224)')
    grid.add_argument('--num-frames', type=int, help='frames per clip (default 16)')
    grid.add_argument('--tubelet', type=int, help='tubelet size (default: read from patch_embed.proj.weight)')
    grid.add_argument('--patch', type=int, help='patch size (default: read from patch_embed.proj.weight)')
    hf = parser.add_argument_group('--to hf folder')
    hf.add_argument('--labels', metavar='NAME|FILE',
                    help="class names for config.json's id2label: k400, k700, k710, ssv2 or a label file (default: "
                         'the label set of a released IN, unless --label-map slices its head; else LABEL_i)')
    hf.add_argument('--num-heads', type=int, help='attention heads (default: the arch preset of the width/depth)')
    hf.add_argument('--decoder-num-heads', type=int, help='decoder attention heads of a pre-training model (default: '
                                                          'the preset)')
    parser.add_argument('--unsafe-pickle', action='store_true',
                        help='torch.load with weights_only=False (only for trusted raw training/mmengine files)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:  # installed with `pip install -e .`; no sys.path edits here
        from backbone import CheckpointError
        from tasks.engine.checkpoint import WEIGHT_SUFFIXES, convert_checkpoint_file, write_hf_folder
    except ImportError as err:
        print(f'{PROG}: error: cannot import the suite ({err}); install it with `pip install -e .` or set PYTHONPATH '
              'to the repository root', file=sys.stderr)
        return 2
    try:
        if args.to == 'hf' and not args.output.endswith(WEIGHT_SUFFIXES):
            print(write_hf_folder(args.input, args.output, labels=args.labels, label_map=args.label_map,
                                  img_size=args.img_size, num_frames=args.num_frames, num_heads=args.num_heads,
                                  decoder_num_heads=args.decoder_num_heads, weights_only=not args.unsafe_pickle))
        else:
            print(convert_checkpoint_file(args.input, args.output, args.to, label_map=args.label_map,
                                          img_size=args.img_size, num_frames=args.num_frames, tubelet=args.tubelet,
                                          patch=args.patch, weights_only=not args.unsafe_pickle))
    except (CheckpointError, ValueError, OSError) as err:
        print(f'{PROG}: error: {" ".join(str(err).split())}', file=sys.stderr)  # one line, whatever the text holds
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
