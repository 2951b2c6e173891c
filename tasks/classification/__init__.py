"""Video classification (K400/600/700/710, SSv2): metrics and the layer-decay optimiser (REFERENCE 1.4, 4.2).

Importing this package registers ``VideoMAEv2LayerDecayConstructor`` in mmengine's ``OPTIM_WRAPPER_CONSTRUCTORS``
(when mmengine is installed), so configs can load it with ``custom_imports=dict(imports=['tasks.classification'])``.
"""
from .layer_decay import (HAS_MMENGINE, VideoMAEv2LayerDecayConstructor, get_layer_id, param_groups_layer_decay,
                          register_with_mmengine)
from .metrics import confusion_matrix, mean_class_accuracy, merge_views, softmax, topk_accuracy

register_with_mmengine()

# Fine-tuning (mmengine registries): VideoMAEv2ClsDataset (DATASETS), videomaev2_cls_collate (FUNCTIONS),
# VideoMAEv2Classifier and VideoMAEv2ClsPreprocessor (MODELS). Imported after the light modules above.
from .dataset import (ClsRecord, VideoMAEv2ClsDataset, label_map_between, read_class_names,  # noqa: E402
                      read_cls_list, read_label_map_json, remap_labels, videomaev2_cls_collate, write_label_map_json)
from .model import (VideoMAEv2Classifier, VideoMAEv2ClsPreprocessor, distillation_kl,  # noqa: E402
                    soft_target_cross_entropy)
from .transforms import (ClsTrainAugmentation, VideoMixup, VideoRandAugment, apply_random_erasing,  # noqa: E402
                         multi_view_test, random_erasing_boxes)

__all__ = [
    'HAS_MMENGINE', 'VideoMAEv2LayerDecayConstructor', 'confusion_matrix', 'get_layer_id', 'mean_class_accuracy',
    'merge_views', 'param_groups_layer_decay', 'register_with_mmengine', 'softmax', 'topk_accuracy',
]
__all__ += [
    'ClsRecord', 'ClsTrainAugmentation', 'VideoMAEv2ClsDataset', 'VideoMAEv2ClsPreprocessor', 'VideoMAEv2Classifier',
    'VideoMixup', 'VideoRandAugment', 'apply_random_erasing', 'distillation_kl', 'label_map_between',
    'multi_view_test', 'random_erasing_boxes', 'read_class_names', 'read_cls_list', 'read_label_map_json',
    'remap_labels', 'soft_target_cross_entropy', 'videomaev2_cls_collate', 'write_label_map_json',
]
