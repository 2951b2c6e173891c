"""Exporting to Hugging Face transformers: the ``config.json`` of a VideoMAE state dict in transformers names
(docs/checkpoints.md#exporting-to-transformers). The weights themselves are renamed by
:func:`backbone.checkpoint_layouts.convert_state_dict` (``to='hf'``); ``tools/convert_checkpoint.py --to hf`` writes
both into one folder that ``from_pretrained`` loads as it is.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import torch

from .checkpoint_io import CheckpointError, abbreviate_keys
from .pretrain import PRETRAIN_PRESETS
from .videomaev2 import ARCH_PRESETS

__all__ = ['hf_config', 'safetensors_meta']

#: safetensors header dtypes -> torch
_DTYPES = {'F16': torch.float16, 'BF16': torch.bfloat16, 'F32': torch.float32, 'F64': torch.float64}


def safetensors_meta(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file as meta tensors: shapes and dtypes from its header, no data read (what
    :func:`hf_config` needs of a multi-gigabyte file)."""
    from safetensors import safe_open

    with safe_open(str(path), framework='pt') as handle:
        slices = {key: handle.get_slice(key) for key in handle.keys()}
        return {key: torch.empty(part.get_shape(), dtype=_DTYPES.get(part.get_dtype(), torch.float32), device='meta')
                for key, part in slices.items()}


def _hf_layers(state: Mapping[str, torch.Tensor], scope: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(rf'^{re.escape(scope)}\.(\d+)\.', k))}
    return max(found) + 1 if found else 0


def _heads(width: int, depth: int, presets: Mapping[str, Mapping[str, object]], width_key: str, depth_key: str,
           heads_key: str, what: str, name: str) -> int:
    """The head count of the preset with this width and depth: shapes do not depend on it, so it cannot be read."""
    for preset in presets.values():
        if preset[width_key] == width and preset[depth_key] == depth:
            return int(preset[heads_key])
    raise CheckpointError(f'{name}: no preset has a {what} of width {width} and depth {depth}, so its number of '
                          'attention heads is unknown; give it (--num-heads / --decoder-num-heads)')


def hf_config(state: Mapping[str, torch.Tensor], *, num_frames: int = 16, img_size: int = 224,
              label_names: Sequence[str] | None = None, num_heads: int | None = None,
              decoder_num_heads: int | None = None, name: str = '<state_dict>') -> dict[str, object]:
    """The transformers ``VideoMAEConfig`` (as a ``config.json`` dict) for a state dict in HF names
    (:func:`backbone.checkpoint_layouts.convert_state_dict` with ``to='hf'``), so that ``from_pretrained(folder)``
    builds the model it fits.

    Widths, depths, patch and tubelet sizes, the q/v biases, the pooling (``fc_norm`` -> ``use_mean_pooling``) and
    the head size are read from the tensors; the head counts come from :data:`backbone.ARCH_PRESETS` /
    :data:`backbone.PRETRAIN_PRESETS` (shapes do not fix them: docs/checkpoints.md#transformers-layout).

    Args:
        state: HF-named tensors (meta tensors do: only shapes and dtypes are read).
        num_frames, img_size: the input the position table is built for (not stored in the weights).
        label_names: one name per head row, for ``id2label``; None gives transformers' ``LABEL_i``.
        num_heads, decoder_num_heads: override the preset head counts.
        name: how messages name the weights.

    Raises:
        CheckpointError: weights transformers' VideoMAE cannot hold (layer scales, both final norms), or an
            unknown width/depth without ``num_heads``; ValueError: an input size the patches do not tile, or a
            ``label_names`` of another length than the head.
    """
    patch = state.get('videomae.embeddings.patch_embeddings.projection.weight')
    if patch is None or patch.dim() != 5:
        raise CheckpointError(f'{name}: no Conv3d videomae.embeddings.patch_embeddings.projection.weight; not a '
                              'VideoMAE state dict in transformers names')
    width, channels, tubelet, patch_size = patch.shape[0], patch.shape[1], patch.shape[2], patch.shape[3]
    if img_size % patch_size or num_frames % tubelet:
        raise ValueError(f'{num_frames} frames x {img_size} px do not tile into {tubelet}x{patch_size}x{patch_size} '
                         'tubelets')
    scales = sorted(k for k in state if re.search(r'\.gamma_[12]$', k))
    if scales:
        raise CheckpointError(f'{name}: layer scales ({abbreviate_keys(scales)}) have no place in transformers '
                              'VideoMAE')
    has_fc_norm, has_norm = 'fc_norm.weight' in state, 'videomae.layernorm.weight' in state
    if has_fc_norm and has_norm:
        raise CheckpointError(f'{name}: both fc_norm and the final norm videomae.layernorm; transformers VideoMAE '
                              'has one or the other (use_mean_pooling)')
    depth = _hf_layers(state, 'videomae.encoder.layer')
    heads = num_heads or _heads(width, depth, ARCH_PRESETS, 'embed_dim', 'depth', 'num_heads', 'encoder', name)
    config: dict[str, object] = {
        'model_type': 'videomae', 'image_size': img_size, 'patch_size': patch_size, 'num_channels': channels,
        'num_frames': num_frames, 'tubelet_size': tubelet, 'hidden_size': width, 'num_hidden_layers': depth,
        'num_attention_heads': heads,
        'intermediate_size': state['videomae.encoder.layer.0.intermediate.dense.weight'].shape[0],
        'hidden_act': 'gelu', 'hidden_dropout_prob': 0.0, 'attention_probs_dropout_prob': 0.0,
        'layer_norm_eps': 1e-6,  # the official LayerNorms' eps (transformers' default is 1e-12)
        # transformers 5 calls the q/v biases qv_bias, transformers 4 qkv_bias: both, so that either reads it
        'qkv_bias': 'videomae.encoder.layer.0.attention.attention.query.bias' in state,
        'use_mean_pooling': not has_norm, 'norm_pix_loss': True,  # the V2 pre-training target (normlize_target)
        'dtype': str(patch.dtype).removeprefix('torch.'),
    }
    config['qv_bias'] = config['qkv_bias']
    architectures = ['VideoMAEModel']
    if 'encoder_to_decoder.weight' in state:
        dec_width, dec_depth = state['encoder_to_decoder.weight'].shape[0], _hf_layers(state, 'decoder.decoder_layers')
        config.update(
            decoder_hidden_size=dec_width, decoder_num_hidden_layers=dec_depth,
            decoder_num_attention_heads=decoder_num_heads or _heads(
                dec_width, dec_depth, PRETRAIN_PRESETS, 'decoder_embed_dim', 'decoder_depth', 'decoder_num_heads',
                'decoder', name),
            decoder_intermediate_size=state['decoder.decoder_layers.0.intermediate.dense.weight'].shape[0])
        architectures = ['VideoMAEForPreTraining']
    if 'classifier.weight' in state:
        rows = state['classifier.weight'].shape[0]
        if label_names is not None and len(label_names) != rows:
            raise ValueError(f'{name}: {len(label_names)} label names for a head of {rows} classes')
        names = list(label_names) if label_names is not None else [f'LABEL_{i}' for i in range(rows)]
        config.update(id2label={str(i): n for i, n in enumerate(names)}, label2id={n: i for i, n in enumerate(names)})
        architectures = ['VideoMAEForVideoClassification']
    config['architectures'] = architectures
    return config
