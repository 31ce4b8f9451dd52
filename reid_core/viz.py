"""Pictures of what the model sees (like the paper's Figs. 1 and 3): one row per crop with
  crop + keypoints (one colour per part) | part segmentation (argmax, background dark) | blend.
Drawn with OpenCV into one BGR image; no display needed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from reid_core.features import ReIDFeatures

PANEL_SIZE = (256, 128)  # (height, width) of each panel, the model's input size
HEADER = 22
BACKGROUND_BGR = (40, 40, 40)
PANEL_TITLES = ("keypoints", "parts", "overlay")


def part_colours(num_parts: int) -> np.ndarray:
    """[K, 3] BGR uint8: K hues evenly spaced around the colour wheel (part k ↔ keypoint k)."""
    hues = (np.arange(num_parts) * 180 / max(num_parts, 1)).astype(np.uint8)
    hsv = np.stack([hues, np.full_like(hues, 220), np.full_like(hues, 255)], -1)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2BGR)[0]


def _part_labels(segmentation: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """[K+1, h, w] probabilities → [H, W] argmax labels, upsampled bilinearly first."""
    upsampled = F.interpolate(
        segmentation[None].float(), size=size, mode="bilinear", align_corners=False
    )
    return upsampled[0].argmax(0).cpu().numpy()


def _keypoint_pixels(keypoints: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """[-1, 1] cell-centre coordinates (grid_sample, align_corners=False) → pixel (x, y)."""
    height, width = size
    scale = torch.tensor([width, height], dtype=torch.float32)
    return ((keypoints.float().cpu() + 1) * scale / 2 - 0.5).numpy()


def draw_row(
    crop_bgr: np.ndarray, features: ReIDFeatures, visible_threshold: float = 0.5
) -> np.ndarray:
    """The three panels for one crop (``features`` of batch size 1) side by side."""
    height, width = PANEL_SIZE
    crop = cv2.resize(crop_bgr, (width, height), interpolation=cv2.INTER_LINEAR)
    colours = part_colours(features.num_parts)
    palette = np.vstack([np.array([BACKGROUND_BGR], dtype=np.uint8), colours])
    labels = _part_labels(features.segmentation[0], PANEL_SIZE)
    parts = palette[labels]
    foreground = (labels > 0)[..., None]
    overlay = np.where(foreground, cv2.addWeighted(crop, 0.45, parts, 0.55, 0), crop // 2)
    with_points = crop.copy()
    points = _keypoint_pixels(features.keypoints[0], PANEL_SIZE)
    visibility = features.visibility[0].float().cpu().numpy()
    for k, (x, y) in enumerate(points):
        centre = (round(float(x)), round(float(y)))
        colour = tuple(int(c) for c in colours[k])
        cv2.circle(with_points, centre, 5, (0, 0, 0), -1, cv2.LINE_AA)
        filled = -1 if visibility[k] >= visible_threshold else 2  # hollow = hidden part
        cv2.circle(with_points, centre, 4, colour, filled, cv2.LINE_AA)
    return np.hstack([with_points, parts, overlay])


def draw_parts(
    crops_bgr: Sequence[np.ndarray],
    features: ReIDFeatures,
    out_path: str | Path | None = None,
    visible_threshold: float = 0.5,
) -> np.ndarray:
    """One row per crop (see module doc) under a title header; written as PNG if ``out_path``.

    Returns the BGR image of size (HEADER + B·256) × (3·128).
    """
    if len(crops_bgr) != len(features):
        raise ValueError(f"{len(crops_bgr)} crops but features for {len(features)}")
    if not crops_bgr:
        raise ValueError("draw_parts needs at least one crop")
    features = features.detach().cpu()
    rows = [draw_row(crop, features[i], visible_threshold) for i, crop in enumerate(crops_bgr)]
    header = np.full((HEADER, rows[0].shape[1], 3), 255, dtype=np.uint8)
    for index, title in enumerate(PANEL_TITLES):
        origin = (index * PANEL_SIZE[1] + 6, HEADER - 7)
        cv2.putText(header, title, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    image = np.vstack([header, *rows])
    if out_path is not None:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out_path), image):
            raise OSError(f"could not write the picture to {out_path}")
    return image
