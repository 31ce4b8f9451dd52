"""Training augmentation and test preprocessing for re-ID crops, joints included (SPEC §2).

Train: resize to 256×128, random horizontal flip (p 0.5), 10-px zero pad + random crop back to
256×128, ImageNet normalisation, random erasing (p 0.5, as torchreid / fast-reid) — the paper's
recipe, every number a `TransformConfig` value; optionally (``low_res_prob``, off in the paper's
recipe) a lower resolution first, for far-away people. Test: resize + normalise.

Joints travel with the image: they enter as [J, 3] (x, y, visible) in pixels of the source image
and leave in [-1, 1] coordinates of the transformed image (x = 2·u/W − 1 with u the continuous
pixel coordinate, 0 at the left edge and W at the right: ``grid_sample(align_corners=False)``).
A flip mirrors x and swaps left/right joints (the mirrored person's left wrist is the original
right wrist); a joint the crop pushes out of the image is marked not visible. Random erasing
leaves joints as they are.

A part label map (H×W uint8 `reid_core.parts.BODY_PARTS` labels in the source image's pixels)
travels the same way when given: nearest-neighbour resize (pixel centres aligned as the image's
bilinear resize aligns them), mirrored and relabelled with `FLIP_BODY_PARTS` on a flip (the same
rule as joints), zero-padded (0 = background) and cropped with the image's offsets, and set to 0
where random erasing blanks the image (those body pixels are no longer visible). It leaves as a
[H, W] uint8 tensor, pixel for pixel aligned with the image tensor.

Randomness comes from torch's generator, which DataLoader seeds per worker.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import overload

import cv2
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator
from torchvision.transforms import RandomErasing
from torchvision.transforms.functional import erase

from reid_core.parts import BODY_PARTS, FLIP_BODY_PARTS
from reid_core.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, INPUT_SIZE

# The model's own preprocessing constants (one definition, in reid_core), as config defaults.
DEFAULT_MEAN = tuple(float(v) for v in IMAGENET_MEAN)
DEFAULT_STD = tuple(float(v) for v in IMAGENET_STD)


class TransformConfig(BaseModel):
    """Augmentation settings; defaults are the paper's training recipe (SPEC §2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    height: PositiveInt = INPUT_SIZE[0]
    width: PositiveInt = INPUT_SIZE[1]
    flip_prob: float = Field(0.5, ge=0.0, le=1.0)
    pad: NonNegativeInt = 10
    erasing_prob: float = Field(0.5, ge=0.0, le=1.0)
    # torchreid's RandomErasing: area 2–40 % of the image, aspect ratio 0.3 … 1/0.3.
    erasing_scale: tuple[float, float] = (0.02, 0.4)
    erasing_ratio: tuple[float, float] = (0.3, 3.33)
    mean: tuple[float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float] = DEFAULT_STD
    low_res_prob: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="chance that a training crop is shrunk to a random height in "
        "low_res_heights (aspect kept) and enlarged back: a far-away person reaches the model "
        "as a few dozen pixels enlarged (the demo scene's far camera: 42 px median). 0: the "
        "paper's recipe",
    )
    low_res_heights: tuple[int, int] = (24, 64)

    @model_validator(mode="after")
    def _check_ranges(self) -> TransformConfig:
        low, high = self.low_res_heights
        if not 4 <= low <= high:
            raise ValueError(
                f"low_res_heights must be (low, high) with 4 <= low <= high, got {(low, high)}"
            )
        for name in ("erasing_scale", "erasing_ratio"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(
                    f"{name} must be (low, high) with 0 < low <= high, got {(low, high)}"
                )
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {self.std}")
        return self


def flip_permutation(joint_names: Sequence[str]) -> list[int]:
    """Index map that relabels joints after a horizontal flip: left_x ↔ right_x, others stay."""
    index = {name: i for i, name in enumerate(joint_names)}
    permutation = []
    for name in joint_names:
        partner = re.sub(r"(left|right)", lambda m: "right" if m[1] == "left" else "left", name)
        if partner not in index:
            raise ValueError(
                f"joint {name!r} has no mirror joint {partner!r} in {list(joint_names)}"
            )
        permutation.append(index[partner])
    return permutation


class ReIDTransform:
    """Image (H×W×3 RGB uint8), optional joints and optional part label map → normalised
    [3, H, W] tensor, joints and map.

    Returns ``(image, joints)`` (joints None when none were given) or, when a ``part_map`` is
    given, ``(image, joints, part_map)``. ``train`` switches on flip, pad + crop and erasing.
    ``joint_names`` is needed only when a training transform receives joints (to swap left and
    right on a flip).
    """

    def __init__(
        self, config: TransformConfig, train: bool, joint_names: Sequence[str] | None = None
    ) -> None:
        self.config = config
        self.train = train
        self.joint_names = tuple(joint_names) if joint_names is not None else None
        self._flip = flip_permutation(joint_names) if joint_names is not None else None
        self._mean = torch.tensor(config.mean).view(3, 1, 1)
        self._std = torch.tensor(config.std).view(3, 1, 1)

    @overload
    def __call__(
        self, image: np.ndarray, joints: np.ndarray | None = None, part_map: None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]: ...

    @overload
    def __call__(
        self, image: np.ndarray, joints: np.ndarray | None, part_map: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]: ...

    @overload
    def __call__(
        self, image: np.ndarray, *, part_map: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]: ...

    def __call__(
        self,
        image: np.ndarray,
        joints: np.ndarray | None = None,
        part_map: np.ndarray | None = None,
    ) -> (
        tuple[torch.Tensor, torch.Tensor | None]
        | tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]
    ):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an H×W×3 uint8 RGB image, got {image.dtype} {image.shape}")
        if part_map is not None:
            _check_part_map(part_map, image.shape[:2])
        height, width = self.config.height, self.config.width
        points = None if joints is None else np.array(joints, dtype=np.float32).reshape(-1, 3)
        if points is not None:
            points[:, 0] *= width / image.shape[1]
            points[:, 1] *= height / image.shape[0]
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        if part_map is not None:
            # NEAREST_EXACT samples the source pixel under each output pixel's centre, the
            # same centre alignment as the bilinear resize (plain NEAREST is off by half a pixel)
            part_map = cv2.resize(part_map, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
        if self.train:
            image = self._lower_resolution(image)
            image, points, part_map = self._flip_and_crop(image, points, part_map)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
        tensor = (tensor - self._mean) / self._std
        labels = None if part_map is None else torch.from_numpy(np.ascontiguousarray(part_map))
        if self.train:
            # After normalisation, so the erased patch is 0 = the mean colour (as torchreid fills).
            tensor = self._random_erase(tensor, labels)
        joints_out = None if points is None else self._normalise_joints(points)
        if labels is None:
            return tensor, joints_out
        return tensor, joints_out, labels

    def _lower_resolution(self, image: np.ndarray) -> np.ndarray:
        """With ``low_res_prob``: the same view as seen from further away (shrunk to a random
        height, enlarged back as the embedder enlarges a small crop); geometry unchanged."""
        config = self.config
        if not torch.rand(()).item() < config.low_res_prob:
            return image
        low, high = config.low_res_heights
        height, width = image.shape[:2]
        small_height = min(int(torch.randint(low, high + 1, ()).item()), height)
        small_width = max(1, round(width * small_height / height))
        small = cv2.resize(image, (small_width, small_height), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)

    def _flip_and_crop(
        self, image: np.ndarray, points: np.ndarray | None, part_map: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        height, width = self.config.height, self.config.width
        if torch.rand(()).item() < self.config.flip_prob:
            image = image[:, ::-1]
            if points is not None:
                if self._flip is None:
                    raise ValueError("joints given without joint_names: cannot swap left/right")
                points[:, 0] = width - points[:, 0]
                points = points[self._flip]
            if part_map is not None:
                part_map = FLIP_BODY_PARTS[part_map[:, ::-1]]
        pad = self.config.pad
        if pad:
            padded = np.zeros((height + 2 * pad, width + 2 * pad, 3), dtype=np.uint8)
            padded[pad : pad + height, pad : pad + width] = image
            top, left = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
            image = padded[top : top + height, left : left + width]
            if points is not None:
                points[:, 0] += pad - left
                points[:, 1] += pad - top
            if part_map is not None:
                padded_map = np.zeros((height + 2 * pad, width + 2 * pad), dtype=np.uint8)
                padded_map[pad : pad + height, pad : pad + width] = part_map
                part_map = padded_map[top : top + height, left : left + width]
        return image, points, part_map

    def _random_erase(self, tensor: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """torchvision's `RandomErasing` (value 0, same draws in the same order), and the same
        rectangle set to background in ``labels`` (in place)."""
        config = self.config
        if not torch.rand(1) < config.erasing_prob:
            return tensor
        top, left, h, w, value = RandomErasing.get_params(
            tensor, scale=config.erasing_scale, ratio=config.erasing_ratio, value=[0.0]
        )
        if (h, w) == tuple(tensor.shape[-2:]):
            return tensor  # no rectangle fitted in 10 tries: RandomErasing leaves the image
        if labels is not None:
            labels[top : top + h, left : left + w] = 0
        return erase(tensor, top, left, h, w, value)

    def _normalise_joints(self, points: np.ndarray) -> torch.Tensor:
        height, width = self.config.height, self.config.width
        normalised = torch.from_numpy(points.copy())
        normalised[:, 0] = 2.0 * normalised[:, 0] / width - 1.0
        normalised[:, 1] = 2.0 * normalised[:, 1] / height - 1.0
        inside = (normalised[:, :2].abs() <= 1.0).all(dim=1)
        normalised[:, 2] = (normalised[:, 2] > 0) & inside
        return normalised


def _check_part_map(part_map: np.ndarray, shape: tuple[int, int]) -> None:
    if part_map.ndim != 2 or part_map.dtype != np.uint8 or part_map.shape != shape:
        raise ValueError(
            f"expected an H×W uint8 part label map of the image's size {shape}, got "
            f"{part_map.dtype} {part_map.shape}"
        )
    if part_map.size and int(part_map.max()) >= len(BODY_PARTS):
        raise ValueError(
            f"part label map holds label {int(part_map.max())}; body-part labels are "
            f"0..{len(BODY_PARTS) - 1} (reid_core.parts.BODY_PARTS)"
        )


def build_transforms(
    config: TransformConfig | None = None, joint_names: Sequence[str] | None = None
) -> tuple[ReIDTransform, ReIDTransform]:
    """(train, test) transforms from one config, so both resize to the same size."""
    config = config or TransformConfig()
    return ReIDTransform(config, True, joint_names), ReIDTransform(config, False, joint_names)
