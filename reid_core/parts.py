"""Body-part vocabulary of per-pixel part label maps, and how it groups into the model's K parts.

A part label map (the synthetic renderer writes one per crop, SPEC §6) holds one of
``BODY_PARTS`` per pixel: 0 is background (anything that is not the person's visible pixels,
occluders included), the rest are the person's visible body parts, left and right as the person
sees them (a horizontal flip swaps them: ``FLIP_BODY_PARTS``).

The model's K+1 segmentation has no names, so supervising it or scoring it against a label map
needs a fixed grouping of body parts into model parts 1..K (``part_groups``). The groupings
follow what occluders hide and what re-ID needs to tell apart: K = 3 and 6 cut the body from
head to feet (a bottom occluder hides the lower groups, a pillar or passer-by any of them) and
do not split left from right, which the 8×4 grid of a 128×64 crop cannot resolve and a side
view does not show; K = 10 splits limbs into upper and lower and left and right (paper's K);
K = 14 (the renderer's 14 joints, ablation row #6) also separates neck, bag and feet.
"""

from __future__ import annotations

import numpy as np
import torch

BODY_PARTS = (
    "background",
    "head",
    "neck",
    "torso",
    "right_upper_arm",
    "right_lower_arm",
    "right_hand",
    "left_upper_arm",
    "left_lower_arm",
    "left_hand",
    "right_upper_leg",
    "right_lower_leg",
    "right_foot",
    "left_upper_leg",
    "left_lower_leg",
    "left_foot",
    "carried",
)
"""Label values 0..16 of a part label map (stored as uint8 PNG)."""

BODY_PART_INDEX = {name: index for index, name in enumerate(BODY_PARTS)}


def _mirror(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


FLIP_BODY_PARTS = np.array([BODY_PART_INDEX[_mirror(n)] for n in BODY_PARTS], np.uint8)
"""Lookup table: the label a pixel carries after a horizontal flip of the image."""

_GROUPS: dict[int, tuple[tuple[str, ...], ...]] = {
    3: (
        ("head", "neck"),
        (
            "torso",
            "carried",
            *(f"{s}_{p}" for s in ("right", "left") for p in ("upper_arm", "lower_arm", "hand")),
        ),
        tuple(f"{s}_{p}" for s in ("right", "left") for p in ("upper_leg", "lower_leg", "foot")),
    ),
    6: (
        ("head", "neck"),
        ("torso", "carried"),
        tuple(f"{s}_{p}" for s in ("right", "left") for p in ("upper_arm", "lower_arm", "hand")),
        ("right_upper_leg", "left_upper_leg"),
        ("right_lower_leg", "left_lower_leg"),
        ("right_foot", "left_foot"),
    ),
    10: (
        ("head", "neck"),
        ("torso", "carried"),
        ("right_upper_arm",),
        ("right_lower_arm", "right_hand"),
        ("left_upper_arm",),
        ("left_lower_arm", "left_hand"),
        ("right_upper_leg",),
        ("right_lower_leg", "right_foot"),
        ("left_upper_leg",),
        ("left_lower_leg", "left_foot"),
    ),
    14: (
        ("head",),
        ("neck",),
        ("torso",),
        ("carried",),
        ("right_upper_arm",),
        ("right_lower_arm", "right_hand"),
        ("left_upper_arm",),
        ("left_lower_arm", "left_hand"),
        ("right_upper_leg",),
        ("right_lower_leg",),
        ("right_foot",),
        ("left_upper_leg",),
        ("left_lower_leg",),
        ("left_foot",),
    ),
}
SUPPORTED_PART_COUNTS = tuple(sorted(_GROUPS))


def part_group_names(num_parts: int) -> list[str]:
    """A readable name per model part 1..K (its body parts joined by '+')."""
    return ["+".join(group) for group in _groups(num_parts)]


def _groups(num_parts: int) -> tuple[tuple[str, ...], ...]:
    if num_parts not in _GROUPS:
        raise ValueError(
            f"no body-part grouping for K = {num_parts} parts; part labels group into "
            f"K in {SUPPORTED_PART_COUNTS}"
        )
    return _GROUPS[num_parts]


def part_groups(num_parts: int) -> torch.Tensor:
    """Lookup table [len(BODY_PARTS)] body-part label → model part 0..K (0 = background)."""
    table = torch.zeros(len(BODY_PARTS), dtype=torch.long)
    for part, names in enumerate(_groups(num_parts), start=1):
        for name in names:
            table[BODY_PART_INDEX[name]] = part
    return table


def part_targets(label_maps: torch.Tensor, num_parts: int, grid: tuple[int, int]) -> torch.Tensor:
    """Soft K+1 targets on the model's h×w grid: the share of each cell's pixels that belong to
    each model part. label_maps [B, H, W] integer body-part labels → [B, K+1, h, w] (sums to 1
    over parts; H, W multiples of h, w)."""
    table = part_groups(num_parts).to(label_maps.device)
    one_hot = torch.nn.functional.one_hot(table[label_maps.long()], num_parts + 1)
    one_hot = one_hot.permute(0, 3, 1, 2).float()
    return torch.nn.functional.adaptive_avg_pool2d(one_hot, grid)
