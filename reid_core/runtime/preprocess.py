"""The ONE crop preprocessing every runtime shares (SPEC §2 input): BGR uint8 crops → resized
to 256×128, RGB, ImageNet mean/std, as an [B, 3, H, W] float tensor."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

INPUT_SIZE = (256, 128)  # (height, width)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def preprocess_crops(
    crops: Sequence[np.ndarray], size: tuple[int, int] = INPUT_SIZE
) -> torch.Tensor:
    """List of BGR uint8 [h, w, 3] crops (OpenCV's layout) → normalised [B, 3, H, W] float32.

    Resizing is bilinear (cv2.INTER_LINEAR) straight to H×W, as the training transforms do.
    """
    height, width = size
    batch = np.empty((len(crops), height, width, 3), dtype=np.float32)
    for index, crop in enumerate(crops):
        if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8:
            raise ValueError(
                f"crop {index}: expected a uint8 numpy array, got "
                f"{type(crop).__name__} {getattr(crop, 'dtype', '')}"
            )
        if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] == 0 or crop.shape[1] == 0:
            raise ValueError(f"crop {index}: expected a BGR image [h, w, 3], got {crop.shape}")
        resized = cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)
        batch[index] = resized[:, :, ::-1]
    batch = (batch / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
