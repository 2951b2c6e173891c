"""VideoMAE V2 dual-masked pre-training model: encoder on the visible tokens, decoder on a running-cell subset
(docs/pretraining.md#encoder-and-decoder-sizes, docs/pretraining.md#masks-and-loss).

Parameter names are the official ones, so :func:`backbone.load_checkpoint` loads an official pre-training file into
this model whole, and its encoder into a downstream :class:`~backbone.VideoMAEv2ViT`. The encoder *is* a
``VideoMAEv2ViT`` subclass, so blocks, patch embedding, position tables and activation checkpointing are the
downstream code, not a copy. Masks come from :mod:`backbone.masking`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from .checkpoint import load_checkpoint
from .pos_embed import PosEmbedPolicy, adapt_pos_embed, sinusoid_table
from .videomaev2 import ARCH_PRESETS, ArchName, Block, VideoMAEv2ViT, run_blocks

#: ImageNet mean/std on the [0, 1] scale: the clip normalisation the official pre-training data pipeline uses, undone
#: to compute the pixel targets. (mmaction2's 0-255 mean/std give the same normalised values.)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Decoder presets (docs/pretraining.md#encoder-and-decoder-sizes): width / heads / depth. Depth 4 is what the official
#: scripts pass (``--decoder_depth 4``); the class default there is 8. The decoder MLP uses the encoder's ratio, so
#: ViT-g's decoder MLP is int(512 * 48 / 11) = 2234. ``vit_test`` is a tiny variant for CPU unit tests.
PRETRAIN_PRESETS: dict[str, dict[str, int]] = {
    'vit_small': dict(decoder_embed_dim=192, decoder_num_heads=3, decoder_depth=4),
    'vit_base': dict(decoder_embed_dim=384, decoder_num_heads=6, decoder_depth=4),
    'vit_large': dict(decoder_embed_dim=512, decoder_num_heads=8, decoder_depth=4),
    'vit_huge': dict(decoder_embed_dim=512, decoder_num_heads=8, decoder_depth=4),
    'vit_giant': dict(decoder_embed_dim=512, decoder_num_heads=8, decoder_depth=4),
    'vit_test': dict(decoder_embed_dim=32, decoder_num_heads=2, decoder_depth=2),
}


# ---------------------------------------------------------------------------------------------------------------------
# Patches and targets
# ---------------------------------------------------------------------------------------------------------------------
def patchify(video: torch.Tensor, patch_size: int, tubelet_size: int = 2) -> torch.Tensor:
    """Cut a clip into the model's tokens.

    Args:
        video: (B, C, T, H, W).

    Returns:
        (B, N, tubelet*p*p, C): tokens in the model's order (T' slowest, then rows, then columns); inside a token the
        pixels run (frame in tubelet, row, column), with the channel last (the official target layout).
    """
    batch, channels, frames, height, width = video.shape
    p, k = patch_size, tubelet_size
    if frames % k or height % p or width % p:
        raise ValueError(f'clip of {frames} frames x {height}x{width} px does not tile into {k}x{p}x{p} tubelets')
    t, h, w = frames // k, height // p, width // p
    x = video.reshape(batch, channels, t, k, h, p, w, p)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # (B, T', H', W', k, p, p, C)
    return x.reshape(batch, t * h * w, k * p * p, channels)


def unpatchify(patches: torch.Tensor, grid: Sequence[int], patch_size: int, tubelet_size: int = 2,
               channels: int = 3) -> torch.Tensor:
    """Inverse of :func:`patchify`.

    Args:
        patches: (B, N, tubelet*p*p, C), or the flat (B, N, tubelet*p*p*C) with the channel last (decoder outputs).
        grid: token grid (T', H', W') with N = T'*H'*W'.

    Returns:
        (B, C, T, H, W).
    """
    t, h, w = (int(g) for g in grid)
    p, k = patch_size, tubelet_size
    batch, tokens = patches.shape[:2]
    if tokens != t * h * w or patches.shape[2:].numel() != k * p * p * channels:
        raise ValueError(f'patches of shape {tuple(patches.shape)} do not match the grid {tuple(grid)} of '
                         f'{k}x{p}x{p} tubelets with {channels} channels')
    x = patches.reshape(batch, t, h, w, k, p, p, channels)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, C, T', k, H', p, W', p)
    return x.reshape(batch, channels, t * k, h * p, w * p)


def normalize_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-patch, per-channel normalisation of the targets (``--normlize_target``, docs/pretraining.md#masks-and-loss).

    Args:
        patches: (B, N, P, C) from :func:`patchify`, P = tubelet*p*p pixels per channel.

    Returns:
        (B, N, P*C): (x - mean) / (sqrt(unbiased var) + eps) over the P pixels of each token and channel, flattened
        with the channel last.
    """
    mean = patches.mean(dim=-2, keepdim=True)
    std = patches.var(dim=-2, unbiased=True, keepdim=True).sqrt()
    return ((patches - mean) / (std + eps)).flatten(2)


def select_kept(tokens: torch.Tensor, keep: torch.Tensor, count: int) -> torch.Tensor:
    """tokens (B, N, ...) at the True positions of ``keep`` (B, N), in ascending position order: (B, count, ...).

    Every row of ``keep`` must hold ``count`` True entries. The positions come from a stable sort of the mask (kept
    first, each group in position order) and an integer gather: a boolean index ``tokens[keep]`` would wait for the
    device to count the output rows (a host sync per call on CUDA). Same values as ``tokens[keep]``, gradients too.
    """
    order = torch.argsort((~keep).to(torch.uint8), dim=1, stable=True)[:, :count]  # (B, count)
    rows = torch.arange(tokens.shape[0], device=tokens.device)[:, None]
    return tokens[rows, order.to(tokens.device)]


# ---------------------------------------------------------------------------------------------------------------------
# Encoder and decoder
# ---------------------------------------------------------------------------------------------------------------------
class VideoMAEv2PretrainEncoder(VideoMAEv2ViT):
    """The pre-training encoder: the downstream ViT run on the visible tokens only, ending in ``norm``.

    It has the official encoder's parameters exactly: ``patch_embed``, ``blocks``, ``norm`` (no ``fc_norm``, no
    head). ``forward_visible`` is the official ``forward_features(x, mask)``. Keyword arguments are those of
    :class:`~backbone.VideoMAEv2ViT` minus the head options.
    """

    def __init__(self, arch: ArchName | str = 'vit_base', **kwargs: Any):
        bad = sorted(set(kwargs) & {'num_classes', 'featmap_norm', 'init_scale', 'head_drop_rate', 'pretrained',
                                    'init_cfg'})
        if bad:
            raise TypeError(f'the pre-training encoder has no head; unexpected arguments {bad}')
        # The official encoder normalises every visible token (`norm`) and has no pooling norm.
        super().__init__(arch, num_classes=0, featmap_norm=True, fc_norm=False, **kwargs)

    def reset_parameters(self) -> None:
        """Official pre-training init: Linear xavier-uniform, bias 0; LayerNorm 1/0; Conv3d PyTorch default."""
        if isinstance(self.pos_embed, nn.Parameter):
            _trunc_normal_official_(self.pos_embed, std=0.02)
        self.apply(_init_xavier)

    def forward_visible(self, x: torch.Tensor, mask: torch.Tensor, num_visible: int) -> torch.Tensor:
        """Encode the visible tokens.

        Args:
            x: clip (B, 3, T, H, W).
            mask: (B, N) bool, True = masked (hidden from the encoder); every row has ``num_visible`` False entries.
            num_visible: the number of visible tokens per sample.

        Returns:
            norm(blocks(visible tokens + position)) (B, num_visible, C), in ascending position order.
        """
        tokens, _ = self.embed(x)                                 # (B, N, C), with the position table
        tokens = select_kept(tokens, ~mask, num_visible)              # (B, N_vis, C)
        tokens = run_blocks(self.blocks, tokens, self.with_cp)
        return self.norm(tokens)


class VideoMAEv2PretrainDecoder(nn.Module):
    """The official ``PretrainVisionTransformerDecoder``: blocks -> ``norm`` -> ``head`` (C_dec -> 3*tubelet*p^2).

    The token embedding (``encoder_to_decoder``, ``mask_token``, position table) lives in the parent model under the
    official names.
    """

    def __init__(self, embed_dim: int, depth: int, num_heads: int, mlp_ratio: float, out_dim: int,
                 qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, init_values: float = 0.0, norm_eps: float = 1e-6,
                 fused_attn: bool = True):
        super().__init__()
        rates = [drop_path_rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, None, drop_rate, attn_drop_rate, rates[i], init_values,
                  norm_eps, fused_attn) for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.head = nn.Linear(embed_dim, out_dim)

    def forward(self, x: torch.Tensor, return_token_num: int, with_cp: bool = False) -> torch.Tensor:
        """(B, L, C_dec) -> predictions for the last ``return_token_num`` tokens (B, return_token_num, out_dim)."""
        x = run_blocks(self.blocks, x, with_cp)
        return self.head(self.norm(x[:, -return_token_num:]))


# ---------------------------------------------------------------------------------------------------------------------
# The pre-training model
# ---------------------------------------------------------------------------------------------------------------------
class VideoMAEv2Pretrainer(nn.Module):
    """VideoMAE V2 pre-training model with dual masking (V1 when the decoder mask is the encoder mask's complement).

    Data flow (ViT-B, 16x224, tube 0.9, running cell 0.5)::

        clip (B, 3, 16, 224, 224), encoder mask M_e (B, 1568), decoder mask M_d (B, 1568); True = masked / dropped
          -> encoder on the visible tokens (~M_e)        (B, 160, 768)   patch embed + pos, gather, blocks, norm
          -> encoder_to_decoder (no bias)                (B, 160, 384)   + decoder pos of the visible positions
          -> append mask_token + decoder pos at every
             decoder-kept position (~M_d)                (B, 160 + 784, 384)  (kept visible positions appear twice)
          -> decoder blocks -> norm -> head, last 784    (B, 784, 1536)  = forward: predictions, kept-position order
          -> MSE vs per-patch-normalised pixels, averaged over tokens in ~M_d AND M_e   = loss

    Parameter names: ``encoder.*`` (with ``encoder.norm``), ``decoder.blocks.N.*``, ``decoder.norm``,
    ``decoder.head``, ``encoder_to_decoder.weight``, ``mask_token``.

    Args:
        arch: preset name (``vit_small`` ... ``vit_giant``, ``vit_test``); encoder and decoder sizes follow it, and
            explicit keyword arguments override it.
        img_size: frame size the position tables are built for (other multiples of the patch size also work; the
            tables are then adapted by ``pos_embed_policy``).
        all_frames: clip length the position tables are built for.
        decoder_embed_dim: decoder width (docs/pretraining.md#encoder-and-decoder-sizes: 192 S, 384 B, 512 L/H/g).
        decoder_depth: decoder blocks (4 in every official script).
        decoder_num_heads: decoder heads.
        drop_path_rate: stochastic depth, linear over depth, in the encoder and (as officially) the decoder.
        normalize_target: per-patch, per-channel target normalisation (official ``--normlize_target``, default True).
        mean: per-channel mean of the input normalisation on the [0, 1] scale, undone for the targets.
        std: per-channel std of the input normalisation on the [0, 1] scale.
        pos_embed_policy: how the encoder *and* decoder tables adapt to a grid other than the constructed one.
        with_cp: activation checkpointing of every encoder and decoder block (``--with_checkpoint``).
        fused_attn: ``scaled_dot_product_attention`` (True) or the official explicit softmax.
        pretrained: a pre-training checkpoint loaded whole by :meth:`init_weights` (:func:`backbone.load_checkpoint`).
        init_cfg: mmengine-style ``dict(type='Pretrained', checkpoint=...)``, an alias of ``pretrained``.
        Other arguments as :class:`~backbone.VideoMAEv2ViT`.
    """

    def __init__(self, arch: ArchName | str = 'vit_base', *, img_size: int | tuple[int, int] = 224,
                 all_frames: int = 16, tubelet_size: int = 2, in_chans: int = 3, patch_size: int | None = None,
                 embed_dim: int | None = None, depth: int | None = None, num_heads: int | None = None,
                 mlp_ratio: float | None = None, decoder_embed_dim: int | None = None,
                 decoder_depth: int | None = None, decoder_num_heads: int | None = None, qkv_bias: bool = True,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 norm_eps: float = 1e-6, init_values: float = 0.0, use_learnable_pos_emb: bool = False,
                 normalize_target: bool = True, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, pos_embed_policy: PosEmbedPolicy = 'interpolate',
                 with_cp: bool = False, fused_attn: bool = True, pretrained: str | None = None,
                 init_cfg: dict | None = None):
        super().__init__()
        if arch not in PRETRAIN_PRESETS:
            raise KeyError(f'unknown arch {arch!r}; choose one of {sorted(PRETRAIN_PRESETS)}')
        if init_cfg is not None:
            if init_cfg.get('type') != 'Pretrained' or 'checkpoint' not in init_cfg or pretrained is not None:
                raise ValueError(f'init_cfg supports only dict(type="Pretrained", checkpoint=PATH); got {init_cfg}')
            pretrained = init_cfg['checkpoint']
        if len(mean) != in_chans or len(std) != in_chans:
            raise ValueError(f'mean {tuple(mean)} and std {tuple(std)} need one value per input channel ({in_chans})')
        decoder = dict(PRETRAIN_PRESETS[arch])
        for key, value in dict(decoder_embed_dim=decoder_embed_dim, decoder_depth=decoder_depth,
                               decoder_num_heads=decoder_num_heads).items():
            if value is not None:
                decoder[key] = value
        self.arch = arch
        self.pretrained = pretrained
        self.normalize_target = normalize_target
        self.with_cp = with_cp
        self.pos_embed_policy = pos_embed_policy

        # --- encoder (the downstream ViT's code and parameter names, plus `norm`) ----------------------------------
        self.encoder = VideoMAEv2PretrainEncoder(
            arch, img_size=img_size, all_frames=all_frames, tubelet_size=tubelet_size, in_chans=in_chans,
            patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias, drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate,
            norm_eps=norm_eps, init_values=init_values, use_learnable_pos_emb=use_learnable_pos_emb,
            pos_embed_policy=pos_embed_policy, with_cp=with_cp, fused_attn=fused_attn)
        self.patch_size = self.encoder.patch_size
        self.tubelet_size = tubelet_size
        self.in_chans = in_chans
        self.grid_size = self.encoder.grid_size
        mlp = mlp_ratio if mlp_ratio is not None else ARCH_PRESETS[arch]['mlp_ratio']

        # --- decoder -------------------------------------------------------------------------------------------
        self.decoder_embed_dim = decoder['decoder_embed_dim']
        self.decoder_depth = decoder['decoder_depth']
        self.num_outputs = in_chans * tubelet_size * self.patch_size ** 2  # 3 * 2 * p^2 pixels per token
        self.encoder_to_decoder = nn.Linear(self.encoder.embed_dim, self.decoder_embed_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.decoder_embed_dim))
        # The decoder's own fixed sinusoid; official storage is a plain attribute, so it is in no checkpoint.
        self.register_buffer('decoder_pos_embed', sinusoid_table(math.prod(self.grid_size), self.decoder_embed_dim),
                             persistent=False)
        self._resized_decoder_pos: dict[tuple, torch.Tensor] = {}
        self.decoder = VideoMAEv2PretrainDecoder(
            self.decoder_embed_dim, self.decoder_depth, decoder['decoder_num_heads'], mlp, self.num_outputs,
            qkv_bias, drop_rate, attn_drop_rate, drop_path_rate, init_values, norm_eps, fused_attn)

        # --- target normalisation constants (C,); also kept as numbers for to_empty (a meta buffer has no values) ---
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.register_buffer('pixel_mean', torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer('pixel_std', torch.tensor(std, dtype=torch.float32), persistent=False)
        self.reset_parameters()

    # --- init ------------------------------------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """Official init (modeling_pretrain.py): the encoder and decoder apply xavier-uniform to every Linear (bias 0)
        and 1/0 to LayerNorms; ``encoder_to_decoder`` keeps PyTorch's default Linear init (the official top-level
        model defines an ``_init_weights`` but never applies it); ``mask_token`` is trunc-normal(.02) truncated at
        +-1 std, as the official ``trunc_normal_`` wrapper passes a=-std, b=std."""
        self.encoder.reset_parameters()
        self.decoder.apply(_init_xavier)
        self.encoder_to_decoder.reset_parameters()
        _trunc_normal_official_(self.mask_token, std=0.02)

    def init_weights(self) -> None:
        """mmengine hook: load ``pretrained`` if given (the constructor already initialised fresh weights)."""
        if self.pretrained:
            load_checkpoint(self, self.pretrained)

    def to_empty(self, *, device: torch.device | str | None, recurse: bool = True) -> VideoMAEv2Pretrainer:
        """Materialise a meta-device model, rebuilding the fixed buffers no checkpoint restores."""
        super().to_empty(device=device, recurse=recurse)
        self.encoder.reset_fixed_buffers(recurse)
        if recurse:
            for block in self.decoder.blocks:
                block.attn.reset_fixed_buffers()
        with torch.no_grad():
            self.decoder_pos_embed.copy_(sinusoid_table(*self.decoder_pos_embed.shape[1:]))
            self.pixel_mean.copy_(torch.tensor(self.mean))
            self.pixel_std.copy_(torch.tensor(self.std))
        self._resized_decoder_pos.clear()
        return self

    # --- masks -----------------------------------------------------------------------------------------------------
    def check_masks(self, video: torch.Tensor, mask: torch.Tensor, decode_mask: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int, int], int, int]:
        """Validate a batch of masks and normalise them to bool tensors on the clip's device.

        Args:
            video: (B, C, T, H, W).
            mask: (B, N) encoder mask, True (or 1) = hidden from the encoder.
            decode_mask: (B, N) decoder mask, True (or 1) = dropped from the decoder; None = V1, the complement of
                ``mask`` (the decoder reconstructs every encoder-masked token).

        Returns:
            (mask, decode_mask, grid, num_visible, num_kept).

        Raises:
            ValueError: wrong shape, values other than 0/1, or rows with different visible or kept counts (the
                official model would fail later in an opaque ``reshape``).

        The masks are checked and counted where they are, then moved: masks on the host (as the pre-training
        preprocessor hands them over) cost no device sync; masks on a GPU cost one, for the counts.
        """
        grid = self.encoder.patch_embed.grid(video)
        batch, tokens = video.shape[0], math.prod(grid)
        mask = self._as_bool_mask('mask', mask, batch, tokens, grid)
        decode_mask = (~mask if decode_mask is None else
                       self._as_bool_mask('decode_mask', decode_mask, batch, tokens, grid).to(mask.device))
        counts = torch.stack([(~mask).sum(1), (~decode_mask).sum(1)]).tolist()  # one host sync for both on a GPU
        for name, row, what in (('mask', counts[0], 'visible'), ('decode_mask', counts[1], 'decoder-kept')):
            if len(set(row)) != 1:
                raise ValueError(f'{name}: every sample needs the same number of {what} tokens (the tokens are '
                                 f'gathered into one (B, n, C) batch); got {row}')
            if row[0] == 0:
                raise ValueError(f'{name}: no {what} tokens (all {tokens} tokens are masked)')
        mask = mask.to(video.device, non_blocking=True)
        decode_mask = decode_mask.to(video.device, non_blocking=True)
        return mask, decode_mask, grid, counts[0][0], counts[1][0]

    @staticmethod
    def _as_bool_mask(name: str, mask: torch.Tensor, batch: int, tokens: int,
                      grid: tuple[int, int, int]) -> torch.Tensor:
        mask = torch.as_tensor(mask)
        if tuple(mask.shape) != (batch, tokens):
            raise ValueError(f'{name} has shape {tuple(mask.shape)}; the clip gives (B, N) = ({batch}, {tokens}) '
                             f'tokens (grid {grid})')
        if mask.dtype != torch.bool:
            if ((mask != 0) & (mask != 1)).any():
                raise ValueError(f'{name} must be boolean or 0/1 (1 = masked); got other values')
            mask = mask.bool()
        return mask

    # --- stages ----------------------------------------------------------------------------------------------------
    def decoder_pos_embed_for(self, grid: tuple[int, int, int]) -> torch.Tensor:
        """Decoder position table (1, prod(grid), C_dec), adapted to ``grid`` like the encoder's (pos_embed_policy)."""
        if tuple(grid) == self.grid_size:
            return self.decoder_pos_embed
        key = (tuple(grid), self.decoder_pos_embed.device)
        if key not in self._resized_decoder_pos:
            self._resized_decoder_pos[key] = adapt_pos_embed(self.decoder_pos_embed, self.grid_size, grid,
                                                             self.pos_embed_policy)
        return self._resized_decoder_pos[key]

    def forward_encoder(self, video: torch.Tensor, mask: torch.Tensor, num_visible: int) -> torch.Tensor:
        """Stage 1: (B, 3, T, H, W) -> encoded visible tokens (B, N_vis, C_enc)."""
        return self.encoder.forward_visible(video, mask, num_visible)

    def forward_decoder(self, x_vis: torch.Tensor, mask: torch.Tensor, decode_mask: torch.Tensor,
                        grid: tuple[int, int, int], num_kept: int) -> torch.Tensor:
        """Stages 2-4: encoded visible tokens (B, N_vis, C_enc) -> predictions (B, N_kept, 3*tubelet*p^2).

        The visible tokens (projected, plus their decoder position) are followed by ``mask_token`` plus position at
        **every** decoder-kept position, encoder-visible ones included; only the outputs of those appended tokens
        are returned, in ascending kept-position order (official ``decode_vis = ~decode_mask``).
        """
        x_vis = self.encoder_to_decoder(x_vis)                                  # (B, N_vis, C_dec)
        batch, num_visible, dim = x_vis.shape
        pos = self.decoder_pos_embed_for(grid).detach().to(x_vis.dtype).expand(batch, -1, -1)  # (B, N, C_dec)
        pos_vis = select_kept(pos, ~mask, num_visible)
        pos_kept = select_kept(pos, ~decode_mask, num_kept)
        x = torch.cat([x_vis + pos_vis, self.mask_token.to(x_vis.dtype) + pos_kept], dim=1)  # (B, N_vis + N_kept, C)
        return self.decoder(x, num_kept, self.with_cp)

    def forward(self, video: torch.Tensor, mask: torch.Tensor,
                decode_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the pixels of the decoder-kept tokens.

        Args:
            video: normalised clip (B, 3, T, H, W).
            mask: (B, N) bool encoder mask, True = hidden from the encoder.
            decode_mask: (B, N) bool decoder mask, True = dropped from the decoder; None = V1 (``~mask``).

        Returns:
            (B, N_kept, 3*tubelet*p^2) predictions for the decoder-kept positions in ascending position order, each
            flattened as (frame in tubelet, row, column, channel).
        """
        mask, decode_mask, grid, num_visible, num_kept = self.check_masks(video, mask, decode_mask)
        return self.forward_decoder(self.forward_encoder(video, mask, num_visible), mask, decode_mask, grid,
                                    num_kept)

    # --- targets and loss ------------------------------------------------------------------------------------------
    def denormalize(self, video: torch.Tensor) -> torch.Tensor:
        """Undo the input normalisation: (B, C, T, H, W) -> float32 pixels on the [0, 1] scale."""
        mean = self.pixel_mean.to(video.device)[None, :, None, None, None]
        std = self.pixel_std.to(video.device)[None, :, None, None, None]
        return video.float() * std + mean

    def patchify(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, N, tubelet*p*p, C); see :func:`patchify`."""
        return patchify(video, self.patch_size, self.tubelet_size)

    def unpatchify(self, patches: torch.Tensor, grid: Sequence[int] | None = None) -> torch.Tensor:
        """(B, N, tubelet*p*p[, C]) -> (B, C, T, H, W); ``grid`` defaults to the constructed one."""
        return unpatchify(patches, grid or self.grid_size, self.patch_size, self.tubelet_size, self.in_chans)

    @torch.no_grad()
    def targets(self, video: torch.Tensor) -> torch.Tensor:
        """Pixel targets of every token, float32 (B, N, tubelet*p*p*C), channel last.

        The clip is de-normalised to [0, 1], cut into tokens and, with ``normalize_target``, normalised per token
        and channel (engine_for_pretraining.py). Computed in float32 outside autocast: the normalisation divides by
        small standard deviations.
        """
        with torch.autocast(video.device.type, enabled=False):
            patches = self.patchify(self.denormalize(video))
            return normalize_patches(patches) if self.normalize_target else patches.flatten(2)

    def loss(self, video: torch.Tensor, mask: torch.Tensor, decode_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The pre-training loss (docs/pretraining.md#masks-and-loss; V2 paper Eq. 2).

        Per-token MSE between predictions and targets at the decoder-kept positions, averaged over the tokens that
        are also encoder-masked: sum(w * mse) / sum(w) with w = ``mask`` at the kept positions. Kept tokens the
        encoder saw are predicted (they are in the decoder's input) but do not count.

        Returns:
            scalar float32 loss.
        """
        mask, decode_mask, grid, num_visible, num_kept = self.check_masks(video, mask, decode_mask)
        pred = self.forward_decoder(self.forward_encoder(video, mask, num_visible), mask, decode_mask, grid,
                                    num_kept)                                       # (B, N_kept, D)
        target = select_kept(self.targets(video), ~decode_mask, num_kept)               # (B, N_kept, D)
        weight = select_kept(mask, ~decode_mask, num_kept).float()                      # (B, N_kept)
        mse = (pred.float() - target).pow(2).mean(dim=-1)
        # No kept token is encoder-masked: nothing to learn from; 0 * sum keeps the graph (and DDP) intact.
        return (mse * weight).sum() / weight.sum().clamp(min=1.0)

    @torch.no_grad()
    def reconstruct(self, video: torch.Tensor, mask: torch.Tensor,
                    decode_mask: torch.Tensor | None = None) -> torch.Tensor:
        """A picture of what the model predicts, for visualisation.

        The decoder-kept tokens hold the predictions, mapped back to [0, 1] pixels (with ``normalize_target`` through
        the true mean and std of each token and channel, which the normalised target discards, as MAE's demo does);
        every other token holds the original pixels.

        Returns:
            (B, C, T, H, W) float32 on the [0, 1] scale (unclipped).
        """
        mask, decode_mask, grid, num_visible, num_kept = self.check_masks(video, mask, decode_mask)
        pred = self.forward_decoder(self.forward_encoder(video, mask, num_visible), mask, decode_mask, grid,
                                    num_kept).float()
        pixels = self.patchify(self.denormalize(video))                               # (B, N, P, C)
        batch, tokens, count, channels = pixels.shape
        pred = pred.reshape(batch, num_kept, count, channels)
        if self.normalize_target:
            kept = select_kept(pixels, ~decode_mask, num_kept)
            mean = kept.mean(dim=-2, keepdim=True)
            std = kept.var(dim=-2, unbiased=True, keepdim=True).sqrt()
            pred = pred * (std + 1e-6) + mean
        out = pixels.clone()
        out[~decode_mask] = pred.reshape(-1, count, channels)
        return unpatchify(out, grid, self.patch_size, self.tubelet_size, channels)

    # --- optimiser hooks -------------------------------------------------------------------------------------------
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.with_cp = enable
        self.encoder.with_cp = enable

    def no_weight_decay(self) -> set[str]:
        """Parameter names exempt from weight decay: ``mask_token`` (and a learnable encoder ``pos_embed``)."""
        names = {'mask_token'}
        if isinstance(self.encoder.pos_embed, nn.Parameter):
            names.add('encoder.pos_embed')
        return names

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _init_xavier(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _trunc_normal_official_(tensor: torch.Tensor, std: float) -> None:
    """The official wrapper truncates at +-1 std (a=-std, b=std), not timm's default +-2 absolute."""
    nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-std, b=std)


# ---------------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------------
def register_pretrainer_with_mmaction() -> None:
    """Register :class:`VideoMAEv2Pretrainer` in mmaction2's ``MODELS`` (idempotent; no-op without mmaction2)."""
    from .registry import HAS_MMACTION, MMACTION_MODELS
    if not HAS_MMACTION:
        return
    if MMACTION_MODELS.module_dict.get('VideoMAEv2Pretrainer') is not VideoMAEv2Pretrainer:
        MMACTION_MODELS.register_module(name='VideoMAEv2Pretrainer', module=VideoMAEv2Pretrainer)


__all__ = ['IMAGENET_MEAN', 'IMAGENET_STD', 'PRETRAIN_PRESETS', 'VideoMAEv2PretrainDecoder',
           'VideoMAEv2PretrainEncoder', 'VideoMAEv2Pretrainer', 'normalize_patches', 'patchify',
           'register_pretrainer_with_mmaction', 'select_kept', 'unpatchify']
