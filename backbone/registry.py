"""Registration of our modules in mmaction2's registry (optional: the backbone works without mmaction2)."""
from __future__ import annotations

try:  # mmaction.registry is light: it does not import mmaction.models
    from mmaction.registry import MODELS as MMACTION_MODELS
    HAS_MMACTION = True
except ImportError:  # pragma: no cover - exercised only without mmaction2
    MMACTION_MODELS = None
    HAS_MMACTION = False


def register_with_mmaction() -> None:
    """Register the backbone under the unique name ``VideoMAEv2ViT`` (idempotent; no-op without mmaction2)."""
    if not HAS_MMACTION:
        return
    from .videomaev2 import VideoMAEv2ViT
    # module_dict, not .get(): get() imports mmaction.models, which is slow and not needed to register.
    if MMACTION_MODELS.module_dict.get('VideoMAEv2ViT') is not VideoMAEv2ViT:
        MMACTION_MODELS.register_module(name='VideoMAEv2ViT', module=VideoMAEv2ViT)
