"""Pooling crops of one person into one `Appearance`: a worker's tracklet, a search's query.

Pooling a tracklet's crops (`RunningAppearance`): each crop gets a weight
w = max(score, 0.05) · max(mean part visibility, 0.05) — confident detections of unoccluded
people count most — scaled by (outlier_distance / δ)² when its global feature is δ > outlier
distance (cosine) from the running mean of the crops before it (from the third crop on), so a
few crops of the wrong person (a tracker swap) or of an occluder barely move the mean. The
global vector is the w-weighted mean of unit global features; part k is the w·v_k-weighted mean
of its unit part features (a crop where part k is hidden adds nothing to it); the tracklet's
visibility v_k is the w-weighted mean of the crops' v_k (SPEC §2.7 then counts a part by how
reliably the tracklet saw it).
"""

from __future__ import annotations

import numpy as np

from reid_core.features import ReIDFeatures
from stream.gallery.records import Appearance, unit_rows

MIN_WEIGHT_FACTOR = 0.05  # a crop with score 0 or no visible part still counts a little
OUTLIER_MIN_CROPS = 2  # the running mean needs this many crops before it judges outliers


class RunningAppearance:
    """One tracklet's crops pooled into an `Appearance` (weights: the module docstring)."""

    def __init__(self, dim: int, num_parts: int, outlier_distance: float) -> None:
        self.outlier_distance = outlier_distance
        self.count = 0
        self.weight = 0.0
        self.global_sum = np.zeros(dim)
        self.part_sum = np.zeros((num_parts, dim))
        self.part_weight = np.zeros(num_parts)  # Σ w·v_k: part k's pool weight

    def add(
        self,
        global_feature: np.ndarray,
        part_features: np.ndarray,
        visibility: np.ndarray,
        score: float,
    ) -> float:
        """Pool one crop's features ([d], [K, d], [K]); returns the weight it got."""
        direction = unit_rows(global_feature.astype(np.float64))
        quality = float(visibility.mean()) if visibility.size else 1.0
        weight = max(score, MIN_WEIGHT_FACTOR) * max(quality, MIN_WEIGHT_FACTOR)
        if self.count >= OUTLIER_MIN_CROPS:
            distance = 1.0 - float(direction @ unit_rows(self.global_sum))
            if distance > self.outlier_distance:
                weight *= (self.outlier_distance / distance) ** 2
        part_weights = weight * visibility.astype(np.float64)
        self.global_sum += weight * direction
        self.part_sum += part_weights[:, None] * unit_rows(part_features.astype(np.float64))
        self.part_weight += part_weights
        self.weight += weight
        self.count += 1
        return weight

    def appearance(self) -> Appearance:
        if self.count == 0:
            raise ValueError("a tracklet with no embedded crop has no appearance")
        parts = np.divide(
            self.part_sum,
            self.part_weight[:, None],
            out=np.zeros_like(self.part_sum),
            where=self.part_weight[:, None] > 0,
        )
        return Appearance(
            global_vector=self.global_sum / self.weight,
            part_vectors=parts,
            visibility=np.clip(self.part_weight / self.weight, 0.0, 1.0),
        )

    def add_features(self, features: ReIDFeatures, scores: list[float] | None = None) -> None:
        """Pool every crop of an embedded batch (detector scores default to 1)."""
        global_features = features.global_features.detach().cpu().numpy()
        part_features = features.part_features.detach().cpu().numpy()
        visibility = features.visibility.detach().cpu().numpy()
        for i in range(len(global_features)):
            score = 1.0 if scores is None else scores[i]
            self.add(global_features[i], part_features[i], visibility[i], score)
