"""The dual-masked pre-training model (``backbone/pretrain.py``).

Independent references:

* Hugging Face transformers' ``VideoMAEForPreTraining`` (VideoMAE V1: the decoder reconstructs every encoder-masked
  token, per-patch normalised targets) for V1 mode, predictions and loss;
* the dual-masked forward of docs/pretraining.md#masks-and-loss steps 1-4 assembled by hand from the HF model's own
  modules;
* hand computations: the official parameter names and shapes of docs/backbone.md#embedding-attention-and-blocks,
  docs/pretraining.md#encoder-and-decoder-sizes, the loss region on a hand-built 8-token case, the target
  normalisation from a literal loop over pixels with ``statistics.stdev``;
* properties: over-fitting one clip, checkpointing changes nothing, meta -> to_empty -> load reproduces the model.

Tiny CPU models throughout (``vit_test``: 64-d, 2 blocks; decoder 32-d, 2 blocks); the full presets are built on the
meta device and the real sequence lengths are measured on narrow models at the real grids.
"""
from __future__ import annotations

import itertools
import statistics

import numpy as np
import pytest
import torch
import torch.nn as nn

from backbone import CheckpointError, VideoMAEv2Pretrainer, VideoMAEv2ViT, convert_state_dict, load_checkpoint
from backbone.masking import DualMaskGenerator
from backbone.pretrain import IMAGENET_MEAN, IMAGENET_STD, VideoMAEv2PretrainEncoder, patchify, unpatchify
from backbone.videomaev2 import Block, PatchEmbed

DIM, DEPTH, HEADS, DEC_DIM, DEC_DEPTH, DEC_HEADS, PATCH = 64, 2, 4, 32, 2, 2, 16


def _model(img_size: int = 32, frames: int = 4, **kwargs) -> VideoMAEv2Pretrainer:
    return VideoMAEv2Pretrainer('vit_test', img_size=img_size, all_frames=frames, **kwargs)


def _randomise_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Distinct random values in every parameter, so a swapped or dropped tensor changes the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=gen))
    return model


def _clip(batch: int = 2, frames: int = 4, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def _masks(grid, batch: int = 2, seed: int = 0, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    gen = DualMaskGenerator(grid, **kwargs)
    rng = np.random.default_rng(seed)
    pairs = [gen(rng) for _ in range(batch)]
    return tuple(torch.from_numpy(np.stack(m)) for m in zip(*pairs))


# =====================================================================================================================
# 1. Parameter names and sizes (docs/backbone.md#embedding-attention-and-blocks,
# docs/pretraining.md#encoder-and-decoder-sizes)
# =====================================================================================================================
def official_pretrain_shapes(depth: int, dim: int, hidden: int, dec_depth: int, dec_dim: int, dec_hidden: int,
                             patch: int = 16) -> dict[str, tuple[int, ...]]:
    """Every key of an official pre-training state dict with its shape, written from the module list."""
    def block(prefix: str, c: int, h: int) -> dict[str, tuple[int, ...]]:
        return {f'{prefix}.norm1.weight': (c,), f'{prefix}.norm1.bias': (c,),
                f'{prefix}.attn.qkv.weight': (3 * c, c), f'{prefix}.attn.q_bias': (c,), f'{prefix}.attn.v_bias': (c,),
                f'{prefix}.attn.proj.weight': (c, c), f'{prefix}.attn.proj.bias': (c,),
                f'{prefix}.norm2.weight': (c,), f'{prefix}.norm2.bias': (c,),
                f'{prefix}.mlp.fc1.weight': (h, c), f'{prefix}.mlp.fc1.bias': (h,),
                f'{prefix}.mlp.fc2.weight': (c, h), f'{prefix}.mlp.fc2.bias': (c,)}
    out = 3 * 2 * patch * patch
    shapes = {'encoder.patch_embed.proj.weight': (dim, 3, 2, patch, patch), 'encoder.patch_embed.proj.bias': (dim,)}
    for i in range(depth):
        shapes.update(block(f'encoder.blocks.{i}', dim, hidden))
    shapes.update({'encoder.norm.weight': (dim,), 'encoder.norm.bias': (dim,),
                   'encoder_to_decoder.weight': (dec_dim, dim), 'mask_token': (1, 1, dec_dim)})
    for i in range(dec_depth):
        shapes.update(block(f'decoder.blocks.{i}', dec_dim, dec_hidden))
    shapes.update({'decoder.norm.weight': (dec_dim,), 'decoder.norm.bias': (dec_dim,),
                   'decoder.head.weight': (out, dec_dim), 'decoder.head.bias': (out,)})
    return shapes


# docs/pretraining.md#encoder-and-decoder-sizes: encoder (C, L, MLP hidden), decoder (dim, heads, depth, MLP hidden),
# patch; output = 3*2*p^2.
PRESETS = {
    'vit_small': ((384, 12, 1536), (192, 3, 4, 768), 16),
    'vit_base': ((768, 12, 3072), (384, 6, 4, 1536), 16),
    'vit_large': ((1024, 24, 4096), (512, 8, 4, 2048), 16),
    'vit_huge': ((1280, 32, 5120), (512, 8, 4, 2048), 16),
    'vit_giant': ((1408, 40, 6144), (512, 8, 4, 2234), 14),
}


@pytest.mark.parametrize('arch', list(PRESETS))
def test_presets_have_official_names_and_shapes(arch):
    (dim, depth, hidden), (dec_dim, dec_heads, dec_depth, dec_hidden), patch = PRESETS[arch]
    with torch.device('meta'):
        model = VideoMAEv2Pretrainer(arch)
    state = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert state == official_pretrain_shapes(depth, dim, hidden, dec_depth, dec_dim, dec_hidden, patch)
    assert model.decoder.blocks[0].attn.num_heads == dec_heads
    assert model.decoder.head.out_features == 3 * 2 * patch ** 2  # 1536, ViT-g 1176


def test_tiny_model_has_official_names():
    state = {k: tuple(v.shape) for k, v in _model().state_dict().items()}
    assert state == official_pretrain_shapes(DEPTH, DIM, 4 * DIM, DEC_DEPTH, DEC_DIM, 4 * DEC_DIM)


# =====================================================================================================================
# 2. Shared code with the downstream ViT, and checkpoints
# =====================================================================================================================
def test_encoder_is_the_downstream_vit():
    model = _model()
    vit = VideoMAEv2ViT('vit_test', img_size=32, all_frames=4, num_classes=5)
    assert isinstance(model.encoder, VideoMAEv2ViT)
    assert type(model.encoder.patch_embed) is PatchEmbed
    assert all(type(b) is Block for b in [*model.encoder.blocks, *model.decoder.blocks])
    encoder_keys = set(model.encoder.state_dict())
    vit_keys = set(vit.state_dict())
    # The only differences: the encoder's final `norm` vs the downstream `fc_norm` and `head`.
    assert encoder_keys - vit_keys == {'norm.weight', 'norm.bias'}
    assert vit_keys - encoder_keys == {'fc_norm.weight', 'fc_norm.bias', 'head.weight', 'head.bias'}


def test_pretrained_encoder_loads_into_downstream_vit():
    model = _randomise_(_model())
    vit = VideoMAEv2ViT('vit_test', img_size=32, all_frames=4, num_classes=5)
    result = load_checkpoint(vit, {'model': model.state_dict()})
    assert result.layout == 'pretrain'
    assert result.missing == ['fc_norm.bias', 'fc_norm.weight', 'head.bias', 'head.weight']
    decoder_side = {k for k in model.state_dict() if k.startswith(('decoder.', 'encoder_to_decoder', 'mask_token'))}
    assert decoder_side <= set(result.unexpected)
    assert set(result.unexpected) - decoder_side == {'encoder.norm.bias', 'encoder.norm.weight'}
    clip = _clip()
    with torch.no_grad():  # same blocks, same weights: identical tokens over the full clip
        torch.testing.assert_close(vit.forward_tokens(clip), model.encoder.forward_tokens(clip), atol=0, rtol=0)


def _official_file_state(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shapes = official_pretrain_shapes(DEPTH, DIM, 4 * DIM, DEC_DEPTH, DEC_DIM, 4 * DEC_DIM)
    return {k: torch.randn(s, generator=gen) for k, s in shapes.items()}


@pytest.mark.parametrize('wrapper, prefix', [
    ('model', ''),                 # official utils.save_model
    ('model', '_orig_mod.'),       # official, trained under torch.compile
    ('state_dict', 'backbone.'),   # an mmengine checkpoint of a model holding the pre-trainer as `backbone`
])
def test_official_pretrain_file_loads_strictly(tmp_path, wrapper, prefix):
    state = _official_file_state()
    path = tmp_path / 'checkpoint-799.pth'
    torch.save({wrapper: {prefix + k: v for k, v in state.items()}, 'epoch': 799}, path)
    model = _model()
    result = load_checkpoint(model, path)
    assert (result.layout, result.missing, result.unexpected) == ('pretrain', [], [])  # loaded whole
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def test_one_pretraining_file_fills_the_pretrainer_whole_and_the_vit_with_its_encoder(tmp_path):
    """The same official pre-training file through the same loader: the pre-trainer takes every tensor (its loss is
    the source's, bit for bit), the downstream ViT takes the encoder and reports the decoder side as dropped."""
    source = _randomise_(_model(), seed=4)
    path = tmp_path / 'checkpoint-799.pth'  # official utils.save_model of a torch.compile'd model
    torch.save({'model': {f'_orig_mod.{k}': v for k, v in source.state_dict().items()}}, path)

    pretrainer = _model()
    result = load_checkpoint(pretrainer, path)
    assert (result.layout, result.missing, result.unexpected) == ('pretrain', [], [])
    clip = _clip()
    mask, decode_mask = _masks((2, 2, 2), encoder_ratio=0.5)
    with torch.no_grad():
        torch.testing.assert_close(pretrainer.loss(clip, mask, decode_mask), source.loss(clip, mask, decode_mask),
                                   atol=0, rtol=0)

    vit = VideoMAEv2ViT('vit_test', img_size=32, all_frames=4, num_classes=5)
    result = load_checkpoint(vit, path)
    assert result.missing == ['fc_norm.bias', 'fc_norm.weight', 'head.bias', 'head.weight']
    assert result.unexpected == sorted(k for k in source.state_dict()
                                       if k.startswith(('decoder.', 'encoder_to_decoder.', 'mask_token',
                                                        'encoder.norm.')))
    with torch.no_grad():
        torch.testing.assert_close(vit.forward_tokens(clip), source.encoder.forward_tokens(clip), atol=0, rtol=0)


def test_pretrained_argument_and_init_cfg_load_on_init_weights(tmp_path):
    state = _official_file_state(seed=2)
    path = tmp_path / 'pt.pth'
    torch.save({'model': state}, path)
    for model in (_model(pretrained=str(path)), _model(init_cfg=dict(type='Pretrained', checkpoint=str(path)))):
        model.init_weights()
        assert torch.equal(model.mask_token, state['mask_token'])


def test_pretrain_file_errors_name_the_problem(tmp_path):
    state = _official_file_state()
    missing = dict(state)
    missing.pop('decoder.blocks.1.mlp.fc2.bias')
    with pytest.raises(CheckpointError, match=r'missing from the checkpoint: decoder\.blocks\.1\.mlp\.fc2\.bias'):
        load_checkpoint(_model(), missing)
    with pytest.raises(CheckpointError, match=r'shape of mask_token: checkpoint \(1, 1, 32\) vs model \(1, 1, 48\)'):
        load_checkpoint(_model(decoder_embed_dim=48), state)
    downstream = {k.removeprefix('encoder.'): v for k, v in state.items() if k.startswith('encoder.')}
    with pytest.raises(CheckpointError, match='not a pre-training checkpoint'):
        load_checkpoint(_model(), downstream)


def test_meta_model_materialises_with_fixed_buffers(monkeypatch):
    """meta -> to_empty -> load_state_dict gives the real model, although the position tables, the zero k biases and
    the pixel mean/std are in no state dict."""
    reference = _randomise_(_model())
    with torch.device('meta'):
        model = _model()
    # to_empty allocates with torch.empty_like; make "uninitialised" memory NaN so nothing passes by luck.
    empty_like = torch.empty_like
    monkeypatch.setattr(torch, 'empty_like', lambda t, **kw: empty_like(t, **kw).fill_(float('nan')))
    model.to_empty(device='cpu')
    monkeypatch.undo()
    for name, buffer in model.named_buffers():
        torch.testing.assert_close(buffer, reference.get_buffer(name), atol=0, rtol=0, msg=name)
    model.load_state_dict(reference.state_dict())
    clip = _clip()
    mask, decode_mask = _masks((2, 2, 2), encoder_ratio=0.5)
    with torch.no_grad():
        torch.testing.assert_close(model.loss(clip, mask, decode_mask), reference.loss(clip, mask, decode_mask))


def test_registered_in_mmaction2():
    from mmaction.registry import MODELS
    model = MODELS.build(dict(type='VideoMAEv2Pretrainer', arch='vit_test', img_size=32, all_frames=4))
    assert isinstance(model, VideoMAEv2Pretrainer)


# =====================================================================================================================
# 3. Forward: HF parity (V1) and the dual-masked forward of docs/pretraining.md#masks-and-loss
# =====================================================================================================================
@pytest.fixture(scope='module')
def hf_pretrainer():
    transformers = pytest.importorskip('transformers', reason='transformers is the reference for the parity tests')
    config = transformers.VideoMAEConfig(
        hidden_size=DIM, num_hidden_layers=DEPTH, num_attention_heads=HEADS, intermediate_size=4 * DIM,
        image_size=64, num_frames=4, patch_size=PATCH, tubelet_size=2, layer_norm_eps=1e-6, qv_bias=True,
        use_mean_pooling=False, decoder_hidden_size=DEC_DIM, decoder_num_hidden_layers=DEC_DEPTH,
        decoder_num_attention_heads=DEC_HEADS, decoder_intermediate_size=4 * DEC_DIM, norm_pix_loss=True,
        attn_implementation='eager')
    hf = transformers.VideoMAEForPreTraining(config).eval()
    hf.decoder.norm.eps = 1e-6  # HF's decoder norm uses the LayerNorm default 1e-5; the official one 1e-6
    return hf


@pytest.fixture(scope='module')
def paired(hf_pretrainer):
    """Our randomised 64-px model and the HF model holding the same weights."""
    torch.manual_seed(0)
    model = _randomise_(_model(img_size=64)).eval()
    hf_pretrainer.load_state_dict(convert_state_dict(model.state_dict(), 'hf'), strict=True)
    return model, hf_pretrainer


def test_v1_mode_matches_hf_pretraining(paired):
    model, hf = paired
    clip = _clip(size=64)
    mask, _ = _masks((2, 4, 4), encoder_ratio=0.75)   # 8 visible of 32
    with torch.no_grad():
        ref = hf(clip.transpose(1, 2), bool_masked_pos=mask)
        pred = model(clip, mask)                       # decode_mask None = V1
        loss = model.loss(clip, mask)
    assert pred.shape == ref.logits.shape == (2, 24, 3 * 2 * PATCH ** 2)  # every encoder-masked token
    torch.testing.assert_close(pred, ref.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss, ref.loss, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(model(clip, mask, ~mask), pred, atol=0, rtol=0)  # explicit complement, same thing


def test_hf_pretraining_weights_load_strictly(paired):
    model, hf = paired
    fresh = _model(img_size=64)
    load_checkpoint(fresh, hf.state_dict())  # transformers names: decoder.decoder_layers, videomae.layernorm
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def _reference_dual_forward(hf, clip, mask, decode_mask):
    """docs/pretraining.md#masks-and-loss steps 1-4 from HF's modules: encode the visible tokens, project, add the
    decoder position, append mask tokens at every decoder-kept position, return the outputs of the appended tokens."""
    batch = clip.shape[0]
    visible = hf.videomae(clip.transpose(1, 2), bool_masked_pos=mask).last_hidden_state
    visible = hf.encoder_to_decoder(visible)
    pos = hf.position_embeddings.expand(batch, -1, -1)
    dim = visible.shape[-1]
    kept = ~decode_mask
    x = torch.cat([visible + pos[~mask].reshape(batch, -1, dim), hf.mask_token + pos[kept].reshape(batch, -1, dim)], 1)
    return hf.decoder(x, int(kept[0].sum())).logits


def test_dual_forward_matches_reference_assembled_from_hf(paired):
    model, hf = paired
    clip = _clip(size=64)
    mask, decode_mask = _masks((2, 4, 4), encoder_ratio=0.75)  # tube 0.75, running cell 0.5
    assert (~mask & ~decode_mask).any()                          # some kept positions are encoder-visible
    with torch.no_grad():
        pred = model(clip, mask, decode_mask)
        ref = _reference_dual_forward(hf, clip, mask, decode_mask)
    assert pred.shape == (2, 16, 3 * 2 * PATCH ** 2)
    torch.testing.assert_close(pred, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('patch, visible, kept', [(16, 160, 784), (14, 208, 1024)])
def test_real_grid_sequence_lengths(patch, visible, kept):
    """16x224 with tube 0.9 + running cell 0.5: 944 = 160 + 784 decoder tokens at p16, 1232 = 208 + 1024 for ViT-g's
    p14 (V1: 1568 / 2048). Narrow blocks, real grid, real masks."""
    model = VideoMAEv2Pretrainer('vit_test', img_size=224, all_frames=16, patch_size=patch, depth=1,
                                 decoder_depth=1).eval()
    grid = model.grid_size
    seen = []
    model.encoder.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(('enc', args[0].shape[1])))
    model.decoder.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(('dec', args[0].shape[1])))
    clip = torch.randn(1, 3, 16, 224, 224)
    for decoder in ('run_cell', 'none'):
        seen.clear()
        mask, decode_mask = _masks(grid, batch=1, decoder=decoder)
        with torch.no_grad():
            pred = model(clip, mask, decode_mask)
        n_dec = kept if decoder == 'run_cell' else grid[0] * grid[1] * grid[2] - visible
        assert seen == [('enc', visible), ('dec', visible + n_dec)]
        assert pred.shape == (1, n_dec, 3 * 2 * patch ** 2)
    assert visible + kept == (944 if patch == 16 else 1232)


# =====================================================================================================================
# 4. Targets and loss (docs/pretraining.md#masks-and-loss)
# =====================================================================================================================
def test_patchify_layout_and_inverse():
    video = torch.randn(2, 3, 4, 32, 48)
    patches = patchify(video, 16, 2)
    assert patches.shape == (2, 2 * 2 * 3, 2 * 16 * 16, 3)
    for b, t, h, w, f, y, x, c in [(0, 0, 0, 0, 0, 0, 0, 0), (1, 1, 1, 2, 1, 15, 3, 2), (0, 1, 0, 1, 0, 7, 11, 1)]:
        token = (t * 2 + h) * 3 + w                      # T' slowest, then rows, then columns
        pixel = (f * 16 + y) * 16 + x                    # (frame in tubelet, row, column)
        assert patches[b, token, pixel, c] == video[b, c, 2 * t + f, 16 * h + y, 16 * w + x]
    torch.testing.assert_close(unpatchify(patches, (2, 2, 3), 16, 2), video, atol=0, rtol=0)
    torch.testing.assert_close(unpatchify(patches.flatten(2), (2, 2, 3), 16, 2), video, atol=0, rtol=0)


def test_targets_match_hand_normalisation():
    model = _model()                                     # grid (2, 2, 2), 512 pixels per token and channel
    pixels = torch.rand(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(5))
    pixels[0, :, 0:2, 0:16, 0:16] = 0.25                 # token 0, all channels: constant -> std 0 -> target 0
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None, None]
    video = (pixels - mean) / std                        # what the data pipeline feeds the model
    targets = model.targets(video)
    assert targets.shape == (1, 8, 2 * 16 * 16 * 3) and targets.dtype == torch.float32
    for token, (t, h, w) in [(5, (1, 0, 1)), (2, (0, 1, 0)), (0, (0, 0, 0))]:
        expected = np.zeros(2 * 16 * 16 * 3)
        for c in range(3):
            values = [float(pixels[0, c, 2 * t + f, 16 * h + y, 16 * w + x])
                      for f, y, x in itertools.product(range(2), range(16), range(16))]
            mu, sigma = statistics.fmean(values), statistics.stdev(values)  # stdev: the unbiased (n-1) estimate
            for index, value in enumerate(values):
                expected[index * 3 + c] = (value - mu) / (sigma + 1e-6)     # channel last
        np.testing.assert_allclose(targets[0, token].numpy(), expected, atol=2e-5, rtol=0, err_msg=f'token {token}')
    raw = _model(normalize_target=False).targets(video)
    torch.testing.assert_close(raw, patchify(pixels, 16, 2).flatten(2), atol=1e-6, rtol=0)


# Hand-built 8-token case (grid 2x2x2), one sample:
#   position        0  1  2  3  4  5  6  7
#   encoder mask    1  0  1  1  1  0  1  1     visible: 1, 5
#   decoder mask    1  0  0  1  0  1  1  0     kept:    1, 2, 4, 7  -> outputs in this order
#   loss weight        0  1     1        1     (encoder mask at the kept positions; position 1 was seen)
HAND_MASK = torch.tensor([[1, 0, 1, 1, 1, 0, 1, 1]], dtype=torch.bool)
HAND_DECODE = torch.tensor([[1, 0, 0, 1, 0, 1, 1, 0]], dtype=torch.bool)
KEPT = [1, 2, 4, 7]


@pytest.mark.parametrize('errors, expected', [
    ({}, 0.0),
    ({0: 3.0}, 0.0),                      # error on the encoder-visible kept token (position 1): not in the loss
    ({1: 3.0}, 9.0 / 3),                  # position 2: mse 9, averaged over the 3 weighted tokens
    ({1: 3.0, 3: 1.0}, (9.0 + 1.0) / 3),  # positions 2 and 7
    ({0: 5.0, 2: 2.0}, 4.0 / 3),          # position 1 ignored, position 4 counts
])
def test_loss_covers_decoder_kept_and_encoder_masked_tokens(monkeypatch, errors, expected):
    model = _model()
    video = _clip(batch=1)
    targets = model.targets(video)[0, KEPT]                       # (4, D) in kept-position order
    pred = targets.clone()
    for index, error in errors.items():
        pred[index] += error                                      # every element off by `error`: token mse = error^2
    monkeypatch.setattr(model, 'forward_decoder', lambda *args: pred[None])
    loss = model.loss(video, HAND_MASK, HAND_DECODE)
    torch.testing.assert_close(loss, torch.tensor(expected), atol=1e-5, rtol=1e-5)


def test_forward_returns_kept_positions_in_order(monkeypatch):
    """The decoder input is [visible tokens (1, 5) | mask tokens at kept positions (1, 2, 4, 7)], and forward returns
    the outputs of the mask tokens only."""
    model = _randomise_(_model())
    captured = {}
    monkeypatch.setattr(model.decoder, 'forward', lambda x, n, with_cp=False: captured.update(x=x, n=n) or x[:, -n:])
    with torch.no_grad():
        out = model(_clip(batch=1), HAND_MASK, HAND_DECODE)
    pos = model.decoder_pos_embed[0]
    assert captured['n'] == 4 and captured['x'].shape == (1, 2 + 4, DEC_DIM)
    torch.testing.assert_close(out[0], model.mask_token[0, 0] + pos[KEPT], atol=1e-6, rtol=0)


def test_v1_loss_is_plain_mean_over_encoder_masked_tokens():
    model = _randomise_(_model())
    video = _clip()
    mask, _ = _masks((2, 2, 2), encoder_ratio=0.5)
    with torch.no_grad():
        pred = model(video, mask)
        targets = model.targets(video)[mask].reshape(2, -1, pred.shape[-1])
        assert pred.shape[1] == int(mask[0].sum())
        torch.testing.assert_close(model.loss(video, mask), nn.functional.mse_loss(pred, targets))


def test_reconstruct_returns_the_clip_when_predictions_are_perfect(monkeypatch):
    model = _model()
    video = _clip(batch=1)
    perfect = model.targets(video)[0, KEPT][None]
    monkeypatch.setattr(model, 'forward_decoder', lambda *args: perfect)
    out = model.reconstruct(video, HAND_MASK, HAND_DECODE)
    torch.testing.assert_close(out, model.denormalize(video), atol=1e-5, rtol=0)


# =====================================================================================================================
# 5. Training behaviour
# =====================================================================================================================


def test_single_clip_overfits(one_thread):
    torch.manual_seed(0)
    model = _model()
    video = _clip(batch=1)
    mask, decode_mask = _masks(model.grid_size, batch=1, encoder_ratio=0.5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.05)
    losses = []
    for _ in range(30):
        loss = model.loss(video, mask, decode_mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_checkpointing_gives_identical_loss_and_grads():
    video = _clip()
    mask, decode_mask = _masks((2, 2, 2), encoder_ratio=0.5)
    results = []
    for with_cp in (False, True):
        torch.manual_seed(0)
        model = _model(with_cp=with_cp, drop_path_rate=0.2)
        model.train()
        torch.manual_seed(1)  # same drop-path draws
        loss = model.loss(video, mask, decode_mask)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    torch.testing.assert_close(results[0][0], results[1][0], atol=0, rtol=0)
    for name, grad in results[0][1].items():
        torch.testing.assert_close(grad, results[1][1][name], atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize('shape', [(), (7,), (3, 2)])
def test_select_equals_a_boolean_mask_gather(shape):
    """``select_kept`` (stable argsort + integer gather) gives exactly ``tokens[keep]``, values and gradients, on random
    masks with the same count in every row, for token tensors of any trailing shape and for bool tensors."""
    from backbone.pretrain import select_kept

    gen = torch.Generator().manual_seed(0)
    for batch, tokens, count in [(3, 10, 4), (1, 5, 5), (4, 1568, 160), (2, 9, 1)]:
        keep = torch.zeros(batch, tokens, dtype=torch.bool)
        for row in keep:
            row[torch.randperm(tokens, generator=gen)[:count]] = True
        x = torch.randn(batch, tokens, *shape, generator=gen, requires_grad=True)
        out, reference = select_kept(x, keep, count), x[keep].reshape(batch, count, *shape)
        assert torch.equal(out, reference)
        weight = torch.randn(out.shape, generator=gen)
        grad, = torch.autograd.grad((out * weight).sum(), x)
        grad_reference, = torch.autograd.grad((reference * weight).sum(), x)
        assert torch.equal(grad, grad_reference)
        flags = torch.rand(batch, tokens, generator=gen) > 0.5
        assert torch.equal(select_kept(flags, keep, count), flags[keep].reshape(batch, count))
        table = torch.randn(1, tokens, 6, generator=gen).expand(batch, -1, -1)  # the decoder's expanded positions
        assert torch.equal(select_kept(table, keep, count), table[keep].reshape(batch, count, 6))


def test_training_step_has_no_data_dependent_device_op():
    """Loss and backward with host masks (as the pre-training preprocessor passes them) run no operation that makes
    the host wait for a GPU (nonzero, boolean-mask gathers, .item()); the masks are counted on the host."""
    from tests.host_sync_kit import SyncOps

    model = _randomise_(_model())
    video = _clip()
    mask, decode_mask = _masks(model.grid_size, encoder_ratio=0.5)
    with SyncOps() as sync:
        model.loss(video, mask, decode_mask).backward()
    assert sync.ops == []
    # the detector does see a boolean-mask gather: what `select_kept` replaced
    with SyncOps() as sync:
        torch.zeros(mask.shape)[mask]
    assert sync.ops == ['aten.index.Tensor']


@pytest.mark.cuda
def test_training_step_does_not_sync_on_cuda():
    """With host masks, a CUDA loss and backward run under torch's sync debug mode set to raise."""
    model = _randomise_(_model()).cuda()
    video = _clip().cuda()
    mask, decode_mask = _masks(model.grid_size, encoder_ratio=0.5)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        loss = model.loss(video, mask, decode_mask)
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert torch.isfinite(loss).item()


def test_bfloat16_autocast():
    model = _randomise_(_model())
    video = _clip()
    mask, decode_mask = _masks((2, 2, 2), encoder_ratio=0.5)
    with torch.no_grad():
        reference = model.loss(video, mask, decode_mask)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            pred = model(video, mask, decode_mask)
            loss = model.loss(video, mask, decode_mask)
    assert pred.dtype == torch.bfloat16 and loss.dtype == torch.float32
    torch.testing.assert_close(loss, reference, atol=0, rtol=0.03)


def test_no_weight_decay_and_param_groups():
    assert _model().no_weight_decay() == {'mask_token'}
    assert _model(use_learnable_pos_emb=True).no_weight_decay() == {'mask_token', 'encoder.pos_embed'}


def test_init_is_official():
    model = _model()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name != 'encoder_to_decoder':
            bound = (6 / (module.in_features + module.out_features)) ** 0.5  # xavier-uniform
            assert module.weight.abs().max() <= bound, name
            assert module.weight.std() > 0.5 * bound / 3 ** 0.5, name     # uniform(-b, b) has std b / sqrt(3)
            if module.bias is not None:
                assert not module.bias.any(), name
        if isinstance(module, nn.LayerNorm):
            assert (module.weight == 1).all() and not module.bias.any(), name
    # encoder_to_decoder keeps PyTorch's Linear default (kaiming-uniform, bound 1/sqrt(fan_in)): the official model
    # never applies its xavier init to it.
    assert model.encoder_to_decoder.weight.abs().max() <= DIM ** -0.5
    assert model.encoder_to_decoder.weight.abs().max() > 0.8 * DIM ** -0.5
    # mask_token: trunc-normal std .02 truncated at +-1 std (the official wrapper's a=-std, b=std).
    assert 0 < model.mask_token.abs().max() <= 0.02


# =====================================================================================================================
# 6. Bad input
# =====================================================================================================================
@pytest.mark.parametrize('mask, decode_mask, message', [
    (torch.tensor([[1, 0, 1, 1, 1, 1, 1, 1], [1, 0, 0, 1, 1, 1, 1, 1]]), None, 'same number of visible'),
    (torch.tensor([[1, 0, 1, 1, 1, 1, 1, 1]] * 2), torch.tensor([[1, 0, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1]]),
     'same number of decoder-kept'),
    (torch.ones(2, 8), None, 'no visible'),
    (torch.zeros(2, 7), None, r'shape \(2, 7\)'),
    (torch.full((2, 8), 2), None, 'boolean or 0/1'),
])
def test_bad_masks_raise_clear_errors(mask, decode_mask, message):
    with pytest.raises(ValueError, match=message):
        _model()(_clip(), mask, decode_mask)


def test_encoder_rejects_head_arguments():
    with pytest.raises(TypeError, match='num_classes'):
        VideoMAEv2PretrainEncoder('vit_test', num_classes=3)


def test_unknown_arch():
    with pytest.raises(KeyError, match='vit_tiny'):
        VideoMAEv2Pretrainer('vit_tiny')
