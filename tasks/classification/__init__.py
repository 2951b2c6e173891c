"""Video classification (K400/600/700/710, SSv2, UCF101, HMDB51): dataset, model, metric and evaluation arithmetic.

Importing this package registers, in mmengine's root registries: ``VideoMAEv2ClsDataset`` (DATASETS),
``videomaev2_cls_collate`` (FUNCTIONS), ``VideoMAEv2Classifier`` and ``VideoMAEv2ClsPreprocessor`` (MODELS), and,
through :mod:`tasks.engine`, the training wrappers and the layer-decay optimiser constructor its configs name.
"""
import tasks.data.epoch_sampler  # noqa: F401  (the (epoch, index) sampler its configs name)
import tasks.engine  # noqa: F401  (the training wrappers and layer decay its configs name)

from .dataset import (ClsRecord, VideoMAEv2ClsDataset, label_map_between, read_class_names, read_cls_list,
                      read_label_map_json, remap_labels, videomaev2_cls_collate, write_label_map_json)
from .evaluation import confusion_matrix, mean_class_accuracy, merge_views, softmax, topk_accuracy
from .model import VideoMAEv2Classifier, VideoMAEv2ClsPreprocessor, distillation_kl, soft_target_cross_entropy
from .transforms import (ClsTrainAugmentation, VideoMixup, VideoRandAugment, apply_random_erasing, multi_view_test,
                         random_erasing_boxes)

__all__ = [
    'ClsRecord', 'ClsTrainAugmentation', 'VideoMAEv2ClsDataset', 'VideoMAEv2ClsPreprocessor', 'VideoMAEv2Classifier',
    'VideoMixup', 'VideoRandAugment', 'apply_random_erasing', 'confusion_matrix', 'distillation_kl',
    'label_map_between', 'mean_class_accuracy', 'merge_views', 'multi_view_test', 'random_erasing_boxes',
    'read_class_names', 'read_cls_list', 'read_label_map_json', 'remap_labels', 'soft_target_cross_entropy',
    'softmax', 'topk_accuracy', 'videomaev2_cls_collate', 'write_label_map_json',
]
