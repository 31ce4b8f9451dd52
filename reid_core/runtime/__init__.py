"""Running a trained model: the shared crop preprocessing, the embedder interface and its
registry of runtimes (`torch`, `onnxruntime`: imported when asked for), and ONNX export."""

from reid_core.runtime.embedder import (
    MALLOC_ENV,
    RUNTIMES,
    Embedder,
    EmbedderConfig,
    ensure_malloc_env,
    runtime_class,
    runtime_for,
)
from reid_core.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, INPUT_SIZE, preprocess_crops

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INPUT_SIZE",
    "MALLOC_ENV",
    "RUNTIMES",
    "Embedder",
    "EmbedderConfig",
    "ensure_malloc_env",
    "preprocess_crops",
    "runtime_class",
    "runtime_for",
]
