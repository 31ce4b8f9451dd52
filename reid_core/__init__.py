"""reid_core: the motion-aware transformer for occluded person re-ID and everything to run it.

reid_core never imports `trainer` or `stream`; both of them import it.

The names below load on first use (PEP 562): a light submodule such as `reid_core.config`,
which camera-stage processes read configs with, must not pull in torch (~700 MB, 2.5 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reid_core import zoo  # shipped models: reid_core.zoo.load_shipped()
    from reid_core.checkpoint import load, save
    from reid_core.distance import global_distance, occlusion_aware_distance
    from reid_core.features import ReIDFeatures
    from reid_core.model import build_model

_HOMES = {
    "ReIDFeatures": "reid_core.features",
    "build_model": "reid_core.model",
    "global_distance": "reid_core.distance",
    "occlusion_aware_distance": "reid_core.distance",
    "load": "reid_core.checkpoint",
    "save": "reid_core.checkpoint",
    "zoo": "reid_core.zoo",
}

__all__ = [
    "ReIDFeatures",
    "build_model",
    "global_distance",
    "load",
    "occlusion_aware_distance",
    "save",
    "zoo",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'reid_core' has no attribute {name!r}")
    module = importlib.import_module(home)
    value = module if name == "zoo" else getattr(module, name)
    globals()[name] = value
    return value
