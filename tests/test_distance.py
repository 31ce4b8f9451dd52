"""Occlusion-aware and global distances (SPEC §2.7) against their definition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reid_core.distance import global_distance, occlusion_aware_distance
from reid_core.features import ReIDFeatures


def _features(batch: int, parts: int = 4, dim: int = 8, seed: int = 0) -> ReIDFeatures:
    generator = torch.Generator().manual_seed(seed)
    return ReIDFeatures(
        global_features=torch.randn(batch, dim, generator=generator),
        part_features=torch.randn(batch, parts, dim, generator=generator),
        visibility=torch.rand(batch, parts, generator=generator),
        keypoints=torch.zeros(batch, parts, 2),
        jacobians=torch.eye(2).expand(batch, parts, 2, 2),
        segmentation=torch.ones(batch, parts + 1, 4, 2) / (parts + 1),
    )


def _cosine_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return 1.0 - F.cosine_similarity(a, b, dim=0).item()


def test_matches_a_naive_double_loop() -> None:
    query, gallery = _features(5, seed=1), _features(7, seed=2)
    query.visibility[0] = 0.0  # a query with nothing visible
    lam = 0.7
    got = occlusion_aware_distance(query, gallery, lam=lam, chunk_size=3)
    for i in range(5):
        for j in range(7):
            numerator = denominator = 0.0
            for k in range(4):
                weight = (query.visibility[i, k] * gallery.visibility[j, k]).item()
                numerator += weight * _cosine_distance(
                    query.part_features[i, k], gallery.part_features[j, k]
                )
                denominator += weight
            expected = _cosine_distance(query.global_features[i], gallery.global_features[j])
            expected += lam * numerator / (denominator + 1e-6)
            assert abs(got[i, j].item() - expected) < 1e-5, (i, j)


def test_a_part_hidden_in_either_image_does_not_count() -> None:
    query, gallery = _features(1, seed=3), _features(1, seed=4)
    query.visibility[0, 1] = 0.0
    gallery.visibility[0, 2] = 0.0
    before = occlusion_aware_distance(query, gallery)
    query.part_features[0, 1] = torch.randn(8) * 100  # hidden in the query
    gallery.part_features[0, 2] = torch.randn(8) * 100  # hidden in the gallery image
    assert torch.allclose(occlusion_aware_distance(query, gallery), before, atol=1e-6)


def test_equals_global_distance_when_no_part_is_visible() -> None:
    query, gallery = _features(3, seed=5), _features(6, seed=6)
    query.visibility[:, :2] = 0.0
    gallery.visibility[:, 2:] = 0.0  # no part visible in both
    assert torch.allclose(occlusion_aware_distance(query, gallery), global_distance(query, gallery))
    gallery.visibility[:] = 0.0
    assert torch.allclose(
        occlusion_aware_distance(query, gallery, lam=5.0), global_distance(query, gallery)
    )


def test_chunking_and_empty_gallery() -> None:
    query, gallery = _features(4, seed=7), _features(10, seed=8)
    whole = occlusion_aware_distance(query, gallery, chunk_size=100)
    assert torch.allclose(occlusion_aware_distance(query, gallery, chunk_size=3), whole)
    assert torch.allclose(
        global_distance(query, gallery, chunk_size=4), global_distance(query, gallery)
    )
    assert occlusion_aware_distance(query, gallery[0:0]).shape == (4, 0)


def test_features_of_different_models_are_an_error() -> None:
    with pytest.raises(ValueError, match="different models"):
        global_distance(_features(2, parts=4), _features(2, parts=3))
