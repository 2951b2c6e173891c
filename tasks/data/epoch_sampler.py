"""The data sampler of every training dataset in the suite: mmengine's ``DefaultSampler`` yielding ``(epoch, index)``.

A training sample is a pure function of ``(seed, epoch, index)`` (:func:`tasks.data.video.retry.sample_seeds`). The
epoch has to reach the dataset with each index, because an attribute set on the dataset in the main process does not
reach persistent data-loader workers; so the sampler hands it over in the key. Used by the pre-training,
classification, AVA and THUMOS datasets, which all accept such keys (and plain indices, as epoch 0).

Importing this module registers ``EpochIndexSampler`` in mmengine's root ``DATA_SAMPLERS`` (found with or without
``default_scope='mmaction'``), and under the alias ``VideoMAEv2PretrainSampler``, which configs may name too.
"""
from __future__ import annotations

from collections.abc import Iterator

from mmengine.dataset import DefaultSampler
from mmengine.registry import DATA_SAMPLERS

__all__ = ['EpochIndexSampler']


@DATA_SAMPLERS.register_module()
class EpochIndexSampler(DefaultSampler):
    """mmengine's ``DefaultSampler`` (same shuffling, sharding and padding across processes) yielding
    ``(epoch, index)`` keys, which the suite's datasets turn into per-sample seeds.

    ``DistSamplerSeedHook`` (in the default runtime) calls :meth:`set_epoch` before every epoch, resumed runs included.
    """

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = self.epoch
        return ((epoch, int(i)) for i in super().__iter__())


# the pre-training name, which configs may use as well
DATA_SAMPLERS.register_module(name='VideoMAEv2PretrainSampler', module=EpochIndexSampler)
