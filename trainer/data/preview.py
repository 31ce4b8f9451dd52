"""A picture of what the model is fed: one batch after augmentation, joints drawn on it.

Rows are identities, columns their K images (the P×K layout of the sampler), so a person sees at
a glance that groups are consecutive, that flips swapped left and right joints (left joints
drawn in blue, right in red) and that erasing and cropping look right.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

LEFT_COLOUR = (255, 120, 0)  # BGR blue
RIGHT_COLOUR = (0, 0, 255)  # BGR red
CENTRE_COLOUR = (0, 220, 0)


def denormalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """[B, 3, H, W] normalised → [B, H, W, 3] uint8 BGR for drawing with OpenCV."""
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    rgb = ((images.detach().cpu().float() * std_t + mean_t).clamp(0, 1) * 255).round()
    return np.ascontiguousarray(rgb.byte().permute(0, 2, 3, 1).numpy()[..., ::-1])


def draw_joints(tile: np.ndarray, joints: np.ndarray, joint_names: Sequence[str]) -> None:
    """Joints in [-1, 1] coordinates: filled dot when visible, ring when hidden."""
    height, width = tile.shape[:2]
    for (x, y, visible), name in zip(joints, joint_names, strict=True):
        centre = (int(round((x + 1) / 2 * width)), int(round((y + 1) / 2 * height)))
        colour = (
            LEFT_COLOUR if "left" in name else RIGHT_COLOUR if "right" in name else CENTRE_COLOUR
        )
        cv2.circle(tile, centre, 3, colour, -1 if visible > 0 else 1, cv2.LINE_AA)


def save_batch_preview(
    batch: dict[str, torch.Tensor],
    path: Path | str,
    columns: int,
    mean: Sequence[float],
    std: Sequence[float],
    joint_names: Sequence[str] | None = None,
) -> Path:
    """Write a collated batch as a grid PNG (``columns`` tiles a row) labelled pid / camera."""
    tiles = denormalise(batch["image"], mean, std)
    for i, tile in enumerate(tiles):
        if joint_names is not None and "joints" in batch:
            draw_joints(tile, batch["joints"][i].numpy(), joint_names)
        label = f"{int(batch['pid'][i])} c{int(batch['camid'][i])}"
        cv2.putText(tile, label, (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3)
        cv2.putText(tile, label, (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    rows = -(-len(tiles) // columns)
    height, width = tiles.shape[1:3]
    sheet = np.full((rows * (height + 2), columns * (width + 2), 3), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        top, left = (i // columns) * (height + 2), (i % columns) * (width + 2)
        sheet[top : top + height, left : left + width] = tile
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet):
        raise OSError(f"could not write preview {path}")
    return path
