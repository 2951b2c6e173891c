"""ActionFormer-style temporal action detector on clip features (docs/thumos14.md#actionformer), as an mmengine
``BaseModel``: convolutional embedding, local-attention transformer pyramid, shared heads, Soft-NMS.

Everything inside the model is in *feature rows* (the store's grid): ground truth arrives as fractional rows and
predictions leave as rows. Only :meth:`ActionFormerTAD.postprocess` converts rows to seconds, with the store's own
per-video mapping, never with hand-set stride, fps or offset numbers.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.registry import MODELS

from .dataset import FeatureWidthError, feature_width_message
from .nms import batched_soft_nms

__all__ = [
    'ChannelLayerNorm', 'MaskedConv1d', 'LocalMaskedAttention', 'TADTransformerBlock', 'ConvTransformerBackbone',
    'TADHead', 'ActionFormerTAD', 'TADDataPreprocessor', 'sigmoid_focal_loss', 'diou_loss_1d', 'THUMOS_REG_RANGES',
]

THUMOS_REG_RANGES: tuple[tuple[float, float], ...] = ((0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000))
"""Per-level ranges of max(distance to start, distance to end), in rows of that level's stride (ActionFormer)."""


# =====================================================================================================================
# Blocks
# =====================================================================================================================
class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, T) sequence (ActionFormer's ``LayerNorm``)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(dim=1, keepdim=True)
        x = x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)
        return x * self.weight[:, None] + self.bias[:, None]


class MaskedConv1d(nn.Conv1d):
    """Conv1d that reads only real rows: (B, C, T), mask (B, 1, T) -> (B, C', T // stride), mask (B, 1, T // stride).

    The input is zeroed on padded rows first (so the output never depends on what padding holds) and the output is
    zeroed on padded output rows; output row ``i`` is real when input row ``i * stride`` is.
    """

    def forward(self, x: torch.Tensor,  # type: ignore[override]
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_mask = mask[..., ::self.stride[0]] if self.stride[0] > 1 else mask
        out = super().forward(x * mask.to(x.dtype))
        return out * out_mask.to(out.dtype), out_mask


class LocalMaskedAttention(nn.Module):
    """Multi-head self-attention of each row over the ``window`` rows centred on it, on real rows only.

    q, k and v first go through a depthwise conv (k3, stride ``stride``) + LayerNorm, then a 1x1 projection
    (ActionFormer's ``LocalMaskedMHCA``); with ``stride`` 2 the block halves the sequence. The attention is exact
    over the window (keys gathered with ``unfold``: O(T * window) memory), not ActionFormer's overlapping-chunk
    approximation of the band, which needs lengths divisible by 576.

    Args:
        dim: channels.
        num_heads: heads.
        window: keys per query (odd; 19 for THUMOS14).
        stride: 1, or 2 to downsample.
        attn_drop: dropout on attention weights.
        proj_drop: dropout after the output projection.
    """

    def __init__(self, dim: int, num_heads: int = 4, window: int = 19, stride: int = 1, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        if window < 1 or window % 2 == 0:
            raise ValueError(f'window must be a positive odd number, got {window}')
        self.num_heads, self.window, self.stride = num_heads, window, stride
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        for name in ('q', 'k', 'v'):
            setattr(self, f'{name}_conv', MaskedConv1d(dim, dim, 3, stride=stride, padding=1, groups=dim, bias=False))
            setattr(self, f'{name}_norm', ChannelLayerNorm(dim))
            setattr(self, f'{name}_proj', nn.Conv1d(dim, dim, 1))
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Conv1d(dim, dim, 1)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, T), mask (B, 1, T) bool -> (B, C, T'), mask (B, 1, T') with T' = T / stride."""
        q, out_mask = self.q_conv(x, mask)
        k, _ = self.k_conv(x, mask)
        v, _ = self.v_conv(x, mask)
        q = self.q_proj(self.q_norm(q))
        k = self.k_proj(self.k_norm(k))
        v = self.v_proj(self.v_norm(v))
        b, c, t = q.shape
        h, d = self.num_heads, self.head_dim
        q = q.view(b, h, d, t).transpose(2, 3) * self.scale                        # (B, h, T', d)
        if t <= self.dense_max_len:
            out = self._dense(q, k.view(b, h, d, t), v.view(b, h, d, t), out_mask)
        else:
            out = self._unfolded(q, k.view(b, h, d, t), v.view(b, h, d, t), out_mask)
        out = self.proj_drop(self.proj(out.reshape(b, c, t))) * out_mask.to(out.dtype)
        return out, out_mask

    #: up to this length the window is applied as a band mask on the full (T, T) score matrix (one large matmul,
    #: fastest on short sequences); beyond it keys are gathered per window (O(T * window) memory).
    dense_max_len = 1024

    def _dense(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """q (B, h, T, d), k / v (B, h, d, T), mask (B, 1, T) -> (B, h, d, T)."""
        t = q.shape[2]
        idx = torch.arange(t, device=q.device)
        band = (idx[:, None] - idx[None, :]).abs() <= self.window // 2                # (T, T)
        allowed = band[None, None] & mask[:, :, None, :]                              # (B, 1, T, T)
        attn = q @ k                                                                  # (B, h, T, T)
        # a padded query may see no real key: a finite fill keeps its softmax finite; its output is masked anyway
        attn = attn.masked_fill(~allowed, torch.finfo(attn.dtype).min).softmax(dim=-1)
        return v @ self.attn_drop(attn).transpose(2, 3)

    def _unfolded(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`_dense` with each query's ``window`` keys gathered by ``unfold``."""
        half, w = self.window // 2, self.window
        k = F.pad(k, (half, half)).unfold(3, w, 1).transpose(2, 3)                   # (B, h, T, d, w)
        v = F.pad(v, (half, half)).unfold(3, w, 1).transpose(2, 3)
        valid = F.pad(mask, (half, half)).unfold(2, w, 1)                             # (B, 1, T, w)
        attn = (q[..., None] * k).sum(dim=3)                                          # (B, h, T, w)
        attn = attn.masked_fill(~valid, torch.finfo(attn.dtype).min).softmax(dim=-1)
        out = (self.attn_drop(attn)[:, :, :, None, :] * v).sum(dim=-1)                # (B, h, T, d)
        return out.transpose(2, 3)


class LayerScaleDropPath(nn.Module):
    """Residual branch scaling (learnable per channel, init 1e-4) + stochastic depth: ActionFormer's
    ``AffineDropPath``, used when the drop-path rate is > 0."""

    def __init__(self, dim: int, drop_prob: float, init_value: float = 1e-4):
        super().__init__()
        self.scale = nn.Parameter(torch.full((1, dim, 1), init_value))
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.scale
        if not self.training or self.drop_prob == 0:
            return x
        keep = 1 - self.drop_prob
        return x * x.new_empty((x.shape[0], 1, 1)).bernoulli_(keep) / keep


class TADTransformerBlock(nn.Module):
    """Pre-LN block: ``x = skip(x) + attn(LN(x)); x = x + mlp(LN(x))``, on (B, C, T) with a mask.

    With ``stride`` 2 the skip is a max-pool (3, 2, 1) over real rows and the sequence is halved.
    """

    def __init__(self, dim: int, num_heads: int = 4, window: int = 19, stride: int = 1, mlp_ratio: float = 4.0,
                 drop_path: float = 0.0, proj_drop: float = 0.0, attn_drop: float = 0.0):
        super().__init__()
        self.stride = stride
        self.norm1 = ChannelLayerNorm(dim)
        self.attn = LocalMaskedAttention(dim, num_heads, window, stride, attn_drop, proj_drop)
        self.norm2 = ChannelLayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Conv1d(dim, hidden, 1), nn.GELU(), nn.Dropout(proj_drop),
                                 nn.Conv1d(hidden, dim, 1), nn.Dropout(proj_drop))
        self.drop_path_attn = LayerScaleDropPath(dim, drop_path) if drop_path > 0 else nn.Identity()
        self.drop_path_mlp = LayerScaleDropPath(dim, drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, out_mask = self.attn(self.norm1(x), mask)
        keep = out_mask.to(x.dtype)
        if self.stride > 1:
            # padded rows as -inf, like the pool's own padding, so the last real row pools the same however long
            # the padding is
            skip = F.max_pool1d(x.masked_fill(~mask, float('-inf')), 3, self.stride, 1).masked_fill(~out_mask, 0)
        else:
            skip = x * keep
        x = skip + self.drop_path_attn(out)
        x = x + self.drop_path_mlp(self.mlp(self.norm2(x)) * keep)
        return x, out_mask


class ConvTransformerBackbone(nn.Module):
    """ActionFormer's "convTransformer": conv embedding, ``arch[1]`` stem blocks, ``arch[2]`` downsampling blocks.

    Args:
        in_dim: feature channels (1408 for V2-g, 768 ViT-B, 384 ViT-S).
        embed_dim: model width (512).
        arch: (embedding convs, stem blocks, downsampling blocks) = (2, 2, 5): 6 levels.
        num_heads: attention heads (4).
        window: local attention window (19).
        mlp_ratio: MLP hidden / width (4).
        drop_path: drop-path rate of every block (0.1).
        proj_drop: dropout in the blocks (0).
        input_drop: channel dropout on the input features (OpenTAD uses 0.2 on THUMOS14; ActionFormer 0).
    """

    def __init__(self, in_dim: int, embed_dim: int = 512, arch: Sequence[int] = (2, 2, 5), num_heads: int = 4,
                 window: int = 19, mlp_ratio: float = 4.0, drop_path: float = 0.1, proj_drop: float = 0.0,
                 input_drop: float = 0.0):
        super().__init__()
        if len(arch) != 3 or min(arch) < 0 or arch[0] < 1:
            raise ValueError(f'arch must be (embedding convs >= 1, stem blocks, downsampling blocks), got {arch}')
        self.input_drop = nn.Dropout1d(input_drop) if input_drop > 0 else nn.Identity()
        self.embed = nn.ModuleList(
            MaskedConv1d(in_dim if i == 0 else embed_dim, embed_dim, 3, padding=1, bias=False) for i in range(arch[0]))
        self.embed_norm = nn.ModuleList(ChannelLayerNorm(embed_dim) for _ in range(arch[0]))
        self.stem = nn.ModuleList(TADTransformerBlock(embed_dim, num_heads, window, 1, mlp_ratio, drop_path, proj_drop)
                                  for _ in range(arch[1]))
        self.branch = nn.ModuleList(TADTransformerBlock(embed_dim, num_heads, window, 2, mlp_ratio, drop_path,
                                                        proj_drop) for _ in range(arch[2]))
        self.num_levels = arch[2] + 1

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(B, C_in, T), mask (B, 1, T) -> per level (B, D, T / 2^l) and masks (B, 1, T / 2^l)."""
        x = self.input_drop(x)
        for conv, norm in zip(self.embed, self.embed_norm):
            x, mask = conv(x, mask)
            x = F.relu(norm(x))
        for block in self.stem:
            x, mask = block(x, mask)
        feats, masks = [x], [mask]
        for block in self.branch:
            x, mask = block(x, mask)
            feats.append(x)
            masks.append(mask)
        return feats, masks


class TADHead(nn.Module):
    """A head shared over the pyramid: ``num_layers - 1`` x (masked conv -> LayerNorm -> ReLU) -> masked conv."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int = 3, kernel_size: int = 3):
        super().__init__()
        self.convs = nn.ModuleList(MaskedConv1d(in_dim if i == 0 else hidden, hidden, kernel_size,
                                                padding=kernel_size // 2, bias=False) for i in range(num_layers - 1))
        self.norms = nn.ModuleList(ChannelLayerNorm(hidden) for _ in range(num_layers - 1))
        self.out = MaskedConv1d(hidden if num_layers > 1 else in_dim, out_dim, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x, _ = conv(x, mask)
            x = F.relu(norm(x))
        return self.out(x, mask)[0]


# =====================================================================================================================
# Losses
# =====================================================================================================================
def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
                       weight: torch.Tensor | None = None) -> torch.Tensor:
    """Summed sigmoid focal loss (Lin et al.): ``-alpha_t (1 - p_t)^gamma log(p_t)`` over every element (times
    ``weight``, broadcast to the logits, when given), in float32 whatever the inputs' dtype."""
    logits, targets = logits.float(), targets.float()
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction='none')
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.sum() if weight is None else (loss * weight).sum()


def diou_loss_1d(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Summed 1-D distance-IoU loss of segments given as (distance to start, distance to end) from one point.

    ``1 - IoU + (centre distance / enclosing length)^2``; the point is inside both segments, so the intersection is
    ``min(l) + min(r)`` and the enclosing segment ``max(l) + max(r)``. pred, target: (N, 2), non-negative; computed
    in float32 whatever their dtype.
    """
    pred, target = pred.float(), target.float()
    lp, rp = pred[:, 0], pred[:, 1]
    lg, rg = target[:, 0], target[:, 1]
    inter = torch.minimum(lp, lg) + torch.minimum(rp, rg)
    union = (lp + rp) + (lg + rg) - inter
    iou = inter / union.clamp(min=eps)
    enclosing = torch.maximum(lp, lg) + torch.maximum(rp, rg)
    centre_gap = 0.5 * ((rp - lp) - (rg - lg))
    return (1 - iou + (centre_gap / enclosing.clamp(min=eps)) ** 2).sum()


# =====================================================================================================================
# Data preprocessor
# =====================================================================================================================
@MODELS.register_module()
class TADDataPreprocessor(BaseDataPreprocessor):
    """Pad a list of (C, T_i) feature sequences into one (B, C, T) batch.

    Training batches are padded to ``max_seq_len`` (ActionFormer; the dataset has already cropped longer videos).
    Test batches are padded to the next multiple of ``pad_multiple`` (the coarsest pyramid stride), at least
    ``min_len``: every masked op of the model zeroes padded rows before it reads them and the skip max-pool treats
    them as -inf, so its outputs on real rows do not depend on the padding, and this gives ActionFormer's numbers
    (which pads test inputs to ``max_seq_len``) for less compute.

    Args:
        max_seq_len: training length (2304 for THUMOS14).
        pad_multiple: test lengths are rounded up to a multiple of this (32 = 2^5 for 6 levels).
        min_len: shortest test length.
    """

    def __init__(self, max_seq_len: int = 2304, pad_multiple: int = 32, min_len: int = 0, non_blocking: bool = True):
        super().__init__(non_blocking)
        if max_seq_len % pad_multiple:
            raise ValueError(f'max_seq_len {max_seq_len} must be a multiple of pad_multiple {pad_multiple} (the '
                             'coarsest pyramid stride)')
        self.max_seq_len, self.pad_multiple, self.min_len = max_seq_len, pad_multiple, min_len

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        """``{'inputs': [(C, T_i)], 'data_samples': [dict]}`` -> ``{'inputs': (B, C, T), 'data_samples': [dict]}``
        with ``length`` (T_i) in every sample."""
        feats = data['inputs']
        samples = list(data.get('data_samples') or [{} for _ in feats])
        lengths = [int(f.shape[-1]) for f in feats]
        if training:
            too_long = [(s.get('video_id'), n) for s, n in zip(samples, lengths) if n > self.max_seq_len]
            if too_long:
                raise ValueError(f'training sequences longer than max_seq_len={self.max_seq_len}: {too_long}; the '
                                 'dataset crops them when given the same max_seq_len')
            length = self.max_seq_len
        else:
            length = max(self.min_len, math.ceil(max(lengths) / self.pad_multiple) * self.pad_multiple)
        batch = feats[0].new_zeros((len(feats), feats[0].shape[0], length))
        for i, f in enumerate(feats):
            batch[i, :, :f.shape[-1]] = f
        out_samples = []
        for s, n in zip(samples, lengths):
            s = dict(s)
            s['length'] = n
            out_samples.append(s)
        return {'inputs': self.cast_data(batch), 'data_samples': self.cast_data(out_samples)}


# =====================================================================================================================
# Detector
# =====================================================================================================================
@MODELS.register_module()
class ActionFormerTAD(BaseModel):
    """ActionFormer on pre-extracted clip features (defaults: the THUMOS14 recipe, docs/thumos14.md#actionformer).

    Data flow (THUMOS14 recipe, V2-g features; B videos padded to T rows)::

        features (B, 1408, T), mask (B, T)                                 one row per 16-frame clip, stride 4
          -> embedding: 2 x (masked conv k3 -> channel LayerNorm -> ReLU)   (B, 512, T)
          -> stem: 2 transformer blocks, local attention window 19         (B, 512, T)
          -> branch: 5 blocks, each downsampling x2 (strided q/k/v convs, max-pool skip)
             = 6 pyramid levels, strides 1, 2, 4, 8, 16, 32                 [(B, 512, T / s)]
          -> neck: LayerNorm per level (identity FPN)
          -> shared heads on every level: classification (B, T/s, 20) logits; regression (B, T/s, 2) distances to
             the start and end in units of the level's stride (per-level learnable scale, ReLU)
          -> training: centre-sampling assignment + sigmoid focal loss + 1-D DIoU loss, normalised by an EMA of
             the number of positives
          -> inference: per level top 2000 candidates -> per-class Gaussian Soft-NMS -> 200 segments -> seconds

    Point ``i`` of level ``l`` sits at row ``i * 2^l``.

    Args:
        in_dim: feature channels (1408 V2-g, 768 ViT-B, 384 ViT-S).
        num_classes: action classes (20 on THUMOS14).
        embed_dim: backbone width (512).
        arch: (embedding convs, stem blocks, downsampling blocks).
        num_heads: attention heads.
        window: local attention window in rows (19).
        mlp_ratio: MLP expansion.
        drop_path: drop-path rate (0.1).
        proj_drop: dropout inside the blocks (0).
        input_drop: channel dropout on the input (0; OpenTAD uses 0.2).
        head_dim: head width (512).
        head_layers: convs per head including the output conv (3).
        regression_ranges: per level (lo, hi) of max(distance to start, end), in rows of that level's stride.
        center_sample_radius: a point is a positive only within this many strides of the instance centre (1.5).
        cls_prior_prob: initial foreground probability of the classifier (0.01).
        init_loss_norm: initial value of the EMA of the number of positives (100).
        loss_norm_momentum: its momentum (0.9).
        reg_loss_weight: weight of the DIoU loss (1).
        focal_alpha: focal loss alpha (0.25).
        focal_gamma: focal loss gamma (2).
        test_cfg: ``pre_nms_thresh`` (0.001), ``pre_nms_topk`` per level (2000), ``duration_thresh`` in rows (0.05),
            ``nms_sigma`` (0.5), ``min_score`` (0.001), ``max_seg_num`` (200).
        data_preprocessor: default :class:`TADDataPreprocessor`.
        init_cfg: mmengine init config (unused).
    """

    def __init__(self, in_dim: int, num_classes: int, *, embed_dim: int = 512, arch: Sequence[int] = (2, 2, 5),
                 num_heads: int = 4, window: int = 19, mlp_ratio: float = 4.0, drop_path: float = 0.1,
                 proj_drop: float = 0.0, input_drop: float = 0.0, head_dim: int = 512, head_layers: int = 3,
                 regression_ranges: Sequence[Sequence[float]] = THUMOS_REG_RANGES, center_sample_radius: float = 1.5,
                 cls_prior_prob: float = 0.01, init_loss_norm: float = 100.0, loss_norm_momentum: float = 0.9,
                 reg_loss_weight: float = 1.0, focal_alpha: float = 0.25, focal_gamma: float = 2.0,
                 test_cfg: dict | None = None, data_preprocessor: dict | nn.Module | None = None,
                 init_cfg: dict | None = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='TADDataPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.in_dim, self.num_classes = in_dim, num_classes
        self.backbone = ConvTransformerBackbone(in_dim, embed_dim, arch, num_heads, window, mlp_ratio, drop_path,
                                                proj_drop, input_drop)
        self.num_levels = self.backbone.num_levels
        if len(regression_ranges) != self.num_levels:
            raise ValueError(f'{len(regression_ranges)} regression ranges for {self.num_levels} pyramid levels')
        self.strides = [2 ** i for i in range(self.num_levels)]
        self.regression_ranges = [tuple(float(v) for v in r) for r in regression_ranges]
        self.fpn_norms = nn.ModuleList(ChannelLayerNorm(embed_dim) for _ in range(self.num_levels))
        self.cls_head = TADHead(embed_dim, head_dim, num_classes, head_layers)
        self.reg_head = TADHead(embed_dim, head_dim, 2, head_layers)
        self.reg_scales = nn.ParameterList(nn.Parameter(torch.ones(())) for _ in range(self.num_levels))
        self.center_sample_radius = center_sample_radius
        self.loss_norm = float(init_loss_norm)  # not part of the weights, as ActionFormer; a tensor once trained
        self.loss_norm_momentum = loss_norm_momentum
        self.reg_loss_weight = reg_loss_weight
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.test_cfg = dict(pre_nms_thresh=0.001, pre_nms_topk=2000, duration_thresh=0.05, nms_sigma=0.5,
                             min_score=0.001, max_seg_num=200)
        unknown = set(test_cfg or {}) - set(self.test_cfg)
        if unknown:
            raise ValueError(f'unknown test_cfg keys {sorted(unknown)} (known: {sorted(self.test_cfg)})')
        self.test_cfg.update(test_cfg or {})
        self._init_weights(cls_prior_prob)

    def _init_weights(self, prior: float) -> None:
        # default conv init with zero biases (ActionFormer), and a classifier that starts at p = prior everywhere
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)) and m.bias is not None:
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls_head.out.bias, -math.log((1 - prior) / prior))

    # -----------------------------------------------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor, lengths: Sequence[int]
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """(B, C, T) -> per level: logits (B, T_l, K), distances (B, T_l, 2) in strides, masks (B, T_l).

        Logits and distances are float32 under autocast too: the 0-dim fp32 scale would not promote a bf16 head
        output, and bf16 keeps 8 significant bits, so a distance of 200 strides would be rounded to a whole stride.
        """
        t = x.shape[-1]
        if t % self.strides[-1]:
            raise ValueError(f'sequence length {t} must be a multiple of {self.strides[-1]} (the coarsest stride)')
        mask = (torch.arange(t, device=x.device)[None] < torch.as_tensor(list(lengths), device=x.device)[:, None])
        feats, masks = self.backbone(x, mask[:, None])
        logits, dists = [], []
        for level, (f, m) in enumerate(zip(feats, masks)):
            f = self.fpn_norms[level](f)
            logits.append(self.cls_head(f, m).float().transpose(1, 2))
            dists.append(F.relu(self.reg_scales[level] * self.reg_head(f, m).float()).transpose(1, 2))
        return logits, dists, [m[:, 0] for m in masks]

    def points(self, lengths: Sequence[int], device: torch.device | None = None) -> torch.Tensor:
        """(sum_l T_l, 4): per pyramid point its row, regression range lo and hi, and stride (level by level)."""
        out = []
        for (lo, hi), stride, n in zip(self.regression_ranges, self.strides, lengths):
            pos = torch.arange(n, device=device, dtype=torch.float32) * stride
            out.append(torch.stack([pos, pos.new_full((n,), lo), pos.new_full((n,), hi),
                                    pos.new_full((n,), stride)], dim=1))
        return torch.cat(out)

    @torch.no_grad()
    def assign(self, points: torch.Tensor, segments: torch.Tensor, labels: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Targets of one video (ActionFormer's ``label_points_single_video``).

        A point is a positive of an instance when it lies within ``center_sample_radius`` strides of the instance
        centre *and* inside the instance, and max(distance to start, to end) is in its level's regression range.
        A point claimed by several instances takes the shortest; instances within 1e-3 rows of that length all
        contribute their classes (multi-hot: THUMOS14's CliffDiving segments are also Diving).

        Args:
            points: (P, 4) from :meth:`points`.
            segments: (N, 2) instances in rows.
            labels: (N,) class ids.

        Returns:
            ``(cls_targets (P, K) in {0, 1}, reg_targets (P, 2) distances in strides)``.
        """
        num_pts, num_gt = len(points), len(segments)
        if num_gt == 0:
            return points.new_zeros((num_pts, self.num_classes)), points.new_zeros((num_pts, 2))
        pos, lo, hi, stride = points[:, 0:1], points[:, 1:2], points[:, 2:3], points[:, 3:4]
        start, end = segments[None, :, 0], segments[None, :, 1]                              # (1, N)
        left, right = pos - start, end - pos                                                  # (P, N)
        centre = 0.5 * (start + end)
        radius = stride * self.center_sample_radius
        inside = torch.minimum(pos - torch.maximum(centre - radius, start),
                               torch.minimum(centre + radius, end) - pos) > 0
        reach = torch.maximum(left, right)
        in_range = (reach >= lo) & (reach <= hi)
        # masked_fill, not a boolean index_put: no host sync on GPUs
        lengths = (end - start).expand(num_pts, num_gt).masked_fill(~(inside & in_range), float('inf'))
        min_len, which = lengths.min(dim=1)
        chosen = (lengths <= min_len[:, None] + 1e-3) & torch.isfinite(lengths)
        with torch.autocast(points.device.type, enabled=False):  # float32 targets: autocast would run it in bf16
            onehot = F.one_hot(labels.long(), self.num_classes).to(points.dtype)
            cls = (chosen.to(points.dtype) @ onehot).clamp_(max=1)
        reg = torch.stack([left, right], dim=-1)[torch.arange(num_pts, device=points.device), which] / stride
        return cls, reg

    def loss(self, inputs: torch.Tensor, data_samples: Sequence[dict]) -> dict[str, torch.Tensor]:
        """Focal + DIoU losses, both divided by the EMA of the number of positives in the batch."""
        lengths = [s['length'] for s in data_samples]
        logits, dists, masks = self._forward(inputs, lengths)
        points = self.points([l.shape[1] for l in logits], inputs.device)
        cls_t, reg_t = zip(*(self.assign(points, s['segments'].to(points), s['labels'].to(inputs.device))
                             for s in data_samples))
        cls_t, reg_t = torch.stack(cls_t), torch.stack(reg_t)                                # (B, P, K), (B, P, 2)
        valid = torch.cat(masks, dim=1)                                                      # (B, P)
        positive = (cls_t.sum(-1) > 0) & valid
        # Nothing here waits for the GPU (no .item(), no boolean indexing): the EMA stays a device tensor, padded
        # points weigh 0 in the focal loss, and points that are not positives get the segment (1, 1) as prediction
        # and target, whose DIoU loss is exactly 0 (and gives no gradient).
        num_pos = positive.sum().clamp(min=1).float()
        self.loss_norm = self.loss_norm_momentum * self.loss_norm + (1 - self.loss_norm_momentum) * num_pos
        loss_cls = sigmoid_focal_loss(torch.cat(logits, dim=1), cls_t, self.focal_alpha, self.focal_gamma,
                                      weight=valid[..., None])
        pos = positive[..., None]
        pred = torch.where(pos, torch.cat(dists, dim=1), 1.0).flatten(0, 1)
        loss_reg = diou_loss_1d(pred, torch.where(pos, reg_t, 1.0).flatten(0, 1))
        return {'loss_cls': loss_cls / self.loss_norm,
                'loss_reg': self.reg_loss_weight * loss_reg / self.loss_norm}

    # -----------------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def candidates(self, logits: list[torch.Tensor], dists: list[torch.Tensor], masks: list[torch.Tensor],
                   index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pre-NMS candidates of video ``index``: per level the ``pre_nms_topk`` (point, class) pairs scoring above
        ``pre_nms_thresh``, decoded to [start, end] rows; segments of ``duration_thresh`` rows or less dropped.
        Decoded in float32 whatever the inputs' dtype."""
        cfg = self.test_cfg
        segs, scores, labels = [], [], []
        for level, stride in enumerate(self.strides):
            prob = (logits[level][index].float().sigmoid() * masks[level][index, :, None]).flatten()
            keep = torch.nonzero(prob > cfg['pre_nms_thresh']).squeeze(1)
            prob = prob[keep]
            top = prob.argsort(descending=True, stable=True)[:cfg['pre_nms_topk']]
            prob, keep = prob[top], keep[top]
            pt, cls = keep // self.num_classes, keep % self.num_classes
            d = dists[level][index][pt].float()
            pos = pt.to(d.dtype) * stride
            seg = torch.stack([pos - d[:, 0] * stride, pos + d[:, 1] * stride], dim=1)
            long_enough = (seg[:, 1] - seg[:, 0]) > cfg['duration_thresh']
            segs.append(seg[long_enough])
            scores.append(prob[long_enough])
            labels.append(cls[long_enough])
        return (torch.cat(segs).double().cpu().numpy(), torch.cat(scores).double().cpu().numpy(),
                torch.cat(labels).cpu().numpy())

    def postprocess(self, segments: np.ndarray, scores: np.ndarray, labels: np.ndarray, sample: dict
                    ) -> dict[str, Any]:
        """Soft-NMS in rows, then rows -> seconds with the video's store metadata, clipped to its duration.

        The mapping is :meth:`feature_store.VideoFeatureMeta.row_to_seconds` (the clip centres, stride and fps
        recorded at extraction); for the official windows (16 frames every 4) it is exactly ActionFormer's
        ``t = (row * 4 + 0.5 * 16) / fps`` (docs/thumos14.md#time-and-feature-rows).

        ``sample`` holds ``video_id``, ``meta`` (:class:`feature_store.VideoFeatureMeta`), ``row_offset`` (first
        row of the window fed to the model; 0 at test time) and ``duration`` (seconds, from the annotations).
        """
        cfg = self.test_cfg
        segments, scores, labels = batched_soft_nms(segments, scores, labels, cfg['nms_sigma'], cfg['min_score'],
                                                    cfg['max_seg_num'])
        meta = sample['meta']
        seconds = meta.row_to_seconds(segments + float(sample.get('row_offset', 0)))
        seconds = np.clip(seconds, 0.0, float(sample.get('duration', meta.duration))).reshape(-1, 2)
        return {'video_id': sample['video_id'], 'segments': seconds, 'scores': scores, 'labels': labels}

    def predict(self, inputs: torch.Tensor, data_samples: Sequence[dict]) -> list[dict[str, Any]]:
        """Per video ``{'video_id', 'segments' (K, 2) seconds, 'scores' (K,), 'labels' (K,) class ids}``."""
        logits, dists, masks = self._forward(inputs, [s['length'] for s in data_samples])
        return [self.postprocess(*self.candidates(logits, dists, masks, i), s) for i, s in enumerate(data_samples)]

    def forward(self, inputs: torch.Tensor, data_samples: Sequence[dict] | None = None,
                mode: Literal['loss', 'predict', 'tensor'] = 'tensor') -> Any:
        """
        Args:
            inputs: (B, C, T) features, T a multiple of the coarsest stride (:class:`TADDataPreprocessor`).
            data_samples: per video ``length`` (real rows); for ``'loss'`` also ``segments`` (N, 2) rows and
                ``labels`` (N,); for ``'predict'`` the fields :meth:`postprocess` reads.
            mode: ``'loss'`` -> ``{'loss_cls', 'loss_reg'}``; ``'predict'`` -> list of detections per video;
                ``'tensor'`` -> per-level (logits, distances, masks).
        """
        if data_samples is None:
            data_samples = [{'length': inputs.shape[-1]} for _ in range(inputs.shape[0])]
        if inputs.shape[1] != self.in_dim:  # before the first convolution's shape error
            raise FeatureWidthError(feature_width_message(int(inputs.shape[1]), self.in_dim, data_samples))
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._forward(inputs, [s['length'] for s in data_samples])
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")
