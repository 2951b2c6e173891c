"""Checkpoint loading for every layout (docs/checkpoints.md), and tools/convert_checkpoint.py.

Every fixture file is written into ``tmp_path`` from a tiny model. The references are independent of our loader:
exact equality with the source tensors, the outputs of mmaction2's own ``VisionTransformer`` and of transformers'
``VideoMAE*`` models, and hand-derived facts (K710 head row i = old row map[i], what a pre-training file lacks).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from backbone import (CheckpointError, convert_state_dict, filter_checkpoint, load_checkpoint, read_checkpoint,
                      sinusoid_table)
from backbone.videomaev2 import Block

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'convert_checkpoint.py'
GRID = (2, 2, 2)  # vit_test at 4 frames x 32 px: T' = 4/2, H' = W' = 32/16
HEAD_KEYS = ['fc_norm.bias', 'fc_norm.weight', 'head.bias', 'head.weight']


# ---------------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------------
def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter distinct random values (q_bias/v_bias and LayerNorms included), so a swapped or dropped
    tensor changes the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=gen, dtype=torch.float32).to(param.dtype)
            is_norm_scale = param.dim() == 1 and name.endswith('weight')
            param.copy_(1 + 0.1 * noise if is_norm_scale else 0.1 * noise)
    return module


def clip(batch: int = 2) -> torch.Tensor:
    """(B, 3, T, H, W) clip matching the tiny models."""
    return torch.randn(batch, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))


def assert_state_equal(model: nn.Module, expected: dict[str, torch.Tensor]) -> None:
    """Every tensor of ``expected`` is in the model, bit for bit, in the model's dtype."""
    state = model.state_dict()
    for key, value in expected.items():
        assert state[key].dtype == torch.float32, key
        assert torch.equal(state[key], value.float()), key


def pretrain_state(encoder: nn.Module, seed: int = 3) -> dict[str, torch.Tensor]:
    """An official pre-training state dict (OpenGVLab/VideoMAEv2: models/modeling_pretrain.py key names) whose
    encoder is ``encoder``: ``encoder.*`` + ``encoder.norm``, a 1-block 32-d decoder, ``encoder_to_decoder``,
    ``mask_token``."""
    width, dec = encoder.embed_dim, 32
    decoder = nn.Module()
    decoder.blocks = nn.ModuleList([Block(dec, 2)])
    decoder.norm = nn.LayerNorm(dec)
    decoder.head = nn.Linear(dec, 3 * 2 * 16 * 16)  # 3 * tubelet * p^2
    extra = nn.Module()
    extra.decoder = decoder
    extra.encoder_norm = nn.LayerNorm(width)
    extra.encoder_to_decoder = nn.Linear(width, dec, bias=False)
    extra.mask_token = nn.Parameter(torch.zeros(1, 1, dec))
    randomize_(extra, seed)
    state = {f'encoder.{k}': v for k, v in encoder.state_dict().items() if not k.startswith(('fc_norm.', 'head.'))}
    state.update({f'encoder.norm.{k}': v for k, v in extra.encoder_norm.state_dict().items()})
    state.update({f'decoder.{k}': v for k, v in decoder.state_dict().items()})
    state['encoder_to_decoder.weight'] = extra.encoder_to_decoder.weight.detach()
    state['mask_token'] = extra.mask_token.detach()
    return state


@pytest.fixture
def source(tiny_vit):
    """A randomised tiny fine-tuned model (5 classes) and its state dict."""
    model = randomize_(tiny_vit(num_classes=5))
    return model, {k: v.clone() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------------------------------
# official fine-tuned / distilled files and their wrappers
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('wrap', ['module', 'model', '_orig_mod.', 'module.', 'model+_orig_mod.module.'])
def test_official_layouts(tmp_path, tiny_vit, source, wrap):
    src, sd = source
    if wrap == 'module':  # DeepSpeed, as the released fine-tuned/distilled files
        obj = {'module': sd}
    elif wrap == 'model':  # utils.save_model
        obj = {'model': sd}
    elif wrap == 'model+_orig_mod.module.':  # torch.compile of a DDP model, saved by utils.save_model
        obj = {'model': {f'_orig_mod.module.{k}': v for k, v in sd.items()}}
    else:  # bare, with a torch.compile or DDP prefix
        obj = {f'{wrap}{k}': v for k, v in sd.items()}
    path = tmp_path / 'ckpt.pth'
    torch.save(obj, path)
    model = tiny_vit(num_classes=5)
    result = load_checkpoint(model, path)
    assert (result.missing, result.unexpected, result.layout, result.source) == ([], [], 'official', str(path))
    assert_state_equal(model, sd)
    x = clip()
    with torch.no_grad():
        assert torch.equal(model(x), src(x))


def test_official_fp16_module_is_cast_to_fp32(tmp_path, tiny_vit, source):
    _, sd = source
    half = {k: v.half() for k, v in sd.items()}
    torch.save({'module': half}, tmp_path / 'k710_ft.pth')
    model = tiny_vit(num_classes=5)
    load_checkpoint(model, tmp_path / 'k710_ft.pth')
    assert_state_equal(model, half)  # fp32 parameters holding exactly the fp16 values
    assert any(not torch.equal(half[k].float(), sd[k]) for k in sd)  # fp16 rounding did change values
    reference = tiny_vit(num_classes=5)
    reference.load_state_dict({k: v.float() for k, v in half.items()})
    x = clip()
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_model_dtype_is_kept(tiny_vit, source):
    """An fp32 checkpoint into a bf16 model is cast to bf16 (the model's dtype wins)."""
    _, sd = source
    model = tiny_vit(num_classes=5).to(torch.bfloat16)
    load_checkpoint(model, {'module': sd})
    for key, value in model.state_dict().items():
        assert value.dtype == torch.bfloat16 and torch.equal(value, sd[key].to(torch.bfloat16)), key


# ---------------------------------------------------------------------------------------------------------------------
# official pre-training files
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('prefix,wrapper', [('', 'model'), ('_orig_mod.', 'model'), ('', None)])
def test_pretrain_layout_takes_the_encoder(tmp_path, tiny_vit, prefix, wrapper):
    encoder = randomize_(tiny_vit(num_classes=0), seed=2)
    state = pretrain_state(encoder)
    state = {prefix + k: v for k, v in state.items()}
    torch.save({wrapper: state} if wrapper else state, tmp_path / 'pt.pth')

    model = tiny_vit(num_classes=5)
    fresh = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(('fc_norm.', 'head.'))}
    result = load_checkpoint(model, tmp_path / 'pt.pth')
    assert result.layout == 'pretrain'
    assert result.missing == HEAD_KEYS
    pretrain_only = sorted(k.removeprefix(prefix) for k in state
                           if k.removeprefix(prefix).startswith(('decoder.', 'encoder.norm.', 'encoder_to_decoder.'))
                           or k.endswith('mask_token'))
    assert 'decoder.blocks.0.attn.qkv.weight' in pretrain_only and 'decoder.head.weight' in pretrain_only
    assert result.unexpected == pretrain_only
    encoder_state = {k: v for k, v in encoder.state_dict().items() if not k.startswith('fc_norm.')}
    assert_state_equal(model, encoder_state)
    assert_state_equal(model, fresh)  # fc_norm and head keep their fresh values
    x = clip()
    with torch.no_grad():
        assert torch.equal(model.forward_tokens(x), encoder.forward_tokens(x))


def test_pretrain_into_detection_model_starts_norm_fresh(tiny_vit):
    """mmaction2's detection ViT has a fresh `norm` (docs/backbone.md#pooling-head-and-initialisation): encoder.norm is
    dropped, not loaded into it."""
    state = pretrain_state(randomize_(tiny_vit(num_classes=0), seed=2))
    model = tiny_vit(num_classes=0, featmap_norm=True)
    result = load_checkpoint(model, state)
    assert result.missing == ['fc_norm.bias', 'fc_norm.weight', 'norm.bias', 'norm.weight']
    assert {'encoder.norm.weight', 'encoder.norm.bias'} <= set(result.unexpected)
    assert torch.equal(model.norm.weight, torch.ones(64))


def test_ava_detector_checkpoint_gives_its_backbone(tiny_vit, tmp_path):
    """Our AVA detector's training checkpoint (mmengine: ``backbone.*`` with the feature-map norm, ``roi_head.*``)
    loads into a plain backbone: the backbone weights are taken, the ROI head and the norm are reported dropped."""
    detector_backbone = randomize_(tiny_vit(num_classes=0, featmap_norm=True), seed=5)
    state = {f'backbone.{k}': v for k, v in detector_backbone.state_dict().items()}
    state.update({'roi_head.fc_cls.weight': torch.randn(5, 64), 'roi_head.fc_cls.bias': torch.randn(5)})
    torch.save({'state_dict': state, 'meta': {'epoch': 40}}, tmp_path / 'epoch_40.pth')
    model = tiny_vit(num_classes=0)
    result = load_checkpoint(model, tmp_path / 'epoch_40.pth')
    assert result.missing == []
    assert result.unexpected == ['norm.bias', 'norm.weight', 'roi_head.fc_cls.bias', 'roi_head.fc_cls.weight']
    for key, value in model.state_dict().items():
        assert torch.equal(value, detector_backbone.state_dict()[key]), key


# ---------------------------------------------------------------------------------------------------------------------
# mmaction2 (its real VisionTransformer and Recognizer3D)
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def mmaction():
    vit_mae = pytest.importorskip('mmaction.models.backbones.vit_mae', reason='mmaction2 1.1.0 is a dependency')
    from mmaction.models.recognizers import Recognizer3D
    return vit_mae, Recognizer3D


def mm_recognizer(mmaction, seed: int = 4) -> nn.Module:
    """Recognizer3D(VisionTransformer tiny + TimeSformerHead), randomised; its state dict is an mmaction2 checkpoint."""
    _, recognizer_cls = mmaction
    backbone = dict(type='mmaction.VisionTransformer', img_size=32, patch_size=16, embed_dims=64, depth=2,
                    num_heads=4, num_frames=4, tubelet_size=2)
    recognizer = recognizer_cls(backbone=backbone,
                                cls_head=dict(type='mmaction.TimeSformerHead', num_classes=5, in_channels=64),
                                data_preprocessor=dict(type='mmaction.ActionDataPreprocessor'))
    return randomize_(recognizer, seed).eval()


def test_mmaction2_checkpoint_loads(tmp_path, tiny_vit, mmaction):
    recognizer = mm_recognizer(mmaction)
    sd = recognizer.state_dict()
    assert 'backbone.pos_embed' in sd and 'backbone.blocks.0.mlp.layers.0.0.weight' in sd  # the real layout
    torch.save({'state_dict': sd, 'meta': {'epoch': 3}}, tmp_path / 'mm.pth')
    model = tiny_vit(num_classes=5)
    result = load_checkpoint(model, tmp_path / 'mm.pth')
    assert (result.layout, result.missing, result.unexpected) == ('mmaction2', [], ['pos_embed'])
    renames = {'patch_embed.projection.': 'patch_embed.proj.', 'mlp.layers.0.0.': 'mlp.fc1.',
               'mlp.layers.1.': 'mlp.fc2.', 'cls_head.fc_cls.': 'head.', 'backbone.': ''}
    expected = {}
    for key, value in sd.items():
        if key == 'backbone.pos_embed':
            continue
        for old, new in renames.items():
            key = key.replace(old, new)
        expected[key] = value
    assert sorted(expected) == sorted(model.state_dict())
    assert_state_equal(model, expected)
    x = clip()
    with torch.no_grad():
        ours, theirs = model.forward_features(x), recognizer.backbone(x)
        assert (ours - theirs).abs().max() <= 1e-5
        assert (model(x) - recognizer.cls_head.fc_cls(theirs)).abs().max() <= 1e-5


def test_our_weights_load_strictly_into_mmaction2(tiny_vit, source, mmaction):
    src, sd = source
    converted = convert_state_dict(sd, 'mmaction2', grid=GRID)
    recognizer = mm_recognizer(mmaction, seed=9)
    recognizer.load_state_dict(converted, strict=True)  # backbone.*, backbone.pos_embed and cls_head.fc_cls.*
    vit = mmaction[0].VisionTransformer(img_size=32, patch_size=16, embed_dims=64, depth=2, num_heads=4,
                                        num_frames=4, tubelet_size=2).eval()
    vit.load_state_dict({k.removeprefix('backbone.'): v for k, v in converted.items() if k.startswith('backbone.')},
                        strict=True)
    x = clip()
    with torch.no_grad():
        ours = src.forward_features(x)
        assert (vit(x) - ours).abs().max() <= 1e-5
        assert (recognizer.backbone(x) - ours).abs().max() <= 1e-5
        assert torch.equal(recognizer.cls_head.fc_cls.weight, sd['head.weight'])


def test_load_state_dict_of_a_parent_renames_mmaction2_keys(tiny_vit, source):
    """The ViT's own load hook passes its keys through the filter's renaming, so a plain ``load_state_dict`` of an
    mmaction2 recognizer state dict (what mmengine's load_from does) fills a model holding the ViT as ``backbone``;
    the fixed ``backbone.pos_embed`` is dropped, a learned one is an error."""
    _, sd = source
    recognizer_state = convert_state_dict(sd, 'mmaction2', grid=GRID)
    assert 'backbone.blocks.0.mlp.layers.0.0.weight' in recognizer_state and 'backbone.pos_embed' in recognizer_state
    parent = nn.Module()
    parent.backbone = tiny_vit(num_classes=0)
    parent.cls_head = nn.Module()
    parent.cls_head.fc_cls = nn.Linear(64, 5)
    parent.load_state_dict(recognizer_state, strict=True)
    assert_state_equal(parent.backbone, {k: v for k, v in sd.items() if not k.startswith('head.')})
    assert torch.equal(parent.cls_head.fc_cls.weight, sd['head.weight'])
    recognizer_state['backbone.pos_embed'] = recognizer_state['backbone.pos_embed'] + 0.01
    with pytest.raises(RuntimeError, match='backbone: <state_dict>: pos_embed is learned'):
        parent.load_state_dict(recognizer_state, strict=True)


# ---------------------------------------------------------------------------------------------------------------------
# Hugging Face transformers
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def hf():
    transformers = pytest.importorskip('transformers', reason='transformers is the HF reference (test extra)')

    def config(**kwargs):
        return transformers.VideoMAEConfig(
            image_size=32, patch_size=16, num_channels=3, num_frames=4, tubelet_size=2, hidden_size=64,
            num_hidden_layers=2, num_attention_heads=4, intermediate_size=256, hidden_act='gelu',
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-6, qkv_bias=True,
            num_labels=5, decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
            decoder_intermediate_size=64, **kwargs)
    return transformers, config


def to_transformers4(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers 4 kept the q/v biases as `attention.attention.q_bias`/`v_bias` parameters."""
    return {k.replace('attention.attention.query.bias', 'attention.attention.q_bias')
            .replace('attention.attention.value.bias', 'attention.attention.v_bias'): v for k, v in state.items()}


def hf_pixels(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2)  # HF takes (B, T, C, H, W)


@pytest.mark.parametrize('naming,suffix', [('transformers5', '.bin'), ('transformers4', '.bin'),
                                           ('transformers5', '.safetensors')])
def test_hf_classification_checkpoint(tmp_path, tiny_vit, hf, naming, suffix):
    transformers, config = hf
    reference = randomize_(transformers.VideoMAEForVideoClassification(config()), seed=5).eval()
    sd = reference.state_dict()
    assert 'videomae.encoder.layer.0.attention.attention.query.bias' in sd  # transformers 5 naming
    if naming == 'transformers4':
        sd = to_transformers4(sd)
    path = tmp_path / f'pytorch_model{suffix}'
    if suffix == '.safetensors':
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)
    model = tiny_vit(num_classes=5)
    result = load_checkpoint(model, path)
    assert (result.layout, result.missing, result.unexpected) == ('hf', [], [])
    layer = 'videomae.encoder.layer.1.attention.attention.'
    qkv = torch.cat([sd[layer + f'{p}.weight'] for p in ('query', 'key', 'value')])
    assert torch.equal(model.blocks[1].attn.qkv.weight, qkv)
    q_bias = sd[layer + ('q_bias' if naming == 'transformers4' else 'query.bias')]
    assert torch.equal(model.blocks[1].attn.q_bias, q_bias)
    assert torch.equal(model.head.weight, sd['classifier.weight'])
    x = clip()
    with torch.no_grad():
        tokens = reference.videomae(pixel_values=hf_pixels(x)).last_hidden_state
        assert (model.forward_tokens(x) - tokens).abs().max() <= 1e-5
        model.fc_norm.eps = reference.fc_norm.eps  # HF's fc_norm is a default LayerNorm (eps 1e-5), ours 1e-6
        assert (model(x) - reference(pixel_values=hf_pixels(x)).logits).abs().max() <= 1e-5


def test_hf_encoder_only_model(tiny_vit, hf):
    transformers, config = hf
    reference = randomize_(transformers.VideoMAEModel(config()), seed=6).eval()
    model = tiny_vit(num_classes=5)
    result = load_checkpoint(model, reference.state_dict())  # bare VideoMAEModel names: no `videomae.` prefix
    assert (result.layout, result.missing, result.unexpected) == ('hf', HEAD_KEYS, [])
    x = clip()
    with torch.no_grad():
        expected = reference(pixel_values=hf_pixels(x)).last_hidden_state
        assert (model.forward_tokens(x) - expected).abs().max() <= 1e-5


def test_hf_pretraining_checkpoint_takes_the_encoder(tiny_vit, hf):
    transformers, config = hf
    # HF pre-training checkpoints keep the encoder's final norm (`use_mean_pooling=False` -> videomae.layernorm).
    reference = randomize_(transformers.VideoMAEForPreTraining(config(use_mean_pooling=False)), seed=7).eval()
    sd = reference.state_dict()
    model = tiny_vit(num_classes=5)
    result = load_checkpoint(model, sd)
    assert result.layout == 'pretrain' and result.missing == HEAD_KEYS
    assert {'mask_token', 'encoder_to_decoder.weight', 'encoder.norm.weight', 'encoder.norm.bias',
            'decoder.norm.weight', 'decoder.head.weight', 'decoder.blocks.0.attn.qkv.weight'} <= set(result.unexpected)
    x = clip()
    with torch.no_grad():
        expected = reference.videomae(pixel_values=hf_pixels(x)).last_hidden_state  # after videomae.layernorm
        ours = F.layer_norm(model.forward_tokens(x), (64,), sd['videomae.layernorm.weight'],
                            sd['videomae.layernorm.bias'], eps=1e-6)
        assert (ours - expected).abs().max() <= 1e-5


def test_our_weights_load_strictly_into_hf(tiny_vit, source, hf):
    transformers, config = hf
    src, sd = source
    reference = transformers.VideoMAEForVideoClassification(config()).eval()
    reference.load_state_dict(convert_state_dict(sd, 'hf'), strict=True)
    reference.fc_norm.eps = src.fc_norm.eps
    x = clip()
    with torch.no_grad():
        assert (reference(pixel_values=hf_pixels(x)).logits - src(x)).abs().max() <= 1e-5


# ---------------------------------------------------------------------------------------------------------------------
# K710 head slicing
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('as_file', [False, True])
def test_k710_head_slicing(tmp_path, tiny_vit, as_file):
    src = randomize_(tiny_vit(num_classes=710))
    sd = src.state_dict()
    torch.save({'module': {k: v.half() for k, v in sd.items()}}, tmp_path / 'k710.pth')
    label_map = torch.randperm(710, generator=torch.Generator().manual_seed(3))[:7].tolist()
    if as_file:
        (tmp_path / 'label_710to7.json').write_text(json.dumps(label_map))
    model = tiny_vit(num_classes=7)
    result = load_checkpoint(model, tmp_path / 'k710.pth',
                             label_map=tmp_path / 'label_710to7.json' if as_file else label_map)
    assert (result.missing, result.unexpected) == ([], [])
    for i, row in enumerate(label_map):
        assert torch.equal(model.head.weight[i], sd['head.weight'][row].half().float())
        assert torch.equal(model.head.bias[i], sd['head.bias'][row].half().float())
    assert torch.equal(model.blocks[0].attn.qkv.weight, sd['blocks.0.attn.qkv.weight'].half().float())


def test_k710_head_errors(tmp_path, tiny_vit):
    sd = randomize_(tiny_vit(num_classes=710)).state_dict()
    with pytest.raises(CheckpointError, match=r'head\.weight.*\(710, 64\).*\(7, 64\).*label_map'):
        load_checkpoint(tiny_vit(num_classes=7), sd)
    with pytest.raises(CheckpointError, match=r'\[710\].*outside \[0, 710\)'):
        load_checkpoint(tiny_vit(num_classes=2), sd, label_map=[0, 710])
    (tmp_path / 'map.json').write_text('{"0": 1}')
    with pytest.raises(CheckpointError, match='map.json: a label map must be'):
        load_checkpoint(tiny_vit(num_classes=1), sd, label_map=tmp_path / 'map.json')
    with pytest.raises(CheckpointError, match='model has no head'):
        load_checkpoint(tiny_vit(num_classes=0), sd, label_map=[0])


def test_label_map_slices_only_a_head_of_another_size(tiny_vit):
    """A file whose head already fits the model loads as it is (a chain stage given K400 weights and the K710 map);
    a map whose length is not the model's class count is an error naming both."""
    src = randomize_(tiny_vit(num_classes=7))
    sd = src.state_dict()
    model = tiny_vit(num_classes=7)
    result = load_checkpoint(model, sd, label_map=[6, 5, 4, 3, 2, 1, 0])
    assert not result.head_sliced and torch.equal(model.head.weight, sd['head.weight'])
    result = load_checkpoint(tiny_vit(num_classes=3), sd, label_map=[6, 0, 2])
    assert result.head_sliced
    with pytest.raises(CheckpointError, match="label_map has 2 entries for the model's 3 classes"):
        load_checkpoint(tiny_vit(num_classes=3), sd, label_map=[6, 0])


def test_fresh_modules_and_exact_mode(tiny_vit, source):
    """``fresh`` drops the file's head and leaves the model's fresh; ``'exact'`` mode accepts no fresh or dropped
    weight (a pre-training file has no head), only the fixed pos_embed, which is no weight."""
    _, sd = source
    model = tiny_vit(num_classes=3)
    fresh_head = model.head.weight.clone()
    result = load_checkpoint(model, sd, fresh=('head.',))
    assert (result.missing, result.unexpected) == (['head.bias', 'head.weight'], ['head.bias', 'head.weight'])
    assert torch.equal(model.head.weight, fresh_head) and torch.equal(model.fc_norm.weight, sd['fc_norm.weight'])

    state, result = filter_checkpoint({**sd, 'pos_embed': sinusoid_table(8, 64)}, tiny_vit(num_classes=5),
                                      mode='exact')
    assert sorted(state) == sorted(sd) and (result.missing, result.unexpected) == ([], ['pos_embed'])
    pretrain = pretrain_state(randomize_(tiny_vit(num_classes=0), seed=2))
    with pytest.raises(CheckpointError, match=r'\(pretrain layout\) does not fit the model VideoMAEv2ViT: 4 model keys '
                                              r'missing from the checkpoint: fc_norm\.bias, fc_norm\.weight, '
                                              r'head\.bias, head\.weight; .*no classifier'):
        filter_checkpoint(pretrain, tiny_vit(num_classes=5), mode='exact')


def test_head_dropped_for_headless_model(tiny_vit, source):
    _, sd = source
    model = tiny_vit(num_classes=0)
    result = load_checkpoint(model, sd)
    assert (result.missing, result.unexpected) == ([], ['head.bias', 'head.weight'])


def test_fc_norm_dropped_for_a_feature_map_vit(tiny_vit, source, mmaction):
    """The detection ViT (``fc_norm=False``: no pooling norm, which its feature map never uses) takes a fine-tuned
    file's blocks and drops its ``fc_norm`` and head; mmaction2's detection ViT (``use_mean_pooling=False``) has
    exactly its weights."""
    src, sd = source
    model = tiny_vit(num_classes=0, featmap_norm=True, fc_norm=False)
    assert not any(k.startswith('fc_norm.') for k in model.state_dict())
    result = load_checkpoint(model, sd)
    assert result.missing == ['norm.bias', 'norm.weight']  # the detection norm starts fresh
    assert result.unexpected == HEAD_KEYS
    x = clip()
    with torch.no_grad():
        assert torch.equal(model.forward_tokens(x), src.forward_tokens(x))
    # 'exact' mode (tools/test.py) still accounts for every file weight: fc_norm may not vanish there.
    with pytest.raises(CheckpointError, match=r'checkpoint keys the model does not have: fc_norm\.bias'):
        filter_checkpoint({k: v for k, v in sd.items() if not k.startswith('head.')},
                          tiny_vit(num_classes=0, fc_norm=False), mode='exact')
    reference = mmaction[0].VisionTransformer(img_size=32, patch_size=16, embed_dims=64, depth=2, num_heads=4,
                                              num_frames=4, tubelet_size=2, use_mean_pooling=False,
                                              return_feat_map=True)
    reference = randomize_(reference, seed=6).eval()
    state, result = filter_checkpoint(reference.state_dict(), model, mode='exact')
    assert result.unexpected == ['pos_embed']  # the fixed sinusoid mmaction2 stores; no weight
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        assert (model.forward_featmap(x) - reference(x)).abs().max() <= 1e-5


# ---------------------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------------------
def test_unreadable_files(tmp_path, source):
    _, sd = source
    torch.save({'module': sd}, tmp_path / 'full.pth')
    data = (tmp_path / 'full.pth').read_bytes()
    (tmp_path / 'half.pth').write_bytes(data[:len(data) // 2])
    torch.save({'module': sd}, tmp_path / 'legacy.pth', _use_new_zipfile_serialization=False)
    legacy = (tmp_path / 'legacy.pth').read_bytes()
    (tmp_path / 'legacy_half.pth').write_bytes(legacy[:len(legacy) // 2])
    (tmp_path / 'empty.pth').write_bytes(b'')
    (tmp_path / 'notes.pth').write_text('epoch 3: top-1 81.5\n')
    torch.save([torch.zeros(1)], tmp_path / 'list.pth')
    cases = {'missing.pth': 'no such checkpoint file', 'empty.pth': 'the file is empty',
             'half.pth': 'truncated or corrupt', 'legacy_half.pth': 'truncated or corrupt',
             'notes.pth': 'not a PyTorch checkpoint', 'list.pth': 'expected a dict of tensors, found list'}
    for file, message in cases.items():
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(tmp_path / file)
        assert str(tmp_path / file) in str(info.value) and message in str(info.value), file


def test_python_objects_need_unsafe_pickle(tmp_path, tiny_vit, source):
    _, sd = source
    path = tmp_path / 'checkpoint-best.pth'  # a raw training checkpoint: args is an argparse.Namespace
    torch.save({'model': sd, 'epoch': 3, 'args': argparse.Namespace(lr=1e-3)}, path)
    with pytest.raises(CheckpointError, match=r'weights_only=True.*argparse\.Namespace.*weights_only=False'):
        load_checkpoint(tiny_vit(num_classes=5), path)
    model = tiny_vit(num_classes=5)
    load_checkpoint(model, path, weights_only=False)  # the user vouches for the file
    assert_state_equal(model, sd)


def test_our_training_checkpoints_load_without_unsafe_pickle(tmp_path, tiny_vit, source):
    # What tools/train.py writes: the model under `backbone.` plus mmengine's meta and message hub, whose histories
    # are HistoryBuffers of numpy values. These classes (and no others) are allowed under weights_only loading.
    from mmengine.logging import HistoryBuffer

    _, sd = source
    path = tmp_path / 'epoch_3.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in sd.items()}, 'meta': {'epoch': 3, 'seed': np.int64(0)},
                'message_hub': {'log_scalars': {'train/loss': HistoryBuffer([1.0, 0.5], [1, 1])}}}, path)
    model = tiny_vit(num_classes=5)
    load_checkpoint(model, path)
    assert_state_equal(model, sd)
    # ... while anything else pickled next to them is still refused.
    torch.save({'state_dict': sd, 'args': argparse.Namespace(lr=1e-3)}, path)
    with pytest.raises(CheckpointError, match=r'argparse\.Namespace'):
        load_checkpoint(tiny_vit(num_classes=5), path)


def test_unaccounted_keys_are_errors_and_load_nothing(tmp_path, tiny_vit, source):
    _, sd = source
    extra = tmp_path / 'extra.pth'
    torch.save({'module': {**sd, 'blocks.0.attn.rel_pos_bias': torch.zeros(3)}}, extra)
    missing = tmp_path / 'missing.pth'
    torch.save({'module': {k: v for k, v in sd.items() if k != 'blocks.1.mlp.fc2.bias'}}, missing)
    mixed = {**sd, 'module.blocks.0.norm1.weight': sd['blocks.0.norm1.weight']}
    cases = [(extra, 'checkpoint keys the model does not have: blocks.0.attn.rel_pos_bias'),
             (missing, 'model keys missing from the checkpoint: blocks.1.mlp.fc2.bias'),
             (mixed, "both map to 'blocks.0.norm1.weight'")]
    for src, message in cases:
        model = tiny_vit(num_classes=5)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(model, src)
        assert message in str(info.value)
        if not isinstance(src, dict):
            assert str(src) in str(info.value)
        for key, value in model.state_dict().items():  # never a partial load
            assert torch.equal(value, before[key]), key


def test_wrong_shapes(tiny_vit, source):
    _, sd = source
    with pytest.raises(CheckpointError, match=r'shape of blocks\.0\.mlp\.fc1\.weight: checkpoint \(256, 64\) vs '
                                              r'model \(128, 64\)'):
        load_checkpoint(tiny_vit(num_classes=5, mlp_ratio=2.0), sd)


def test_pos_embed_fixed_or_learned(tiny_vit, source):
    _, sd = source
    # mmaction2 stores the fixed table, possibly in fp16 (rounding up to 5e-4): accepted and dropped.
    model = tiny_vit(num_classes=5)
    result = load_checkpoint(model, {**sd, 'pos_embed': sinusoid_table(8, 64).half()})
    assert result.unexpected == ['pos_embed']
    learned = sinusoid_table(8, 64) + 0.01 * torch.randn(1, 8, 64)
    with pytest.raises(CheckpointError, match='pos_embed is learned'):
        load_checkpoint(tiny_vit(num_classes=5), {**sd, 'pos_embed': learned})
    learnable = tiny_vit(num_classes=5, use_learnable_pos_emb=True)
    load_checkpoint(learnable, {**sd, 'pos_embed': learned})
    assert torch.equal(learnable.pos_embed, learned)


# ---------------------------------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('via', ['mmaction2', 'hf'])
def test_round_trip_official(source, via):
    _, sd = source
    half = {k: v.half() for k, v in sd.items()}  # dtypes survive too
    back = convert_state_dict(convert_state_dict({'module': half}, via, grid=GRID), 'official')
    assert sorted(back) == sorted(half)
    for key, value in half.items():
        assert back[key].dtype == torch.float16 and torch.equal(back[key], value), key


def test_round_trip_pretrain_through_hf(tiny_vit):
    state = pretrain_state(randomize_(tiny_vit(num_classes=0), seed=2))
    via_hf = convert_state_dict({'model': {f'_orig_mod.{k}': v for k, v in state.items()}}, 'hf')
    assert 'decoder.decoder_layers.0.attention.attention.key.weight' in via_hf
    assert 'videomae.layernorm.weight' in via_hf
    back = convert_state_dict(via_hf, 'official')
    assert sorted(back) == sorted(state)
    assert all(torch.equal(back[k], v) for k, v in state.items())


def test_convert_pretrain_to_mmaction2_is_refused(tiny_vit):
    state = pretrain_state(randomize_(tiny_vit(num_classes=0), seed=2))
    with pytest.raises(CheckpointError, match='no pre-training model'):
        convert_state_dict(state, 'mmaction2')


# ---------------------------------------------------------------------------------------------------------------------
# tools/convert_checkpoint.py
# ---------------------------------------------------------------------------------------------------------------------
def run_tool(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_official_k710_to_mmaction2(tmp_path, tiny_vit, mmaction):
    sd = randomize_(tiny_vit(num_classes=710)).state_dict()
    torch.save({'module': {k: v.half() for k, v in sd.items()}}, tmp_path / 'k710_ft.pth')
    label_map = [709, 0, 355, 42]
    (tmp_path / 'label_710to4.json').write_text(json.dumps(label_map))
    out = tmp_path / 'mm.pth'
    proc = run_tool(tmp_path / 'k710_ft.pth', out, '--to', 'mmaction2', '--label-map', tmp_path / 'label_710to4.json',
                    '--img-size', 32, '--num-frames', 4)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count('\n') == 1 and proc.stdout.startswith(f'wrote {out}')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['k710_ft.pth', 'label_710to4.json', 'mm.pth']  # no temp
    ckpt = torch.load(out, weights_only=True)
    assert sorted(ckpt) == ['meta', 'state_dict'] and ckpt['meta']['source_layout'] == 'official'
    state = ckpt['state_dict']
    assert torch.equal(state['cls_head.fc_cls.weight'], sd['head.weight'][label_map].half())
    assert torch.equal(state['backbone.blocks.1.mlp.layers.1.bias'], sd['blocks.1.mlp.fc2.bias'].half())
    # The buffer mmaction2 would build for 4 frames x 32 px (its own sinusoid code).
    expected_pos = mmaction[0].get_sinusoid_encoding(8, 64)
    assert (state['backbone.pos_embed'] - expected_pos).abs().max() <= 1e-6


@pytest.fixture(scope='module')
def tool():
    """The CLI's module, run in-process (faster than a subprocess) for the wrapper cases."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('convert_checkpoint', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_wrappers(tmp_path, tiny_vit, source, tool, capsys):
    _, sd = source
    torch.save({k: v.half() for k, v in sd.items()}, tmp_path / 'bare.pth')
    assert tool.main([str(tmp_path / 'bare.pth'), str(tmp_path / 'ft.pth'), '--to', 'official']) == 0
    ckpt = torch.load(tmp_path / 'ft.pth', weights_only=True)
    assert list(ckpt) == ['module'] and all(torch.equal(ckpt['module'][k], v.half()) for k, v in sd.items())

    state = pretrain_state(randomize_(tiny_vit(num_classes=0), seed=2))
    torch.save({'model': {f'_orig_mod.{k}': v for k, v in state.items()}}, tmp_path / 'pt.pth')
    assert tool.main([str(tmp_path / 'pt.pth'), str(tmp_path / 'pt_hf.pth'), '--to', 'hf']) == 0
    assert tool.main([str(tmp_path / 'pt_hf.pth'), str(tmp_path / 'pt_back.pth'), '--to', 'official']) == 0
    ckpt = torch.load(tmp_path / 'pt_back.pth', weights_only=True)
    assert list(ckpt) == ['model'] and sorted(ckpt['model']) == sorted(state)
    assert all(torch.equal(ckpt['model'][k], v) for k, v in state.items())
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and 'pretrain -> hf (bare)' in lines[1] and 'pretrain -> official (model)' in lines[2]


def test_cli_hf_safetensors(tmp_path, source, hf, tool):
    transformers, config = hf
    src, sd = source
    torch.save({'module': sd}, tmp_path / 'ft.pth')
    assert tool.main([str(tmp_path / 'ft.pth'), str(tmp_path / 'model.safetensors'), '--to', 'hf']) == 0
    from safetensors.torch import load_file
    reference = transformers.VideoMAEForVideoClassification(config()).eval()
    reference.load_state_dict(load_file(str(tmp_path / 'model.safetensors')), strict=True)
    reference.fc_norm.eps = src.fc_norm.eps
    x = clip()
    with torch.no_grad():
        assert (reference(pixel_values=hf_pixels(x)).logits - src(x)).abs().max() <= 1e-5


def test_cli_hf_folder_loads_in_transformers_as_it_is(tmp_path, source, hf, tool):
    """--to hf with a folder: config.json + model.safetensors that from_pretrained(folder) loads with no config of
    ours (before, OUT was one bare file and transformers needed a hand-written config)."""
    transformers, _ = hf
    src, sd = source
    torch.save({'module': sd}, tmp_path / 'ft.pth')
    (tmp_path / 'names.txt').write_text('a\nb\nc\nd\ne\n')
    out = tmp_path / 'hf_export'
    assert tool.main([str(tmp_path / 'ft.pth'), str(out), '--to', 'hf', '--img-size', '32', '--num-frames', '4',
                      '--labels', str(tmp_path / 'names.txt')]) == 0
    assert sorted(p.name for p in out.iterdir()) == ['config.json', 'model.safetensors']
    config = json.loads((out / 'config.json').read_text())
    assert {k: config[k] for k in ('hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size',
                                   'image_size', 'num_frames', 'tubelet_size', 'patch_size', 'qkv_bias',
                                   'use_mean_pooling')} == {
        'hidden_size': 64, 'num_hidden_layers': 2, 'num_attention_heads': 4, 'intermediate_size': 256,
        'image_size': 32, 'num_frames': 4, 'tubelet_size': 2, 'patch_size': 16, 'qkv_bias': True,
        'use_mean_pooling': True}
    classifier, info = transformers.VideoMAEForVideoClassification.from_pretrained(out, output_loading_info=True)
    assert not info['missing_keys'] and not info['unexpected_keys'] and not info['mismatched_keys']
    assert classifier.config.num_attention_heads == 4 and classifier.config.layer_norm_eps == 1e-6
    assert classifier.config.id2label == dict(enumerate('abcde'))
    encoder = transformers.VideoMAEModel.from_pretrained(out).eval()
    x = clip()
    with torch.no_grad():
        # HF's fc_norm keeps LayerNorm's default eps 1e-5 (the official 1e-6 cannot be set through the config): the
        # logits differ by far less than the tolerance
        assert (classifier.eval()(pixel_values=hf_pixels(x)).logits - src(x)).abs().max() <= 1e-5
        assert (encoder(pixel_values=hf_pixels(x)).last_hidden_state - src.forward_tokens(x)).abs().max() <= 1e-5


def test_cli_hf_folder_of_a_pretraining_checkpoint(tmp_path, tiny_vit, hf, tool, capsys):
    transformers, _ = hf
    state = pretrain_state(randomize_(tiny_vit(num_classes=0), seed=2))  # 1-block 32-d decoder: no preset has it
    torch.save({'model': state}, tmp_path / 'pt.pth')
    out = tmp_path / 'pt_hf'
    argv = [str(tmp_path / 'pt.pth'), str(out), '--to', 'hf', '--img-size', '32', '--num-frames', '4']
    assert tool.main(argv) == 2
    assert 'no preset has a decoder of width 32 and depth 1' in capsys.readouterr().err
    assert not (out / 'model.safetensors').exists()  # no weights left without their config
    assert tool.main(argv + ['--decoder-num-heads', '2']) == 0
    model, info = transformers.VideoMAEForPreTraining.from_pretrained(out, output_loading_info=True)
    assert not info['missing_keys'] and not info['unexpected_keys']
    assert model.config.use_mean_pooling is False and model.config.decoder_num_attention_heads == 2
    ours = tiny_vit(num_classes=0)
    load_checkpoint(ours, state)
    x = clip()
    with torch.no_grad():
        expected = model.eval().videomae(pixel_values=hf_pixels(x)).last_hidden_state  # after videomae.layernorm
        tokens = F.layer_norm(ours.forward_tokens(x), (64,), state['encoder.norm.weight'], state['encoder.norm.bias'],
                              eps=1e-6)
        assert (tokens - expected).abs().max() <= 1e-5
    assert tool.main([str(tmp_path / 'pt.pth'), str(tmp_path / 'x'), '--to', 'hf', '--labels', 'k400',
                      '--decoder-num-heads', '2']) == 0  # no head: the names have nothing to name


def test_cli_hf_folder_errors(tmp_path, source, tool, capsys):
    _, sd = source
    torch.save({'module': sd}, tmp_path / 'ft.pth')
    (tmp_path / 'file').write_text('')
    cases = [(['--labels', 'k400'], '400 label names for a head of 5 classes'),
             (['--labels', 'k600'], 'k600 class names are not shipped'),
             (['--img-size', '40'], 'do not tile')]
    for extra, message in cases:
        assert tool.main([str(tmp_path / 'ft.pth'), str(tmp_path / 'out'), '--to', 'hf', *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith('convert_checkpoint: error: ') and message in err, (extra, err)
    assert not (tmp_path / 'out' / 'model.safetensors').exists()
    assert tool.main([str(tmp_path / 'ft.pth'), str(tmp_path / 'file'), '--to', 'hf']) == 2
    assert 'exists and is not a folder' in capsys.readouterr().err


def test_cli_errors_are_one_line(tmp_path, source, tool, capsys):
    _, sd = source
    torch.save({'module': sd}, tmp_path / 'ft.pth')
    (tmp_path / 'notes.txt').write_text('not weights\n')
    ft, out = str(tmp_path / 'ft.pth'), str(tmp_path / 'out.pth')
    cases = [([str(tmp_path / 'notes.txt'), out, '--to', 'official'], f'{tmp_path / "notes.txt"}: not a PyTorch'),
             ([ft, out, '--to', 'hf', '--img-size', '224'], 'pos_embed grid of --to mmaction2 only'),
             ([ft, out, '--to', 'mmaction2', '--patch', '14'], '--patch 14 disagrees with patch_embed.proj.weight'),
             ([ft, out, '--to', 'mmaction2', '--img-size', '40'], 'do not tile'),
             ([ft, out, '--to', 'official', '--label-map', str(tmp_path / 'absent.json')], 'cannot read the label map'),
             ([ft, str(tmp_path / 'notes.txt' / 'sub' / 'out.pth'), '--to', 'official'],
              f'cannot create the output folder {tmp_path / "notes.txt" / "sub"}: {tmp_path / "notes.txt"} is not a '
              'folder')]
    for argv, message in cases:
        assert tool.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith('convert_checkpoint: error: ') and err.count('\n') == 1 and message in err, argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ft.pth', 'notes.txt']  # nothing written, no temp files
    # a missing output folder is created, like `checkpoints/` in configs/README.md
    assert tool.main([ft, str(tmp_path / 'new' / 'dir' / 'out.pth'), '--to', 'official']) == 0
    assert torch.load(tmp_path / 'new' / 'dir' / 'out.pth', weights_only=True)['module'].keys() == sd.keys()


# ---------------------------------------------------------------------------------------------------------------------
# files that carry code: nothing runs (docs/security.md#checkpoints)
# ---------------------------------------------------------------------------------------------------------------------
class Rebuilt:
    """Pickles as ``func(*args)`` with an optional state, the way a file makes its loader call something."""

    def __init__(self, func, args, state=None):
        self.reduced = (func, args) if state is None else (func, args, state)

    def __reduce__(self):
        return self.reduced


def test_code_in_a_checkpoint_is_refused_before_it_runs(tmp_path, tiny_vit, source):
    _, sd = source
    marker, path = tmp_path / 'ran', tmp_path / 'ft.pth'
    torch.save({'module': sd, 'args': Rebuilt(os.system, (f'touch {marker}',))}, path)
    with pytest.raises(CheckpointError, match=rf'{path}: .*refused the file: it pickles Python objects '
                                              rf'\({os.system.__module__}\.system\)'):
        load_checkpoint(tiny_vit(num_classes=5), path)
    assert not marker.exists()


def test_training_checkpoint_objects_are_read_as_inert_stand_ins(tmp_path, tiny_vit, source, monkeypatch):
    """Only the weights of a training checkpoint are read: its message hub runs no code of mmengine's or numpy's.
    HistoryBuffer.__setstate__ would write the file's statistics methods into the class (here: 'mean' -> max)."""
    from mmengine.logging import HistoryBuffer

    monkeypatch.setattr(HistoryBuffer, '_statistics_methods', dict(HistoryBuffer._statistics_methods))
    _, sd = source
    path = tmp_path / 'epoch_3.pth'
    history = HistoryBuffer([1.0, 3.0], [1, 1])
    history._statistics_methods = {'mean': HistoryBuffer.max}  # pickled as its statistics methods
    torch.save({'state_dict': sd, 'message_hub': {'log_scalars': {'train/loss': history}}}, path)
    model = tiny_vit(num_classes=5)
    load_checkpoint(model, path)
    assert_state_equal(model, sd)
    assert HistoryBuffer._statistics_methods['mean'] is HistoryBuffer.mean


def test_numpy_states_in_a_training_checkpoint_cannot_crash_the_reader(tmp_path, source):
    """A message-hub array whose dtype state claims an object field, filled with raw bytes: numpy's own __setstate__
    builds an array of wild object pointers, which segfaults when freed. Read in a child process, so that a crash
    fails this test instead of killing pytest."""
    _, sd = source
    reconstruct = np.empty(0).__reduce__()[0]
    dtype = Rebuilt(np.dtype, ('V8', False, True), (3, '|', None, ('a',), {'a': (np.dtype('O'), 0)}, 8, 1, 1))
    array = Rebuilt(reconstruct, (np.ndarray, (0,), b'b'), (1, (1,), dtype, False, b'A' * 8))
    path = tmp_path / 'epoch_3.pth'
    torch.save({'state_dict': sd, 'message_hub': {'log_scalars': {'train/loss': array}}}, path)
    script = f'import sys; sys.path.insert(0, {str(REPO)!r}); from backbone import read_checkpoint; ' \
             f'print(sorted(read_checkpoint({str(path)!r})) == {sorted(sd)!r})'
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f'reading crashed (exit {done.returncode}): {done.stderr[-2000:]}'
    assert done.stdout.strip() == 'True'
