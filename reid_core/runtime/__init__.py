"""Running a trained model: the shared crop preprocessing (and, beside it, the backends)."""

from reid_core.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, INPUT_SIZE, preprocess_crops

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "INPUT_SIZE", "preprocess_crops"]
