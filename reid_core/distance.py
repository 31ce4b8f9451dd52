"""Distances between ReIDFeatures (SPEC §2.7, §8), batched and chunked over the gallery.

occlusion-aware: d(q, g) = d_cos(g_q, g_g) + λ · Σ_k v_k^q v_k^g d_cos(f_k^q, f_k^g)
                                              / (Σ_k v_k^q v_k^g + ε)
The part term never builds a [Q, G, K] tensor for cosine: with unit part vectors,
Σ_k v^q v^g (1 − cos_k) = (v^q · v^g) − (v^q ⊙ f̂^q)_flat · (v^g ⊙ f̂^g)_flat, two matmuls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

from reid_core.features import ReIDFeatures

Metric = Literal["cosine", "euclidean", "squared_euclidean"]
CO_VISIBILITY_EPS = 1e-6
DEFAULT_CHUNK = 4096


def pairwise_distance(a: torch.Tensor, b: torch.Tensor, metric: Metric) -> torch.Tensor:
    """[..., N, d] × [..., M, d] → [..., N, M]. Euclidean is √ of a clamped square, so its
    gradient stays finite where two vectors coincide (a sample against itself in a batch)."""
    if metric == "cosine":
        return 1.0 - F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).mT
    squared = (
        a.pow(2).sum(-1).unsqueeze(-1) + b.pow(2).sum(-1).unsqueeze(-2) - 2.0 * (a @ b.mT)
    ).clamp_min(0.0)
    if metric == "squared_euclidean":
        return squared
    return squared.clamp_min(1e-12).sqrt()


def part_distance(
    parts_a: torch.Tensor,
    visibility_a: torch.Tensor,
    parts_b: torch.Tensor,
    visibility_b: torch.Tensor,
    metric: Metric,
) -> torch.Tensor:
    """Σ_k v_k^a v_k^b d(f_k^a, f_k^b) / (Σ_k v_k^a v_k^b + ε): [N,K,d],[N,K] × [M,K,d],[M,K]
    → [N, M]. Parts hidden in either image weigh 0; with no co-visible part the value is 0."""
    co_visibility = visibility_a @ visibility_b.T  # Σ_k v^a v^b
    if metric == "cosine":
        weighted_a = (F.normalize(parts_a, dim=-1) * visibility_a.unsqueeze(-1)).flatten(1)
        weighted_b = (F.normalize(parts_b, dim=-1) * visibility_b.unsqueeze(-1)).flatten(1)
        numerator = co_visibility - weighted_a @ weighted_b.T
    else:
        per_part = pairwise_distance(parts_a.transpose(0, 1), parts_b.transpose(0, 1), metric)
        weights = visibility_a.T.unsqueeze(-1) * visibility_b.T.unsqueeze(1)  # [K, N, M]
        numerator = (weights * per_part).sum(0)
    return numerator / (co_visibility + CO_VISIBILITY_EPS)


def _global_cosine(query: ReIDFeatures, gallery: ReIDFeatures) -> torch.Tensor:
    return pairwise_distance(query.global_features, gallery.global_features, "cosine")


def _over_gallery_chunks(
    query: ReIDFeatures,
    gallery: ReIDFeatures,
    chunk_size: int,
    distance: Callable[[ReIDFeatures, ReIDFeatures], torch.Tensor],
) -> torch.Tensor:
    """Apply ``distance`` to gallery slices so intermediates stay [Q, chunk_size]-sized."""
    if query.dim != gallery.dim or query.num_parts != gallery.num_parts:
        raise ValueError(
            f"query features (d={query.dim}, K={query.num_parts}) and gallery features "
            f"(d={gallery.dim}, K={gallery.num_parts}) come from different models"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    starts = range(0, max(len(gallery), 1), chunk_size)
    return torch.cat([distance(query, gallery[s : s + chunk_size]) for s in starts], dim=1)


def global_distance(
    query: ReIDFeatures, gallery: ReIDFeatures, chunk_size: int = DEFAULT_CHUNK
) -> torch.Tensor:
    """SPEC §2.7 global-only mode: cosine distance of the global features, [Q, G]."""
    return _over_gallery_chunks(query, gallery, chunk_size, _global_cosine)


def occlusion_aware_distance(
    query: ReIDFeatures, gallery: ReIDFeatures, lam: float = 1.0, chunk_size: int = DEFAULT_CHUNK
) -> torch.Tensor:
    """SPEC §2.7: global cosine distance + λ · visibility-weighted part cosine distance, [Q, G].
    Equals ``global_distance`` where no part is visible in both images."""

    def distance(q: ReIDFeatures, g: ReIDFeatures) -> torch.Tensor:
        parts = part_distance(
            q.part_features, q.visibility, g.part_features, g.visibility, "cosine"
        )
        return _global_cosine(q, g) + lam * parts

    return _over_gallery_chunks(query, gallery, chunk_size, distance)
