"""Pictures of what the model sees (like the paper's Figs. 1 and 3): one row per crop with
  crop + keypoints (one colour per part) | part segmentation (argmax, background dark) | blend,
and optionally, under the rows, a part-health panel (`reid_core.part_health` figures of the
shown crops: the SPEC §7 targets passed or failed, and bars of each part's share of the person
and spatial entropy). Drawn with OpenCV into one BGR image; no display needed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from reid_core.features import ReIDFeatures
from reid_core.part_health import TARGETS, check_targets

PANEL_SIZE = (256, 128)  # (height, width) of each panel by default (a 256×128 model's input)
HEADER = 22
PASS_BGR = (40, 140, 40)
FAIL_BGR = (30, 30, 210)
TEXT_BGR = (20, 20, 20)
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


def panel_size(input_size: Sequence[int], height: int = PANEL_SIZE[0]) -> tuple[int, int]:
    """(height, width) of a panel ``height`` pixels tall with a model input's aspect ratio."""
    input_height, input_width = input_size
    return height, max(1, round(height * input_width / input_height))


def draw_row(
    crop_bgr: np.ndarray,
    features: ReIDFeatures,
    visible_threshold: float = 0.5,
    size: tuple[int, int] = PANEL_SIZE,
) -> np.ndarray:
    """The three panels (each ``size`` = (height, width)) for one crop (``features`` of batch
    size 1) side by side."""
    height, width = size
    crop = cv2.resize(crop_bgr, (width, height), interpolation=cv2.INTER_LINEAR)
    colours = part_colours(features.num_parts)
    palette = np.vstack([np.array([BACKGROUND_BGR], dtype=np.uint8), colours])
    labels = _part_labels(features.segmentation[0], size)
    parts = palette[labels]
    foreground = (labels > 0)[..., None]
    overlay = np.where(foreground, cv2.addWeighted(crop, 0.45, parts, 0.55, 0), crop // 2)
    with_points = crop.copy()
    points = _keypoint_pixels(features.keypoints[0], size)
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
    size: tuple[int, int] = PANEL_SIZE,
    health: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """One row per crop (see module doc) under a title header, and the part-health panel of
    ``health`` (`reid_core.part_health.part_health` figures) under them when given and not
    empty; written as PNG if ``out_path``.

    Returns the BGR image of size (HEADER + B·height [+ panel]) × (3·width), (height, width) =
    ``size`` (`panel_size` gives one with a model input's aspect ratio).
    """
    if len(crops_bgr) != len(features):
        raise ValueError(f"{len(crops_bgr)} crops but features for {len(features)}")
    if not crops_bgr:
        raise ValueError("draw_parts needs at least one crop")
    features = features.detach().cpu()
    rows = [
        draw_row(crop, features[i], visible_threshold, size) for i, crop in enumerate(crops_bgr)
    ]
    header = np.full((HEADER, rows[0].shape[1], 3), 255, dtype=np.uint8)
    for index, title in enumerate(PANEL_TITLES):
        origin = (index * size[1] + 6, HEADER - 7)
        cv2.putText(header, title, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    blocks = [header, *rows]
    if health:
        blocks.append(draw_health_panel(health, rows[0].shape[1], len(crops_bgr)))
    image = np.vstack(blocks)
    if out_path is not None:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out_path), image):
            raise OSError(f"could not write the picture to {out_path}")
    return image


_TARGET_LABELS = {
    "largest_part_share": "largest part share",
    "background_fraction": "background fraction",
    "spatial_entropy_max": "spatial entropy, max",
    "part_miou": "part mIoU (body parts)",
}
_LINE = 16


def _text(image: np.ndarray, text: str, origin: tuple[int, int], colour=TEXT_BGR, scale=0.4):
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _bar_chart(
    image: np.ndarray,
    box: tuple[int, int, int, int],
    values: Sequence[float],
    colours: np.ndarray,
    title: str,
    top: float,
    limit: float | None,
) -> None:
    """Bars of ``values`` (0..``top``) in ``box`` = (x, y, width, height), one colour per part,
    a dashed red line at ``limit`` (named after the title) and the part numbers under the bars."""
    x0, y0, width, height = box
    _text(image, title, (x0, y0 + 11))
    if limit is not None:
        (title_width, _), _ = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        _text(image, f" <= {limit:g}", (x0 + title_width, y0 + 11), FAIL_BGR)
    plot_top, plot_bottom = y0 + 18, y0 + height - 14
    plot_height = plot_bottom - plot_top
    cv2.line(image, (x0, plot_bottom), (x0 + width, plot_bottom), (120, 120, 120), 1)
    slot = width / max(len(values), 1)
    for k, value in enumerate(values):
        left = round(x0 + k * slot + slot * 0.15)
        right = max(left + 1, round(x0 + (k + 1) * slot - slot * 0.15))
        bar_top = plot_bottom - round(min(max(value, 0.0), top) / top * plot_height)
        colour = tuple(int(c) for c in colours[k])
        cv2.rectangle(image, (left, bar_top), (right, plot_bottom), colour, -1)
        cv2.rectangle(image, (left, bar_top), (right, plot_bottom), (60, 60, 60), 1)
        if slot >= 12 or k % 2 == 0:
            _text(image, str(k + 1), (left, plot_bottom + 11), scale=0.3)
    if limit is not None:
        y = plot_bottom - round(limit / top * plot_height)
        for x in range(x0, x0 + width, 8):
            cv2.line(image, (x, y), (min(x + 4, x0 + width), y), FAIL_BGR, 1)


def draw_health_panel(
    figures: Mapping[str, Any], width: int, count: int | None = None
) -> np.ndarray:
    """A white BGR panel ``width`` pixels wide with part-health figures: each SPEC §7 target
    (value, target, PASS/FAIL), a few more figures, and bars of each part's share of the person
    and spatial entropy (target lines dashed)."""
    checks = check_targets(figures)
    targets = {target.figure: target for target in TARGETS}
    info = [
        f"mass entropy {figures['mass_entropy']:.2f}   "
        f"keypoint spread {figures['keypoint_spread']:.2f}",
        f"confidence {figures['confidence']:.2f}   visibility {figures['visibility_mean']:.2f}",
        f"cos part/global {figures['part_global_cosine']:.2f}"
        + (
            f"   part/part {figures['part_part_cosine']:.2f}"
            if "part_part_cosine" in figures
            else ""
        ),
    ]
    if "part_purity" in figures:
        info.append(
            f"purity {figures['part_purity']:.2f}   background IoU {figures['background_iou']:.2f}"
        )
    chart_height = 110
    height = 26 + _LINE * (len(checks) + len(info)) + 8 + chart_height
    panel = np.full((height, width, 3), 255, dtype=np.uint8)
    cv2.line(panel, (0, 0), (width, 0), (160, 160, 160), 1)
    title = "part health" + {None: "", 1: " of this crop"}.get(count, f" of these {count} crops")
    _text(panel, title, (6, 17), scale=0.5)
    y = 26 + 12
    for figure, passed in checks.items():
        target = targets[figure]
        _text(panel, _TARGET_LABELS.get(figure, figure), (6, y))
        _text(panel, f"{figures[figure]:.2f}", (round(width * 0.50), y))
        sign = "<=" if target.op == "<=" else ">="
        _text(panel, f"{sign} {target.threshold:.2f}", (round(width * 0.63), y))
        _text(
            panel,
            "PASS" if passed else "FAIL",
            (round(width * 0.84), y),
            PASS_BGR if passed else FAIL_BGR,
        )
        y += _LINE
    for line in info:
        _text(panel, line, (6, y))
        y += _LINE
    colours = part_colours(len(figures["part_share"]))
    half = (width - 18) // 2
    chart_top = y - 4
    share_top = max(0.5, float(max(figures["part_share"])))
    _bar_chart(
        panel,
        (6, chart_top, half, chart_height),
        figures["part_share"],
        colours,
        "share of the person",
        share_top,
        targets["largest_part_share"].threshold,
    )
    _bar_chart(
        panel,
        (12 + half, chart_top, half, chart_height),
        figures["spatial_entropy"],
        colours,
        "spatial entropy",
        1.0,
        targets["spatial_entropy_max"].threshold,
    )
    return panel
