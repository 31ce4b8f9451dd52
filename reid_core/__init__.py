"""reid_core: the motion-aware transformer for occluded person re-ID and everything to run it.

reid_core never imports `trainer` or `stream`; both of them import it.
"""

from reid_core import zoo  # shipped models: reid_core.zoo.load_shipped()
from reid_core.checkpoint import load, save
from reid_core.distance import global_distance, occlusion_aware_distance
from reid_core.features import ReIDFeatures
from reid_core.model import build_model

__all__ = [
    "ReIDFeatures",
    "build_model",
    "global_distance",
    "load",
    "occlusion_aware_distance",
    "save",
    "zoo",
]
