"""AVA action detector for a plain VideoMAE V2 ViT on torch + torchvision only (no mmdet, no mmcv ops).

It computes what mmaction2's ``FastRCNN`` + ``SingleRoIExtractor3D`` + ``BBoxHeadAVA`` compute on the RPN-free,
ground-truth-box training path mmaction2 uses for AVA (docs/ava.md#roi-head), with the RoIAlign spatial scale read
from the backbone, so a patch-14 ViT-g needs no extra setting.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.registry import MODELS
from torchvision.ops import roi_align

from backbone import VideoMAEv2ViT
from tasks.data.video.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ['VideoMAEv2AVAPreprocessor', 'VideoMAEv2RoIHead', 'VideoMAEv2AVADetector', 'VideoMAEv2AVACachedDetector',
           'boxes_to_rois', 'build_roi_head']


def boxes_to_rois(boxes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-clip (N_i, 4) pixel boxes -> (sum N_i, 5) ``[batch_index, x1, y1, x2, y2]`` (torchvision's roi format)."""
    rois = [torch.cat([torch.full((len(b), 1), float(i), dtype=b.dtype, device=b.device), b], dim=1)
            for i, b in enumerate(boxes)]
    return torch.cat(rois) if rois else torch.zeros((0, 5))


@MODELS.register_module()
class VideoMAEv2AVAPreprocessor(BaseDataPreprocessor):
    """Move clips to the device, normalise them and pad them into one batch.

    Args:
        mean: per-channel mean on the 0-255 scale (ImageNet by default, as mmaction2's AVA configs).
        std: per-channel std.
        pad_size_divisor: pad height and width (bottom/right, with 0 after normalisation, i.e. the mean colour) up to
            a multiple of this, so that the ViT sees whole patches; None: set by the detector to the patch size.
        non_blocking: asynchronous host-to-device copies.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 pad_size_divisor: int | None = None, non_blocking: bool = True):
        super().__init__(non_blocking)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f'mean and std need 3 values (RGB), got {mean} and {std}')
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1), persistent=False)
        self.pad_size_divisor = pad_size_divisor

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        """
        Args:
            data: ``inputs``: a list of (3, T, H_i, W_i) clips on 0-255 (or a stacked tensor); ``data_samples``: a
                list of per-clip dicts (see :class:`~tasks.detection.dataset.VideoMAEv2AVADataset`).

        Returns:
            ``inputs`` float32 (B, 3, T, H, W), normalised and padded; ``data_samples`` on the device.
        """
        data = self.cast_data(data)
        clips = list(data['inputs'])
        if not clips:
            raise ValueError('empty batch')
        if any(c.ndim != 4 or c.shape[0] != 3 for c in clips):
            raise ValueError(f'expected clips (3, T, H, W), got {[tuple(c.shape) for c in clips]}')
        if len({c.shape[1] for c in clips}) != 1:
            raise ValueError(f'clips of one batch need the same length, got {[c.shape[1] for c in clips]}')
        div = self.pad_size_divisor or 1
        h = -(-max(c.shape[-2] for c in clips) // div) * div
        w = -(-max(c.shape[-1] for c in clips) // div) * div
        batch = clips[0].new_zeros((len(clips), 3, clips[0].shape[1], h, w), dtype=torch.float32)
        for i, c in enumerate(clips):
            batch[i, :, :, :c.shape[-2], :c.shape[-1]] = (c.float() - self.mean) / self.std
        return dict(inputs=batch, data_samples=data.get('data_samples'))


@MODELS.register_module()
class VideoMAEv2RoIHead(nn.Module):
    """Temporal mean -> RoIAlign -> spatial max -> dropout -> Linear, on a ViT feature map.

    ``torchvision.ops.roi_align(..., sampling_ratio=0, aligned=True)`` computes what mmcv's average, aligned RoIAlign
    computes. Unlike mmaction2's ``BBoxHeadAVA`` there is no background column (``num_classes`` = action ids, 80 for
    AVA, instead of 81 with a column 0 the loss ignores), and by default the dropout comes after the spatial max.

    Args:
        in_channels: C of the feature map.
        num_classes: outputs (AVA action ids 1..num_classes in columns 0..num_classes-1).
        spatial_scale: feature cells per input pixel, 1 / patch size (the detector sets it from the backbone).
        output_size: RoIAlign grid (8, mmaction2's ViT configs).
        sampling_ratio: RoIAlign samples per bin; 0 = adaptive (ceil(bin size)), as mmaction2.
        dropout: dropout ratio (0.5).
        dropout_before_pool: apply dropout to the RoI features before the spatial max (mmaction2's default) instead
            of to the pooled vector.
        temporal_pool: ``'avg'`` (docs/ava.md#roi-head) or ``'max'`` over T' before RoIAlign.
    """

    def __init__(self, in_channels: int, num_classes: int, spatial_scale: float, output_size: int = 8,
                 sampling_ratio: int = 0, dropout: float = 0.5, dropout_before_pool: bool = False,
                 temporal_pool: Literal['avg', 'max'] = 'avg'):
        super().__init__()
        if temporal_pool not in ('avg', 'max'):
            raise ValueError(f"temporal_pool must be 'avg' or 'max', got {temporal_pool!r}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.spatial_scale = spatial_scale
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio
        self.dropout_before_pool = dropout_before_pool
        self.temporal_pool = temporal_pool
        self.dropout = nn.Dropout(dropout)
        self.fc_cls = nn.Linear(in_channels, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # mmaction2 BBoxHeadAVA.init_weights: xavier-normal weight, zero bias
        nn.init.xavier_normal_(self.fc_cls.weight)
        nn.init.zeros_(self.fc_cls.bias)

    def roi_features(self, featmap: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """(B, C, T', H', W') map and (K, 5) pixel rois -> (K, C, S, S) RoIAlign features of the time-pooled map."""
        if featmap.ndim != 5:
            raise ValueError(f'expected a feature map (B, C, T, H, W), got {tuple(featmap.shape)}')
        pooled = featmap.mean(dim=2) if self.temporal_pool == 'avg' else featmap.amax(dim=2)
        return self.align(pooled, rois).to(pooled.dtype)

    def align(self, pooled: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """(B, C, H', W') time-pooled map (a stored ``featmap``) and (K, 5) pixel rois -> (K, C, S, S) float32."""
        # float32 boxes and map: in bf16 a box edge near x = 341 px would round by up to 1 px (1/16 of a patch)
        return roi_align(pooled.float(), rois.float(), output_size=self.output_size, spatial_scale=self.spatial_scale,
                         sampling_ratio=self.sampling_ratio, aligned=True)

    def forward(self, featmap: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """(B, C, T', H', W'), (K, 5) -> logits (K, num_classes)."""
        return self.classify(self.roi_features(featmap, rois))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """(K, C, S, S) RoI features -> logits (K, num_classes)."""
        if self.dropout_before_pool:
            x = self.dropout(x)
        x = x.amax(dim=(2, 3))
        if not self.dropout_before_pool:
            x = self.dropout(x)
        return self.fc_cls(x)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, num_classes={self.num_classes}, spatial_scale={self.spatial_scale:g}'
                f', output_size={self.output_size}, temporal_pool={self.temporal_pool!r}')


def build_roi_head(roi_head: dict, in_channels: int, patch_size: int, origin: str) -> VideoMAEv2RoIHead:
    """The RoI head of a config's ``roi_head`` dict, its width and spatial scale taken from ``origin``: the RoI boxes
    are in input pixels and the feature map has one cell per patch, whatever the patch size."""
    roi_head = dict(roi_head)
    if roi_head.pop('type', 'VideoMAEv2RoIHead') != 'VideoMAEv2RoIHead':
        raise ValueError('roi_head must be a VideoMAEv2RoIHead')
    for key in ('in_channels', 'spatial_scale'):
        if key in roi_head:
            raise ValueError(f'roi_head.{key} is taken from {origin}; do not set it')
    return VideoMAEv2RoIHead(in_channels=in_channels, spatial_scale=1.0 / patch_size, **roi_head)


@MODELS.register_module()
class VideoMAEv2AVADetector(BaseModel):
    """mmengine model: VideoMAE V2 ViT feature map + :class:`VideoMAEv2RoIHead`, classifying given person boxes.

    Checkpoints hold ``backbone.*`` (the ViT, the names of an mmaction2 recognizer's backbone) and ``roi_head.*``.

    Data flow (ViT-B, one 16 x 256 x 341 test clip with N person boxes)::

        clip (B, 3, 16, H, W), boxes in input pixels, padded to whole patches: 256 x 352
          -> VideoMAEv2ViT.forward_featmap          (B, C, T', H/p, W/p)     = (1, 768, 8, 16, 22)
          -> mean over T'                           (B, C, H/p, W/p)
          -> roi_align 8x8, aligned, 1 / p          (K, C, 8, 8)             K = boxes of the whole batch
          -> max over the 8x8 cells                 (K, C)
          -> dropout 0.5 -> Linear(C, num_classes)  (K, num_classes)         logits; column j = AVA action id j + 1
          -> sigmoid BCE against the multi-hot labels (training) / sigmoid scores (test)

    As in mmaction2, only RoIs with at least one label enter the loss, the mean of the element-wise BCE over
    (RoI, class).

    Args:
        backbone: keyword arguments of :class:`backbone.VideoMAEv2ViT` (``type='VideoMAEv2ViT'`` may be given);
            ``featmap_norm`` defaults to True (a fresh LayerNorm on the tokens, as mmaction2's detection ViT) and
            ``num_classes`` to 0. The ViT is built with ``fc_norm=False``: the feature map never passes the pooling
            norm, and a parameter without a gradient stops DDP at its second iteration; a checkpoint's ``fc_norm`` is
            dropped on load. ``pretrained`` loads a checkpoint through :func:`backbone.load_checkpoint` when the
            Runner initialises the weights.
        roi_head: keyword arguments of :class:`VideoMAEv2RoIHead` except ``in_channels`` and ``spatial_scale``,
            which come from the backbone (``type='VideoMAEv2RoIHead'`` may be given).
        data_preprocessor: config of the preprocessor (default :class:`VideoMAEv2AVAPreprocessor`); its
            ``pad_size_divisor`` is set to the patch size when not given.
        init_cfg: mmengine init config (unused: the parts initialise themselves).
    """

    def __init__(self, backbone: dict, roi_head: dict, data_preprocessor: dict | nn.Module | None = None,
                 init_cfg: dict | None = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='VideoMAEv2AVAPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        backbone = dict(backbone)
        if backbone.pop('type', 'VideoMAEv2ViT') != 'VideoMAEv2ViT':
            raise ValueError(f'the AVA detector takes a VideoMAEv2ViT backbone, got type={backbone.get("type")!r}')
        backbone.setdefault('featmap_norm', True)
        backbone.setdefault('num_classes', 0)
        backbone.setdefault('fc_norm', False)
        # Every parameter must reach the loss: DDP (without find_unused_parameters, a graph traversal every step)
        # stops at the second iteration otherwise.
        if backbone['fc_norm'] or backbone['num_classes']:
            raise ValueError(f'backbone: fc_norm={backbone["fc_norm"]!r}, num_classes={backbone["num_classes"]!r}: the '
                             'detector uses only forward_featmap, so a pooling norm or a head would get no gradient')
        self.backbone = VideoMAEv2ViT(**backbone)
        self.roi_head = build_roi_head(roi_head, self.backbone.embed_dim, self.backbone.patch_size, 'the backbone')
        pre = self.data_preprocessor
        if getattr(pre, 'pad_size_divisor', 0) is None:
            pre.pad_size_divisor = self.backbone.patch_size
        elif getattr(pre, 'pad_size_divisor', None) and pre.pad_size_divisor % self.backbone.patch_size:
            raise ValueError(f'pad_size_divisor={pre.pad_size_divisor} is not a multiple of the patch size '
                             f'{self.backbone.patch_size}')

    @property
    def num_classes(self) -> int:
        return self.roi_head.num_classes

    def logits(self, inputs: torch.Tensor, data_samples: Sequence[dict]) -> torch.Tensor:
        """(B, 3, T, H, W) clips and their samples' ``boxes`` (pixels) -> (K, num_classes) float32 logits, K = all
        boxes. Float32 under autocast too, so that the sigmoid, the loss and the scores are computed in float32."""
        featmap = self.backbone.forward_featmap(inputs)
        rois = boxes_to_rois([s['boxes'].to(device=featmap.device, dtype=torch.float32) for s in data_samples])
        return self.roi_head(featmap, rois).float()

    def loss(self, inputs: torch.Tensor, data_samples: Sequence[dict]) -> dict[str, torch.Tensor]:
        """Sigmoid BCE over the (RoI, class) entries of the RoIs that have at least one label."""
        logits = self.logits(inputs, data_samples)
        labels = torch.cat([s['labels'].to(logits) for s in data_samples]).reshape(-1, self.num_classes)
        positive = labels.sum(dim=1) > 0
        if not positive.any():  # no usable box in the batch: a zero loss that still touches every parameter
            return dict(loss_action_cls=sum(p.sum() for p in self.parameters()) * 0.0)
        logits, labels = logits[positive], labels[positive]
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        with torch.no_grad():  # logged, not optimised (their names do not contain "loss")
            pred = logits > 0
            hits = (pred & (labels > 0)).sum()
            recall = hits / labels.sum().clamp(min=1)
            precision = hits / pred.sum().clamp(min=1)
        return dict(loss_action_cls=loss, recall_thr05=recall, prec_thr05=precision)

    def predict(self, inputs: torch.Tensor, data_samples: Sequence[dict]) -> list[dict[str, Any]]:
        """Per clip: ``video_id``, ``timestamp``, ``boxes`` (N, 4) normalised (the given ones, unchanged),
        ``scores`` (N, num_classes) sigmoid probabilities, ``failed``."""
        scores = torch.sigmoid(self.logits(inputs, data_samples))  # float32 logits (see logits)
        out, start = [], 0
        for s in data_samples:
            n = len(s['boxes'])
            out.append(dict(video_id=s['video_id'], timestamp=int(s['timestamp']), boxes=s['norm_boxes'].cpu(),
                            scores=scores[start:start + n].cpu(), failed=s.get('failed')))
            start += n
        return out

    def forward(self, inputs: torch.Tensor, data_samples: Sequence[dict] | None = None,
                mode: Literal['loss', 'predict', 'tensor'] = 'tensor'):
        if data_samples is None:
            raise ValueError('the AVA detector needs data_samples with the boxes to classify')
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.logits(inputs, data_samples)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")


@MODELS.register_module()
class VideoMAEv2AVACachedDetector(VideoMAEv2AVADetector):
    """The RoI head of :class:`VideoMAEv2AVADetector` on stored feature maps, without a backbone (a frozen backbone
    evaluated from a ``featmap`` store, docs/ava.md#from-cached-feature-maps).

    Inputs are per-keyframe maps (C, H'_i, W'_i), the detector's ``forward_featmap`` after the mean over T'
    (:class:`~tasks.detection.dataset.VideoMAEv2AVAFeatmapDataset`), in any stored dtype. RoIAlign runs on each map
    alone, so maps of different sizes need no padding and every keyframe gets the numbers of a batch of one clip on
    line. ``loss`` / ``predict`` and the checkpoint names (``roi_head.*``) are the detector's, so a trained detector's
    checkpoint loads here (its ``backbone.*`` is then unused) and this model's outputs go to the same metric.

    Args:
        in_channels: C of the stored maps (the backbone's width).
        patch_size: the backbone's patch size, the input pixels per map cell (RoIAlign's spatial scale 1 / p).
        roi_head: keyword arguments of :class:`VideoMAEv2RoIHead` except ``in_channels`` and ``spatial_scale``.
        data_preprocessor: mmengine's plain one by default (moves the maps to the device).
        init_cfg: unused.
    """

    def __init__(self, in_channels: int, patch_size: int, roi_head: dict,
                 data_preprocessor: dict | nn.Module | None = None, init_cfg: dict | None = None):
        # BaseModel's constructor, not the detector's: there is no backbone to build
        BaseModel.__init__(self, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if dict(roi_head).get('temporal_pool', 'avg') != 'avg':
            raise ValueError("stored maps are averaged over T'; roi_head.temporal_pool must be 'avg'")
        self.patch_size = int(patch_size)
        self.roi_head = build_roi_head(roi_head, in_channels, self.patch_size, 'in_channels / patch_size')

    def logits(self, inputs: Sequence[torch.Tensor], data_samples: Sequence[dict]) -> torch.Tensor:
        """Per-keyframe maps (C, H', W') and their samples' ``boxes`` (pixels) -> (K, num_classes) float32 logits."""
        if len(inputs) != len(data_samples):
            raise ValueError(f'{len(inputs)} maps for {len(data_samples)} samples')
        feats = []
        for featmap, sample in zip(inputs, data_samples):
            if featmap.ndim != 3 or featmap.shape[0] != self.roi_head.in_channels:
                raise ValueError(f'{sample.get("video_id")} @ {sample.get("timestamp")}: expected a stored map '
                                 f'({self.roi_head.in_channels}, H\', W\'), got {tuple(featmap.shape)}')
            boxes = sample['boxes'].to(device=featmap.device, dtype=torch.float32)
            feats.append(self.roi_head.align(featmap[None], boxes_to_rois([boxes])))
        return self.roi_head.classify(torch.cat(feats)).float()
