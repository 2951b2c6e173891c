"""Video classification (K400/600/700/710, SSv2): metrics and the layer-decay optimiser (REFERENCE 1.4, 4.2).

Importing this package registers ``VideoMAEv2LayerDecayConstructor`` in mmengine's ``OPTIM_WRAPPER_CONSTRUCTORS``
(when mmengine is installed), so configs can load it with ``custom_imports=dict(imports=['tasks.classification'])``.
"""
from .layer_decay import (HAS_MMENGINE, VideoMAEv2LayerDecayConstructor, get_layer_id, param_groups_layer_decay,
                          register_with_mmengine)
from .metrics import confusion_matrix, mean_class_accuracy, merge_views, softmax, topk_accuracy

register_with_mmengine()

__all__ = [
    'HAS_MMENGINE', 'VideoMAEv2LayerDecayConstructor', 'confusion_matrix', 'get_layer_id', 'mean_class_accuracy',
    'merge_views', 'param_groups_layer_decay', 'register_with_mmengine', 'softmax', 'topk_accuracy',
]
