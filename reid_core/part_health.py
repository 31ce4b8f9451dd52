"""Part health: is the K+1 part segmentation still a segmentation? (SPEC §2 "Part health", §7).

The parts are the paper's point, so their state is measured on every evaluation: a segmentation
in which one part takes the whole person, the background vanishes, or every part spreads over
the whole crop has collapsed, and the part features are then copies of the global one (NOTES.md,
"What the parts do today"). `part_health` computes the figures of one set of model outputs;
`PartHealthAccumulator` gathers them batch by batch (evaluation sets have thousands of crops) and
gives the same numbers as one call on the concatenation.

Figures (a flat dict; names are stable; lists have one entry per learned part 1..K):

``background_fraction``
    mean of S_0 over images and cells (the crop's share that is background).
``part_share`` (list) / ``largest_part_share``
    Σ_{n,z} S_k / Σ_{n,z} Σ_{j≥1} S_j: each part's share of the foreground mass; its maximum.
``mass_entropy``
    entropy of ``part_share`` / log K (1 = even shares, 0 = one part takes everything; K = 1
    gives 1). A uniform mixture of all parts at every cell also gives 1: hence the next figure.
``spatial_entropy`` (list) / ``spatial_entropy_mean`` / ``spatial_entropy_max``
    per part, the entropy of S_k(z) / Σ_z S_k(z) over the h×w cells divided by log(h·w), averaged
    over the images in which the part has any mass (0 when it never has): 1 = spread evenly over
    the crop; a part on one of six body regions sits near 0.5.
``keypoint_spread``
    mean over images of the mean distance of the K keypoints from their centroid, in the
    model's normalised coordinates (x, y in [-1, 1]); collapsed keypoints give 0.
``visibility`` (list) / ``visibility_mean``
    mean part visibility v_k over images; its mean over parts.
``confidence``
    mean over images and cells of the largest of the K+1 channel probabilities.
``part_global_cosine``
    mean cosine between each part feature and its image's global feature.
``part_part_cosine``
    mean cosine between two different parts of one image (K ≥ 2 only; parts that are copies of
    the global feature give ~1).

With body-part label maps (`reid_core.parts.BODY_PARTS` per pixel, grouped into the model's K
parts by `reid_core.parts.part_groups`; omitted when K has no grouping): the predicted part of a
pixel is the argmax over channels of S upsampled bilinearly (align_corners=False) to the label
map; IoUs are accumulated over the whole set (intersections and unions summed over images), and
learned parts are matched one-to-one to body-part groups by the Hungarian method (largest total
IoU).

``part_miou``
    mean IoU of the K matched (learned part, body-part group) pairs.
``part_iou`` (list)
    each learned part's IoU with its matched group.
``background_iou``
    IoU of channel 0 with label 0 (not matched).
``part_purity``
    Σ_k |pred_k ∩ matched group| / Σ_k |pred_k| over learned parts k = 1..K.
``part_matching`` (list of str)
    for each learned part, the name of its matched group (`reid_core.parts.part_group_names`).

A global-only model (K = 0), or an accumulator that saw no image, gives an empty dict.
`check_targets` / `meets_targets` judge the figures against SPEC §7 (`TARGETS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from reid_core.features import ReIDFeatures
from reid_core.parts import BODY_PARTS, part_group_names, part_groups

LABEL_FIGURES = ("part_miou", "part_iou", "background_iou", "part_purity", "part_matching")
"""Figures that need body-part label maps."""

_UPSAMPLE_CHUNK = 16  # images upsampled at once to a label map's size (memory)


@dataclass(frozen=True)
class Target:
    """A SPEC §7 target on one figure: ``figure`` must be ``<=`` or ``>=`` ``threshold``."""

    figure: str
    op: str
    threshold: float
    description: str

    def passes(self, value: float) -> bool:
        return value <= self.threshold if self.op == "<=" else value >= self.threshold

    def __str__(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {self.threshold:g}"


TARGETS = (
    Target("largest_part_share", "<=", 0.40, "no part above 40 % of the foreground mass"),
    Target("background_fraction", ">=", 0.15, "background at least 15 % of a crop"),
    Target("spatial_entropy_max", "<=", 0.75, "each part's map concentrated"),
    Target("part_miou", ">=", 0.5, "parts agree with the rendered body parts"),
)


def check_targets(figures: dict[str, Any]) -> dict[str, bool]:
    """{figure: passes its SPEC §7 target} for the targeted figures present in ``figures``."""
    return {t.figure: t.passes(figures[t.figure]) for t in TARGETS if t.figure in figures}


def meets_targets(figures: dict[str, Any]) -> bool:
    """Whether every SPEC §7 target that the figures can be judged on passes (False if none)."""
    checks = check_targets(figures)
    return bool(checks) and all(checks.values())


def _as_label_tensor(label_maps: torch.Tensor | np.ndarray) -> torch.Tensor:
    labels = torch.as_tensor(
        np.asarray(label_maps) if not torch.is_tensor(label_maps) else label_maps
    )
    if labels.dim() != 3:
        raise ValueError(f"label maps must be [N, H, W], got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"label maps must hold integer body-part labels, got {labels.dtype}")
    labels = labels.cpu().long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(BODY_PARTS)):
        raise ValueError(
            f"label maps hold values {int(labels.min())}..{int(labels.max())}; body-part labels "
            f"are 0..{len(BODY_PARTS) - 1} (reid_core.parts.BODY_PARTS)"
        )
    return labels


def _normalised_entropy(p: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Entropy of the distributions ``p`` (summing to 1 along ``dim``) / log(size)."""
    entropy = -torch.special.xlogy(p, p).sum(dim)
    return entropy / math.log(size) if size > 1 else torch.zeros_like(entropy)


class PartHealthAccumulator:
    """Part-health figures fed batch by batch: ``update`` each batch, ``compute`` at the end.

    ``add_features`` takes the label-free figures and ``add_label_maps`` the label-based ones,
    so label maps can cover a subset of the images; ``update`` does both for one batch.
    """

    def __init__(self) -> None:
        self.num_parts: int | None = None
        self.images = 0
        self.labelled_images = 0
        self._cells = 0
        self._background = 0.0
        self._confidence = 0.0
        self._spread = 0.0
        self._part_global = 0.0
        self._part_part = 0.0
        self._mass = torch.zeros(0, dtype=torch.float64)
        self._entropy = torch.zeros(0, dtype=torch.float64)
        self._entropy_count = torch.zeros(0, dtype=torch.float64)
        self._visibility = torch.zeros(0, dtype=torch.float64)
        self._confusion: torch.Tensor | None = None  # [K+1 predicted, K+1 target] pixel counts
        self._groups: torch.Tensor | None = None
        self._groups_known = True

    def _set_parts(self, num_parts: int) -> None:
        if self.num_parts is None:
            self.num_parts = num_parts
            self._mass = torch.zeros(num_parts, dtype=torch.float64)
            self._entropy = torch.zeros(num_parts, dtype=torch.float64)
            self._entropy_count = torch.zeros(num_parts, dtype=torch.float64)
            self._visibility = torch.zeros(num_parts, dtype=torch.float64)
            try:
                self._groups = part_groups(num_parts) if num_parts else None
            except ValueError:  # no body-part grouping for this K: label figures are omitted
                self._groups_known = False
        elif num_parts != self.num_parts:
            raise ValueError(
                f"part health: a batch has K = {num_parts} parts, earlier batches had "
                f"{self.num_parts}"
            )

    def update(
        self, features: ReIDFeatures, label_maps: torch.Tensor | np.ndarray | None = None
    ) -> PartHealthAccumulator:
        """Add one batch of model outputs, with its [N, H, W] body-part label maps if known."""
        self.add_features(features)
        if label_maps is not None:
            self.add_label_maps(features.segmentation, label_maps)
        return self

    @torch.no_grad()
    def add_features(self, features: ReIDFeatures) -> PartHealthAccumulator:
        """Add the label-free figures of a batch."""
        self._set_parts(features.num_parts)
        if features.num_parts == 0 or len(features) == 0:
            return self
        seg = features.segmentation.detach().to("cpu", torch.float64)
        n, _, h, w = seg.shape
        self.images += n
        self._cells += n * h * w
        self._background += float(seg[:, 0].sum())
        self._confidence += float(seg.max(1).values.sum())
        parts = seg[:, 1:].flatten(2)  # [N, K, hw]
        mass = parts.sum(2)  # [N, K]
        self._mass += mass.sum(0)
        present = mass > 0
        spatial = parts / mass.clamp_min(torch.finfo(torch.float64).tiny)[..., None]
        entropy = _normalised_entropy(spatial, 2, h * w)
        self._entropy += torch.where(present, entropy, torch.zeros_like(entropy)).sum(0)
        self._entropy_count += present.sum(0)
        keypoints = features.keypoints.detach().to("cpu", torch.float64)
        centroid = keypoints.mean(1, keepdim=True)
        self._spread += float((keypoints - centroid).norm(dim=2).mean(1).sum())
        self._visibility += features.visibility.detach().to("cpu", torch.float64).sum(0)
        part_features = F.normalize(features.part_features.detach().to("cpu", torch.float64), dim=2)
        global_features = F.normalize(
            features.global_features.detach().to("cpu", torch.float64), dim=1
        )
        self._part_global += float((part_features @ global_features[..., None]).mean((1, 2)).sum())
        k = features.num_parts
        if k >= 2:
            gram = part_features @ part_features.transpose(1, 2)  # [N, K, K]
            off_diagonal = gram.sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(1)
            self._part_part += float((off_diagonal / (k * (k - 1))).sum())
        return self

    @torch.no_grad()
    def add_label_maps(
        self, segmentation: torch.Tensor, label_maps: torch.Tensor | np.ndarray
    ) -> PartHealthAccumulator:
        """Add the label-based figures of a batch: its segmentation [N, K+1, h, w] and its
        body-part label maps [N, H, W]. Nothing is added when K has no body-part grouping."""
        self._set_parts(segmentation.shape[1] - 1)
        labels = _as_label_tensor(label_maps)
        if labels.shape[0] != segmentation.shape[0]:
            raise ValueError(
                f"part health: {labels.shape[0]} label maps for {segmentation.shape[0]} "
                "segmentations"
            )
        if self.num_parts == 0 or not self._groups_known or self._groups is None:
            return self
        k1 = self.num_parts + 1
        if self._confusion is None:
            self._confusion = torch.zeros(k1, k1, dtype=torch.int64)
        size = tuple(labels.shape[1:])
        for start in range(0, labels.shape[0], _UPSAMPLE_CHUNK):
            seg = segmentation[start : start + _UPSAMPLE_CHUNK].detach().float()
            upsampled = F.interpolate(seg, size=size, mode="bilinear", align_corners=False)
            predicted = upsampled.argmax(1).cpu()
            target = self._groups[labels[start : start + _UPSAMPLE_CHUNK]]
            pairs = (predicted * k1 + target).flatten()
            self._confusion += torch.bincount(pairs, minlength=k1 * k1).view(k1, k1)
        self.labelled_images += labels.shape[0]
        return self

    def compute(self) -> dict[str, Any]:
        """The figures (see the module doc); {} for K = 0 or before any image."""
        k = self.num_parts
        if not k or self.images == 0:
            return {}
        share = self._mass / self._mass.sum().clamp_min(torch.finfo(torch.float64).tiny)
        mass_entropy = float(_normalised_entropy(share, 0, k)) if k > 1 else 1.0
        spatial = self._entropy / self._entropy_count.clamp_min(1)
        visibility = self._visibility / self.images
        figures: dict[str, Any] = {
            "background_fraction": self._background / self._cells,
            "part_share": share.tolist(),
            "largest_part_share": float(share.max()),
            "mass_entropy": mass_entropy,
            "spatial_entropy": spatial.tolist(),
            "spatial_entropy_mean": float(spatial.mean()),
            "spatial_entropy_max": float(spatial.max()),
            "keypoint_spread": self._spread / self.images,
            "visibility": visibility.tolist(),
            "visibility_mean": float(visibility.mean()),
            "confidence": self._confidence / self._cells,
            "part_global_cosine": self._part_global / self.images,
        }
        if k >= 2:
            figures["part_part_cosine"] = self._part_part / self.images
        if self._confusion is not None and self.labelled_images:
            figures.update(self._label_figures())
        return figures

    def _label_figures(self) -> dict[str, Any]:
        from scipy.optimize import linear_sum_assignment

        confusion = self._confusion.double()
        predicted = confusion.sum(1)
        target = confusion.sum(0)
        union = predicted[:, None] + target[None, :] - confusion
        iou = torch.where(union > 0, confusion / union.clamp_min(1), torch.zeros_like(union))
        rows, cols = linear_sum_assignment(iou[1:, 1:].numpy(), maximize=True)
        matched = iou[1:, 1:][rows, cols]
        foreground = float(predicted[1:].sum())
        hits = float(confusion[1:, 1:][rows, cols].sum())
        names = part_group_names(self.num_parts)
        return {
            "part_miou": float(matched.mean()),
            "part_iou": matched.tolist(),
            "background_iou": float(iou[0, 0]),
            "part_purity": hits / foreground if foreground > 0 else 0.0,
            "part_matching": [names[c] for c in cols],
        }


def part_health(
    features: ReIDFeatures, label_maps: torch.Tensor | np.ndarray | None = None
) -> dict[str, Any]:
    """The part-health figures of a set of model outputs (see the module doc), with the
    label-based ones when [N, H, W] body-part label maps are given."""
    return PartHealthAccumulator().update(features, label_maps).compute()
