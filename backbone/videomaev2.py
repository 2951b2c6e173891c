"""VideoMAE V2 vision transformer (S/B/L/H/g) for downstream work.

Paper: Wang et al., "VideoMAE V2: Scaling Video Masked Autoencoders with Dual Masking", CVPR 2023 (arXiv 2303.16727).
Numerical reference: OpenGVLab/VideoMAEv2 ``models/modeling_finetune.py`` (commit 29eab1e). The parameter names are
the official ones, so official state dicts load with no renaming; other layouts go through
:func:`backbone.load_checkpoint`.

Layout of this file (timm order): blocks -> the ViT -> init -> presets. The dual-masked pre-training model lives in
its own module and reuses :class:`Block` and :class:`PatchEmbed` from here.
"""
from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .attention import attention
from .checkpoint import filter_checkpoint, load_checkpoint
from .checkpoint_io import CheckpointError
from .pos_embed import PosEmbedPolicy, adapt_pos_embed, resize_pos_embed, sinusoid_table

ArchName = Literal['vit_small', 'vit_base', 'vit_large', 'vit_huge', 'vit_giant', 'vit_test']

#: Architecture presets (docs/backbone.md#sizes). ``vit_test`` is a tiny variant for CPU unit tests.
ARCH_PRESETS: dict[str, dict[str, Any]] = {
    'vit_small': dict(patch_size=16, embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0),
    'vit_base': dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0),
    'vit_large': dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4.0),
    'vit_huge': dict(patch_size=16, embed_dim=1280, depth=32, num_heads=16, mlp_ratio=4.0),
    # ViT-g: patch 14 and MLP hidden int(1408 * 48 / 11) = 6144, as in the official vit_giant_patch14_224.
    'vit_giant': dict(patch_size=14, embed_dim=1408, depth=40, num_heads=16, mlp_ratio=48 / 11),
    'vit_test': dict(patch_size=16, embed_dim=64, depth=2, num_heads=4, mlp_ratio=4.0),
}


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class DropPath(nn.Module):
    """Stochastic depth per sample (timm's ``drop_path``; local so that importing the backbone does not import timm,
    which pulls in torchvision's model zoo). Kept samples are scaled by 1/keep_prob."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep_prob)
        return x * mask.div_(keep_prob)

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob:.3f}'


class PatchEmbed(nn.Module):
    """Cube embedding: Conv3d with kernel = stride = (tubelet, p, p).

    (B, 3, T, H, W) -> (B, T'*H'*W', C), time slowest.
    """

    def __init__(self, patch_size: int = 16, tubelet_size: int = 2, in_chans: int = 3, embed_dim: int = 768):
        super().__init__()
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def grid(self, x: torch.Tensor) -> tuple[int, int, int]:
        """Token grid (T', H', W') of an input (B, 3, T, H, W); raises a clear error for sizes that do not tile."""
        if x.dim() != 5:
            raise ValueError(f'expected a clip tensor (B, C, T, H, W), got shape {tuple(x.shape)}')
        _, channels, t, h, w = x.shape
        if channels != self.proj.in_channels:
            raise ValueError(f'clip has {channels} channels, the patch embedding expects {self.proj.in_channels}')
        p, k = self.patch_size, self.tubelet_size
        if t % k or h % p or w % p:
            raise ValueError(f'clip of {t} frames x {h}x{w} px does not tile into tubelets of {k} frames x {p}x{p} px')
        return t // k, h // p, w // p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # contiguous: otherwise the residual stream keeps the transposed layout through every block, and each
        # LayerNorm and residual add pays a strided read (measured ~10% of fp32 CPU throughput).
        return self.proj(x).flatten(2).transpose(1, 2).contiguous()


class Attention(nn.Module):
    """Multi-head self-attention in the BEiT layout used by VideoMAE.

    ``qkv`` has no bias; ``q_bias`` and ``v_bias`` are parameters and the k bias is a fixed zero, kept as a
    non-persistent buffer (as timm's beit.py) so the state dict matches the official one. ``fused_attn`` selects
    the fastest kernel for the input (:func:`backbone.attention.attention`: ``scaled_dot_product_attention``, or
    blocked bf16 GEMMs on a CPU); the explicit softmax path is the official one and is kept for testing.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, qk_scale: float | None = None,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, fused_attn: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'embed_dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5
        self.fused_attn = fused_attn
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.register_buffer('k_bias', torch.zeros(dim), persistent=False)
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.k_bias = self.v_bias = None
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def to_empty(self, *, device: torch.device | str | None, recurse: bool = True) -> Attention:
        """``nn.Module.to_empty`` that refills the fixed zero k bias (it is in no state dict to be reloaded)."""
        super().to_empty(device=device, recurse=recurse)
        self.reset_fixed_buffers()
        return self

    def reset_fixed_buffers(self) -> None:
        if self.k_bias is not None:
            self.k_bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        batch, tokens, dim = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, self.k_bias.to(self.q_bias.dtype), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias)
        q, k, v = qkv.reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if self.fused_attn:
            x = attention(q, k, v, self.scale, dropout_p=self.attn_drop.p if self.training else 0.0)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            attn = self.attn_drop(attn.softmax(dim=-1))
            x = (attn @ v).transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 -> dropout.

    Unlike timm's Mlp there is no dropout after the activation: the official module has it commented out ("for the
    original BERT implement"), and HF transformers' VideoMAE also drops only after fc2
    (docs/backbone.md#embedding-attention-and-blocks).
    """

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


class Block(nn.Module):
    """Pre-norm transformer block: x + DropPath(g1 * Attn(LN x)), then x + DropPath(g2 * MLP(LN x)).

    The layer scales ``gamma_1``/``gamma_2`` exist only when ``init_values > 0`` (no released model uses them).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: float | None = None, drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 init_values: float = 0.0, norm_eps: float = 1e-6, fused_attn: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias, qk_scale, attn_drop, drop, fused_attn)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        if init_values > 0:
            self.gamma_1 = nn.Parameter(init_values * torch.ones(dim))
            self.gamma_2 = nn.Parameter(init_values * torch.ones(dim))
        else:
            self.gamma_1 = self.gamma_2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gamma_1 is None:
            x = x + self.drop_path(self.attn(self.norm1(x)))
            return x + self.drop_path(self.mlp(self.norm2(x)))
        x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))


def run_blocks(blocks: nn.ModuleList, x: torch.Tensor, with_cp: bool) -> torch.Tensor:
    """Apply ``blocks`` in order; with ``with_cp`` each block is recomputed in backward (activation checkpointing).

    Checkpointing is skipped when no gradient is needed, where it would only cost time. The RNG state is preserved, so
    drop path and dropout give the same outputs and gradients as without checkpointing.
    """
    use_cp = with_cp and torch.is_grad_enabled()
    for blk in blocks:
        x = checkpoint(blk, x, use_reentrant=False) if use_cp else blk(x)
    return x


class VideoMAEv2ViT(nn.Module):
    """VideoMAE V2 ViT with mean pooling (the released fine-tuned/distilled/TAD-feature models).

    Data flow::

        clip (B, 3, T, H, W)
          -> patch_embed (Conv3d 2xpxp)           (B, N, C),  N = T/2 * H/p * W/p
          -> + fixed sinusoid pos_embed            (resized when the grid differs from the constructed one)
          -> blocks x depth                        (B, N, C)       = forward_tokens
          -> mean over N -> fc_norm                (B, C)          = forward_features
          -> head_dropout -> head                  (B, num_classes) = forward (when num_classes > 0)
          `-> norm -> reshape                      (B, C, T', H', W') = forward_featmap (detection)

    Args:
        arch: preset name from :data:`ARCH_PRESETS`; explicit keyword arguments below override it.
        img_size: constructed frame size; other multiples of the patch size also work (pos_embed is resized).
        all_frames: constructed clip length in frames.
        num_classes: size of the classification head; 0 means no head (``forward`` returns features).
        init_scale: factor applied to the freshly initialised head (official fine-tuning default 0.001).
        featmap_norm: add the LayerNorm ``norm`` applied by :meth:`forward_featmap` (fresh, as in mmaction2's
            detection ViT). Off by default so classification checkpoints load exactly.
        fc_norm: add the pooling LayerNorm ``fc_norm`` of :meth:`forward_features` (the official models' and timm's
            name); False makes it an Identity, for a ViT used only through :meth:`forward_featmap` (the AVA detector,
            mmaction2's ``use_mean_pooling=False``), where an unused parameter would break DDP. Its weights in a
            checkpoint are then dropped (docs/checkpoints.md#k710-heads-and-safe-loading).
        pos_embed_policy: ``'interpolate'`` (mmaction2: bicubic per slice, linear in time) or ``'sinusoid'`` (a fresh
            table for the runtime grid, as an official model constructed at that size) when the grid differs.
        with_cp: activation checkpointing of every block.
        fused_attn: use ``scaled_dot_product_attention`` (True) or the explicit softmax form.
        pretrained: checkpoint path loaded by :meth:`init_weights` through :func:`backbone.load_checkpoint`.
        init_cfg: mmengine-style ``dict(type='Pretrained', checkpoint=...)`` is accepted as an alias of ``pretrained``.
    """

    def __init__(self, arch: ArchName | str = 'vit_base', *, img_size: int | tuple[int, int] = 224,
                 all_frames: int = 16, tubelet_size: int = 2, in_chans: int = 3, num_classes: int = 0,
                 patch_size: int | None = None, embed_dim: int | None = None, depth: int | None = None,
                 num_heads: int | None = None, mlp_ratio: float | None = None, qkv_bias: bool = True,
                 qk_scale: float | None = None, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, head_drop_rate: float = 0.0, norm_eps: float = 1e-6,
                 init_values: float = 0.0, use_learnable_pos_emb: bool = False, init_scale: float = 0.001,
                 featmap_norm: bool = False, fc_norm: bool = True, pos_embed_policy: PosEmbedPolicy = 'interpolate',
                 with_cp: bool = False, fused_attn: bool = True, pretrained: str | None = None,
                 init_cfg: dict | None = None):
        super().__init__()
        if arch not in ARCH_PRESETS:
            raise KeyError(f'unknown arch {arch!r}; choose one of {sorted(ARCH_PRESETS)}')
        preset = dict(ARCH_PRESETS[arch])
        for key, value in dict(patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                               mlp_ratio=mlp_ratio).items():
            if value is not None:
                preset[key] = value
        if pos_embed_policy not in ('interpolate', 'sinusoid'):
            raise ValueError(f"pos_embed_policy must be 'interpolate' or 'sinusoid', got {pos_embed_policy!r}")
        if init_cfg is not None:
            if init_cfg.get('type') != 'Pretrained' or 'checkpoint' not in init_cfg or pretrained is not None:
                raise ValueError(f'init_cfg supports only dict(type="Pretrained", checkpoint=PATH); got {init_cfg}')
            pretrained = init_cfg['checkpoint']
        self.arch = arch
        self.pretrained = pretrained
        self.patch_size = preset['patch_size']
        self.embed_dim = self.num_features = preset['embed_dim']
        self.depth = preset['depth']
        self.num_heads = preset['num_heads']
        self.tubelet_size = tubelet_size
        self.num_classes = num_classes
        self.init_scale = init_scale
        self.with_cp = with_cp
        self.pos_embed_policy = pos_embed_policy
        height, width = _pair(img_size)
        if all_frames % tubelet_size or height % self.patch_size or width % self.patch_size:
            raise ValueError(f'{all_frames} frames x {height}x{width} px does not tile into '
                             f'{tubelet_size}x{self.patch_size}x{self.patch_size} tubelets')
        self.grid_size = (all_frames // tubelet_size, height // self.patch_size, width // self.patch_size)
        num_tokens = math.prod(self.grid_size)

        # --- encoder ---------------------------------------------------------------------------------------------
        self.patch_embed = PatchEmbed(self.patch_size, tubelet_size, in_chans, self.embed_dim)
        if use_learnable_pos_emb:
            self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, self.embed_dim))
        else:
            # Official storage is a plain attribute, absent from checkpoints; a non-persistent buffer keeps it out of
            # the state dict and lets it follow .to(device).
            self.register_buffer('pos_embed', sinusoid_table(num_tokens, self.embed_dim), persistent=False)
        self._resized_pos_embed: dict[tuple, torch.Tensor] = {}
        self.pos_drop = nn.Dropout(drop_rate)
        # Stochastic depth grows linearly over depth: block i gets rate * i / (depth - 1).
        rates = [drop_path_rate * i / (self.depth - 1) if self.depth > 1 else 0.0 for i in range(self.depth)]
        self.blocks = nn.ModuleList([
            Block(self.embed_dim, self.num_heads, preset['mlp_ratio'], qkv_bias, qk_scale, drop_rate, attn_drop_rate,
                  rates[i], init_values, norm_eps, fused_attn) for i in range(self.depth)])

        # --- pooling, norms, head -------------------------------------------------------------------------------
        self.norm = nn.LayerNorm(self.embed_dim, eps=norm_eps) if featmap_norm else nn.Identity()
        self.fc_norm = nn.LayerNorm(self.embed_dim, eps=norm_eps) if fc_norm else nn.Identity()
        self.head_dropout = nn.Dropout(head_drop_rate)
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.reset_parameters()

    # --- init ------------------------------------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """Official init: Linear trunc-normal(std .02) and bias 0, LayerNorm 1/0, then head scaled by init_scale.

        The Conv3d patch embedding keeps PyTorch's default init, as in the official code.
        """
        if isinstance(self.pos_embed, nn.Parameter):
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(_init_linear_and_norm)
        if isinstance(self.head, nn.Linear):
            with torch.no_grad():
                self.head.weight.mul_(self.init_scale)
                self.head.bias.mul_(self.init_scale)

    def to_empty(self, *, device: torch.device | str | None, recurse: bool = True) -> VideoMAEv2ViT:
        """Materialise a meta-device model (``nn.Module.to_empty``), rebuilding the fixed buffers.

        ``to_empty`` leaves every buffer uninitialised, and the fixed sinusoid table and zero k biases are in no state
        dict, so a following ``load_state_dict`` would never restore them: the model would silently add garbage to
        every token. (``nn.Module.to_empty`` does not call the children's ``to_empty``, hence the loop.)
        """
        super().to_empty(device=device, recurse=recurse)
        self.reset_fixed_buffers(recurse)
        return self

    def reset_fixed_buffers(self, recurse: bool = True) -> None:
        """Refill the buffers no state dict restores: the sinusoid table and (with ``recurse``) the zero k biases.

        Also used by the pre-training model, whose encoder is this class, after its own ``to_empty``.
        """
        if recurse:
            for module in self.modules():
                if isinstance(module, Attention):
                    module.reset_fixed_buffers()
        if not isinstance(self.pos_embed, nn.Parameter):
            with torch.no_grad():
                self.pos_embed.copy_(sinusoid_table(self.pos_embed.shape[1], self.embed_dim))
        self._resized_pos_embed.clear()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """Inside any ``load_state_dict`` (mmengine's ``load_from`` included), pass this ViT's keys through the
        checkpoint filter's renaming: another layout's names (mmaction2's ``patch_embed.projection``,
        ``mlp.layers.*``) become official ones, and a stored fixed ``pos_embed`` is dropped (a learned one is an
        error). Missing and unexpected keys are left for ``load_state_dict`` to report."""
        keys = [k for k in state_dict if k.startswith(prefix)]
        if keys:
            try:
                renamed, _ = filter_checkpoint({k[len(prefix):]: state_dict[k] for k in keys}, self, mode='rename')
            except CheckpointError as err:
                error_msgs.append(f'{prefix.rstrip(".") or type(self).__name__}: {err}')
            else:
                for key in keys:
                    del state_dict[key]
                state_dict.update({prefix + k: v for k, v in renamed.items()})
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def init_weights(self) -> None:
        """mmengine hook: load ``pretrained`` if given (the constructor already initialised fresh weights)."""
        if self.pretrained:
            load_checkpoint(self, self.pretrained)

    # --- feature API -----------------------------------------------------------------------------------------------
    def pos_embed_for(self, grid: tuple[int, int, int]) -> torch.Tensor:
        """Position table (1, prod(grid), C) for a token grid, resized by ``pos_embed_policy`` when needed."""
        if tuple(grid) == self.grid_size:
            return self.pos_embed
        if isinstance(self.pos_embed, nn.Parameter):  # learnable: resize every call so gradients flow
            return resize_pos_embed(self.pos_embed, self.grid_size, grid)
        key = (tuple(grid), self.pos_embed.device, self.pos_embed_policy)
        if key not in self._resized_pos_embed:
            self._resized_pos_embed[key] = adapt_pos_embed(self.pos_embed, self.grid_size, grid, self.pos_embed_policy)
        return self._resized_pos_embed[key]

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """(B, 3, T, H, W) -> tokens with position embedding (B, N, C) and the grid (T', H', W')."""
        grid = self.patch_embed.grid(x)
        x = self.patch_embed(x)
        pos = self.pos_embed_for(grid)
        if not isinstance(pos, nn.Parameter):
            pos = pos.detach()
        x = x + pos.to(dtype=x.dtype)
        return self.pos_drop(x), grid

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> last-block tokens (B, N, C), before any norm."""
        x, _ = self.embed(x)
        return run_blocks(self.blocks, x, self.with_cp)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> fc_norm(mean of tokens) (B, C): the official feature (and TAD feature)."""
        return self.fc_norm(self.forward_tokens(x).mean(dim=1))

    def forward_featmap(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> norm(tokens) as a map (B, C, T', H', W') for RoI heads."""
        tokens, grid = self.embed(x)
        tokens = self.norm(run_blocks(self.blocks, tokens, self.with_cp))
        return tokens.transpose(1, 2).reshape(tokens.shape[0], self.embed_dim, *grid)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, C) pooled features -> (B, num_classes) logits (or the features when ``pre_logits``)."""
        features = self.head_dropout(features)
        return features if pre_logits else self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> logits (B, num_classes), or features (B, C) when ``num_classes == 0``."""
        features = self.forward_features(x)
        return self.forward_head(features) if self.num_classes > 0 else features

    # --- optimiser hooks -------------------------------------------------------------------------------------------
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.with_cp = enable

    def no_weight_decay(self) -> set[str]:
        return {'pos_embed'}

    def get_num_layers(self) -> int:
        return self.depth

    def num_params(self, exclude_head: bool = True) -> int:
        """Parameter count; ``exclude_head`` drops ``head.*`` (the docs/backbone.md#sizes convention)."""
        return sum(p.numel() for name, p in self.named_parameters()
                   if not (exclude_head and name.startswith('head.')))


def _init_linear_and_norm(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
