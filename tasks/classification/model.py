"""mmengine glue for fine-tuning: the data preprocessor (normalisation, random erasing, Mixup/CutMix) and the classifier
(loss, multi-view prediction, checkpoint loading with K710 head slicing, distillation).

The head is the backbone's own (official layout, docs/backbone.md#pooling-head-and-initialisation), so official
fine-tuned checkpoints load into ``backbone`` unchanged, and checkpoints of this model hold ``backbone.*``, which
:func:`backbone.load_checkpoint` reads back (docs/checkpoints.md#k710-heads-and-safe-loading).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.registry import MODELS

from backbone import CheckpointError, VideoMAEv2ViT, filter_checkpoint, load_checkpoint
from backbone.checkpoint_layouts import LabelMap
from tasks.data.video.transforms import IMAGENET_MEAN, IMAGENET_STD

from .transforms import VideoMixup, apply_random_erasing

__all__ = ['VideoMAEv2ClsPreprocessor', 'VideoMAEv2Classifier', 'soft_target_cross_entropy', 'distillation_kl']


def soft_target_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """timm's ``SoftTargetCrossEntropy``: mean over the batch of ``sum(-target * log_softmax(logits))``."""
    return torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


def distillation_kl(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton distillation: ``T^2 * KL(teacher || student)`` at temperature T, averaged over the batch.

    Args:
        student_logits: (N, K).
        teacher_probs: (N, K) ``softmax(teacher_logits / T)`` (possibly mixed like the inputs).
        temperature: T; the T^2 factor keeps the gradient scale independent of T.
    """
    log_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return F.kl_div(log_student, teacher_probs.float(), reduction='batchmean') * temperature ** 2


@MODELS.register_module()
class VideoMAEv2ClsPreprocessor(BaseDataPreprocessor):
    """Move a collated batch to the device, fold the views into the batch, normalise; in training also erase and mix.

    Args:
        mean: per-channel mean on the scale of the inputs (ImageNet on 0-255).
        std: per-channel std on that scale.
        num_classes: K, for the Mixup targets.
        mixup: ``VideoMixup`` arguments (official: ``dict(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5,
            label_smoothing=0.1)``), or None for no Mixup/CutMix (the model then uses label-smoothed CE).
        erase_mode: fill of the random-erasing boxes (official ``--remode pixel``).
        non_blocking: asynchronous host-to-device copies.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 num_classes: int | None = None, mixup: dict | None = None,
                 erase_mode: Literal['pixel', 'rand', 'const'] = 'pixel', non_blocking: bool = True):
        super().__init__(non_blocking)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f'mean and std need 3 values (RGB), got {mean} and {std}')
        if mixup is not None and num_classes is None:
            raise ValueError('VideoMAEv2ClsPreprocessor: mixup needs num_classes')
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1, 1), persistent=False)
        self.mixup = VideoMixup(num_classes, **mixup) if mixup is not None else None
        self.erase_mode = erase_mode

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        """
        Args:
            data: ``inputs`` uint8 (B, V, 3, T, H, W) or (B, 3, T, H, W); ``data_samples`` as collated by
                :func:`~tasks.classification.dataset.videomaev2_cls_collate` (``label`` (B,) at least).

        Returns:
            ``inputs`` float32 (B*V, 3, T, H, W); ``data_samples`` with ``num_views`` = V and, in training,
            ``clip_label`` (B*V,), ``soft_target`` (B*V, K) after Mixup and ``mix_lam`` (float or (B*V, 1)).
        """
        # The erasing boxes stay on the host: apply_random_erasing reads them as Python ints, and a GPU copy would
        # come straight back with a sync.
        data = dict(data, data_samples=dict(data.get('data_samples') or {}))
        erase_boxes = data['data_samples'].pop('erase_boxes', None)
        data = self.cast_data(data)
        inputs, samples = data['inputs'], dict(data.get('data_samples') or {})
        if erase_boxes is not None:
            samples['erase_boxes'] = erase_boxes
        if inputs.ndim == 5:
            inputs = inputs[:, None]
        if inputs.ndim != 6 or inputs.shape[2] != 3:
            raise ValueError(f'expected inputs (B, V, 3, T, H, W) or (B, 3, T, H, W), got {tuple(inputs.shape)}')
        if 'label' not in samples:
            raise KeyError(f'data_samples has no "label" (keys: {sorted(samples)})')
        num_views = inputs.shape[1]
        x = (inputs.flatten(0, 1).float() - self.mean) / self.std
        samples['num_views'] = num_views
        if training:
            labels = samples['label'].long().repeat_interleave(num_views)
            samples['clip_label'] = labels
            boxes = samples.get('erase_boxes')
            if boxes is not None and boxes.numel():
                apply_random_erasing(x, boxes.flatten(0, 1), self.erase_mode)
            if self.mixup is not None:
                x, target, lam = self.mixup(x, labels, return_lam=True)
                samples['soft_target'], samples['mix_lam'] = target, lam
        return dict(inputs=x, data_samples=samples)


@MODELS.register_module()
class VideoMAEv2Classifier(BaseModel):
    """VideoMAE V2 ViT fine-tuned for classification (mmengine ``BaseModel``).

    A training step (ViT-B Kinetics recipe, per GPU)::

        collate: inputs uint8 (16, 2, 3, 16, 224, 224), erase_boxes (16, 2, 1, 4)    16 videos x 2 RA views
          -> VideoMAEv2ClsPreprocessor: views folded into the batch, ImageNet normalisation, cube random erasing,
             Mixup/CutMix (timm, per batch)  -> inputs float (32, 3, 16, 224, 224), soft targets (32, K)
          -> loss: backbone (ViT + fc_norm + dropout + head) -> logits (32, K)
             -> SoftTargetCrossEntropy  (+ distillation KL at temperature T against a teacher)

    and a test step (Kinetics 5 clips x 3 crops)::

        inputs uint8 (B, 15, 3, 16, 224, 224) -> (B*15, ...) -> logits -> softmax per view -> mean over the 15 views
          -> one dict per video: pred_score (K,), gt_label, video_id, index, valid   (what VideoClsMetric reads)

    Args:
        backbone: :class:`backbone.VideoMAEv2ViT` arguments, e.g. ``dict(arch='vit_base', num_classes=400,
            drop_path_rate=0.1, head_drop_rate=0.0, init_scale=0.001, with_cp=False)``; ``num_classes`` must be > 0.
        label_smoothing: smoothing of the cross-entropy used when the batch carries no Mixup targets (official
            ``--smoothing 0.1``; timm ``LabelSmoothingCrossEntropy``).
        pretrained: checkpoint loaded into the backbone by :meth:`init_weights` (start of training), in any layout
            :func:`backbone.load_checkpoint` reads: official pre-trained / fine-tuned files, our pre-training or
            fine-tuning checkpoints, mmaction2 or Hugging Face files. Strict: anything but the documented fresh or
            dropped keys is an error.
        label_map: K710 -> K400/600/700 head slicing (a list of source-class indices, or a json file holding it, e.g.
            the official ``label_710to400.json``), applied when a loaded checkpoint's head has a different number
            of classes than the model; by ``pretrained`` and by mmengine's ``load_from`` alike.
        reset_head: drop the head of the ``pretrained`` checkpoint and start a fresh one (a fine-tuned model moved to
            another label space with no label map, e.g. K710 -> UCF101); ``fc_norm`` is still loaded.
        distill: knowledge distillation (V2 paper: KL on the logits, temperature 3), a dict with ``temperature``
            (3.0), ``alpha`` (weight of the KL term, default 1.0; the label loss gets ``1 - alpha``) and either
            ``teacher`` (backbone arguments plus ``checkpoint``, optional ``label_map`` and ``dtype``, ``'float32'``
            or ``'bfloat16'`` for the teacher's weights: the teacher runs on-line on the same augmented, mixed
            clips, in eval mode) or ``teacher_logits_store`` (a feature store of
            per-video teacher logits, rows averaged, mixed with the same Mixup weights as the clips).
        views_per_forward: at test time, forward at most this many views at once (memory bound); None = all.
        data_preprocessor: preprocessor config (default :class:`VideoMAEv2ClsPreprocessor` without Mixup).
        init_cfg: mmengine init config (unused; fresh weights follow the official init).
    """

    def __init__(self, backbone: dict, label_smoothing: float = 0.1, pretrained: str | None = None,
                 label_map: LabelMap | None = None, reset_head: bool = False, distill: dict | None = None,
                 views_per_forward: int | None = None, data_preprocessor: dict | nn.Module | None = None,
                 init_cfg: dict | None = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='VideoMAEv2ClsPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        backbone = dict(backbone)
        backbone.pop('type', None)
        if backbone.get('num_classes', 0) <= 0:
            raise ValueError(f'VideoMAEv2Classifier: backbone.num_classes must be > 0 (the head is the backbone\'s '
                             f'own), got {backbone.get("num_classes")}')
        self.backbone = VideoMAEv2ViT(**backbone)
        self.num_classes = self.backbone.num_classes
        mixup = getattr(self.data_preprocessor, 'mixup', None)
        if mixup is not None and mixup.num_classes != self.num_classes:
            raise ValueError(f'data_preprocessor mixes targets for {mixup.num_classes} classes, the head has '
                             f'{self.num_classes}')
        self.label_smoothing = label_smoothing
        self.pretrained = pretrained
        self.label_map = label_map
        self.reset_head = reset_head
        self.views_per_forward = views_per_forward
        self.distill = self._build_distill(distill)

    # --- distillation ----------------------------------------------------------------------------------------------
    def _build_distill(self, cfg: dict | None) -> dict | None:
        if cfg is None:
            return None
        cfg = dict(cfg)
        unknown = set(cfg) - {'teacher', 'teacher_logits_store', 'temperature', 'alpha'}
        if unknown or ('teacher' in cfg) == ('teacher_logits_store' in cfg):
            raise ValueError('distill takes exactly one of teacher / teacher_logits_store, plus temperature and '
                             f'alpha; got {sorted(cfg)}')
        out = dict(temperature=float(cfg.get('temperature', 3.0)), alpha=float(cfg.get('alpha', 1.0)))
        if not 0.0 <= out['alpha'] <= 1.0 or out['temperature'] <= 0:
            raise ValueError(f'distill needs alpha in [0, 1] and temperature > 0, got {out}')
        if 'teacher' in cfg:
            teacher_cfg = dict(cfg['teacher'])
            checkpoint = teacher_cfg.pop('checkpoint', None)
            label_map = teacher_cfg.pop('label_map', None)
            dtype = teacher_cfg.pop('dtype', 'float32')
            if dtype not in ('float32', 'bfloat16'):
                raise ValueError(f"distill.teacher.dtype must be 'float32' or 'bfloat16', got {dtype!r}")
            teacher_cfg.pop('type', None)
            teacher = VideoMAEv2ViT(**teacher_cfg)
            if checkpoint is None:
                raise ValueError('distill.teacher needs a checkpoint (a random teacher teaches nothing)')
            load_checkpoint(teacher, checkpoint, label_map=label_map)
            # bfloat16 halves the teacher's weights and forward activations (ViT-g: 3.8 -> 1.9 GiB per GPU);
            # README.md#gpu-memory-per-recipe
            teacher.to(getattr(torch, dtype)).eval().requires_grad_(False)
            # Held outside the module tree: the teacher is neither trained, nor saved in checkpoints (1B parameters
            # for ViT-g), nor seen by the optimiser, layer decay or DDP. It follows the inputs' device in forward.
            object.__setattr__(self, '_teacher', teacher)
        else:
            out['store'] = str(cfg['teacher_logits_store'])
            object.__setattr__(self, '_store', None)
        return out

    def _teacher_probs(self, inputs: torch.Tensor, samples: dict) -> torch.Tensor:
        """softmax(teacher logits / T) for the (mixed) clips: (N, K)."""
        temperature = self.distill['temperature']
        if 'store' not in self.distill:
            teacher = self._teacher
            if next(teacher.parameters()).device != inputs.device:
                teacher.to(inputs.device)
            with torch.no_grad():
                logits = teacher(inputs.to(next(teacher.parameters()).dtype)).float()
        else:
            logits = self._stored_logits(samples, inputs.device)
        if logits.shape[-1] != self.num_classes:
            raise ValueError(f'the teacher gives {logits.shape[-1]} classes, the student has {self.num_classes}; '
                             'give the teacher a label_map')
        probs = F.softmax(logits / temperature, dim=-1)
        if 'store' in self.distill and 'mix_lam' in samples:
            # Stored logits belong to the unmixed videos: mix them as timm mixes the targets (clip i with clip
            # N-1-i, weight lam), the same pairing for the 'batch', 'pair' and 'elem' modes.
            lam = samples['mix_lam']
            lam = lam if isinstance(lam, torch.Tensor) else torch.tensor(float(lam), device=probs.device)
            probs = probs * lam + probs.flip(0) * (1 - lam)
        return probs

    def _stored_logits(self, samples: dict, device: torch.device) -> torch.Tensor:
        from feature_store import FeatureStore

        if self._store is None:
            object.__setattr__(self, '_store', FeatureStore.open(self.distill['store']))
        rows = []
        for video_id in samples['video_id']:
            logits = self._store.read_features(video_id)  # (R, K): one row per stored view
            rows.append(torch.from_numpy(np.asarray(logits, dtype=np.float32)).mean(0))
        per_video = torch.stack(rows).to(device)
        return per_video.repeat_interleave(int(samples.get('num_views', 1)), dim=0)

    # --- forward ---------------------------------------------------------------------------------------------------
    def forward(self, inputs: torch.Tensor, data_samples: dict | None = None,
                mode: Literal['loss', 'predict', 'tensor'] = 'tensor') -> Any:
        """
        Args:
            inputs: normalised clips (N, 3, T, H, W), N = videos x views.
            data_samples: the preprocessor's dict (``label``, ``num_views``, ...).
            mode: ``'loss'`` -> dict of losses; ``'predict'`` -> one dict per video, failed ones included
                (:meth:`predict`); ``'tensor'`` -> logits (N, K).
        """
        if mode == 'tensor':
            return self.backbone(inputs)
        if data_samples is None:
            raise ValueError(f'mode={mode!r} needs data_samples with labels')
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    def loss(self, inputs: torch.Tensor, samples: dict) -> dict[str, torch.Tensor]:
        logits = self.backbone(inputs)
        labels = samples.get('clip_label')
        if labels is None:
            labels = samples['label'].long().repeat_interleave(int(samples.get('num_views', 1)))
        if 'soft_target' in samples:
            cls_loss = soft_target_cross_entropy(logits, samples['soft_target'])
        else:
            cls_loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        if self.distill is None:
            return dict(loss_cls=cls_loss)
        alpha = self.distill['alpha']
        kd = distillation_kl(logits, self._teacher_probs(inputs, samples), self.distill['temperature'])
        losses = dict(loss_kd=alpha * kd)
        if alpha < 1.0:
            losses['loss_cls'] = (1.0 - alpha) * cls_loss
        return losses

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, samples: dict) -> list[dict[str, Any]]:
        """One dict per video of the batch, also for a video that failed to decode.

        mmengine gathers the ranks' results by interleaving them and cutting the list at the dataset length, which
        drops the sampler's padding only when every rank returns exactly one result per sample; so a failed video
        gets an entry too (``valid=False``, ``pred_score=None``), which
        :class:`~tasks.classification.metric.VideoClsMetric` leaves out of the metrics and counts.

        Args:
            inputs: normalised clips (B*V, 3, T, H, W); V = ``samples['num_views']``, 0 when no video of the batch
                decoded.
            samples: ``label`` (B,) and optionally ``valid`` (B,), ``index`` (B,), ``video_id`` (B str),
                ``failure`` (B entries: the ``(path, reason)`` of a failed video, else None).

        Returns:
            Per video: ``pred_score`` (K,) float32 on the CPU (mean over the views of the per-view softmax) or None,
            ``gt_label``, ``video_id``, ``index``, ``valid``, and ``failure`` for a failed video.
        """
        labels, indices = samples['label'].cpu(), samples.get('index')
        indices = indices.tolist() if isinstance(indices, torch.Tensor) else indices
        num_videos, num_views = len(labels), int(samples.get('num_views', 1))
        if inputs.shape[0] != num_videos * num_views:
            raise ValueError(f'{inputs.shape[0]} clips do not split into {num_videos} videos of {num_views} views')
        valid = samples.get('valid')
        valid = [True] * num_videos if valid is None else [bool(v) for v in (
            valid.tolist() if isinstance(valid, torch.Tensor) else valid)]
        if not num_views and any(valid):
            raise ValueError(f'{sum(valid)} videos are marked valid but the batch has no views')
        keep = [i for i in range(num_videos) if valid[i]]
        scores = {}
        if keep:  # a failed video's views are zeros from the collate: not worth a forward
            clips = inputs.unflatten(0, (num_videos, num_views))
            clips = (clips if len(keep) == num_videos else clips[keep]).flatten(0, 1)
            step = self.views_per_forward or clips.shape[0]
            logits = torch.cat([self.backbone(clips[i:i + step]) for i in range(0, clips.shape[0], step)])
            # Official merge: softmax per view, then the mean over the views of a video
            # (docs/classification.md#test-protocols-and-metrics).
            merged = F.softmax(logits.float(), dim=-1).view(len(keep), num_views, -1).mean(dim=1).cpu()
            scores = dict(zip(keep, merged))
        video_ids, failures = samples.get('video_id'), samples.get('failure')
        out = []
        for i in range(num_videos):
            index = int(indices[i]) if indices is not None else i
            entry = dict(pred_score=scores.get(i), gt_label=labels[i],
                         video_id=video_ids[i] if video_ids is not None else str(index), index=index,
                         valid=i in scores)
            if not entry['valid']:
                entry['failure'] = tuple(failures[i]) if failures is not None and failures[i] else None
            out.append(entry)
        return out

    # --- checkpoints ---------------------------------------------------------------------------------------------
    def init_weights(self) -> None:
        """mmengine hook at the start of training: load ``pretrained`` into the backbone (fresh weights otherwise),
        through :func:`backbone.load_checkpoint`: its head sliced with ``label_map`` if its class count differs, or
        started fresh with ``reset_head``."""
        super().init_weights()
        if not self.pretrained:
            return
        result = load_checkpoint(self.backbone, self.pretrained, label_map=self.label_map,
                                 fresh=('head.',) if self.reset_head else ())
        sliced = f' (head sliced to {self.num_classes} classes)' if result.head_sliced else ''
        print_log(f'loaded {result.source} ({result.layout} layout) into the backbone{sliced}; fresh: '
                  f'{result.missing or "none"}; dropped: {result.unexpected or "none"}', logger='current')

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """``load_state_dict`` (so mmengine's ``load_from``) through the checkpoint filter in ``'exact'`` mode.

        A head of another size is sliced with ``label_map`` (a stage of the progressive chain loads the previous
        stage's 710-way checkpoint through ``load_from``). Any other difference raises
        :class:`~backbone.CheckpointError` naming the keys: mmengine's ``load_from`` would only warn and train or test
        partly random weights.
        """
        incoming = {k[len(prefix):]: state_dict.pop(k) for k in [k for k in state_dict if k.startswith(prefix)]}
        try:
            state, result = filter_checkpoint(incoming, self, label_map=self.label_map, mode='exact')
        except CheckpointError as err:
            raise CheckpointError(f'{type(self).__name__}.load_state_dict: {err}. A pre-training checkpoint goes in '
                                  'model.pretrained (its head starts fresh); a head of another size needs '
                                  'model.label_map.') from None
        state_dict.update({prefix + k: v for k, v in state.items()})
        if result.head_sliced:
            print_log(f'load_state_dict: sliced the head to {self.num_classes} classes with label_map',
                      logger='current')
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
