"""Re-ID data for training and evaluation: data sets by name, the identity sampler, transforms.

    dataset = build_dataset("market1501", "/data/market")          # or "synthetic", ...
    train_tf, test_tf = build_transforms(TransformConfig(), dataset.joint_names)
    images = ImageDataset(dataset.train, train_tf, on_error="skip")
    sampler = RandomIdentityBatchSampler(images.pids, 16, 4, seed=0)  # rank/world from DDP
    loader = DataLoader(images, batch_sampler=sampler, num_workers=4)

Names resolve on first use (PEP 562), so `trainer data --help` and the data set registry do not
pay for importing torch, torchvision and OpenCV.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DatasetLayoutError": "trainer.data.base",
    "ImageRecord": "trainer.data.base",
    "ReIDDataset": "trainer.data.base",
    "ImageDataset": "trainer.data.image_dataset",
    "UnreadableImageError": "trainer.data.image_dataset",
    "read_rgb": "trainer.data.image_dataset",
    "KeypointFileError": "trainer.data.keypoints",
    "attach_keypoints": "trainer.data.keypoints",
    "DATASET_NAMES": "trainer.data.registry",
    "build_dataset": "trainer.data.registry",
    "dataset_options": "trainer.data.registry",
    "RandomIdentityBatchSampler": "trainer.data.sampler",
    "ReIDTransform": "trainer.data.transforms",
    "TransformConfig": "trainer.data.transforms",
    "build_transforms": "trainer.data.transforms",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'trainer.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
