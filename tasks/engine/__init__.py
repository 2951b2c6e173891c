"""The mmengine glue every task shares: Runner helpers, training wrappers, layer-wise lr decay, training checkpoints.

Importing this package registers, in mmengine's root registries (which mmaction2's scoped ones fall back to):
``BF16AutocastOptimWrapper`` (OPTIM_WRAPPERS), ``DeviceAgnosticDDP`` (MODEL_WRAPPERS) and
``VideoMAEv2LayerDecayConstructor`` (OPTIM_WRAPPER_CONSTRUCTORS).
"""
from .checkpoint import load_trusted_checkpoint, mmengine_checkpoint_globals
from .layer_decay import VideoMAEv2LayerDecayConstructor, get_layer_id, param_groups_layer_decay
from .wrappers import BF16AutocastOptimWrapper, DeviceAgnosticDDP

__all__ = [
    'BF16AutocastOptimWrapper', 'DeviceAgnosticDDP', 'VideoMAEv2LayerDecayConstructor', 'get_layer_id',
    'load_trusted_checkpoint', 'mmengine_checkpoint_globals', 'param_groups_layer_decay',
]
