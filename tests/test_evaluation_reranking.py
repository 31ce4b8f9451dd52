"""k-reciprocal re-ranking: against a plain loop written from the paper's definitions, on a
well-separated problem, and its refusal to exhaust the memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.evaluation import (
    RerankConfig,
    evaluate_rankings,
    k_reciprocal_rerank,
    rerank_features,
)


def loop_rerank(q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, k1: int, k2: int, lam: float):
    """Zhong et al. 2017, one item at a time with dense V (Eq. 4, 6, 7, 11, 10-13)."""
    num_query = len(q_q)
    joint = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float32) ** 2
    dist = (joint / joint.max(axis=0)).T
    num_items = len(dist)
    rank = np.argsort(dist, axis=1, kind="stable")

    def reciprocal(i: int, k: int) -> set[int]:
        return {int(j) for j in rank[i, : k + 1] if i in rank[j, : k + 1]}

    weights = np.zeros_like(dist)
    for i in range(num_items):
        own = reciprocal(i, k1)
        expanded = set(own)
        for candidate in own:
            half = reciprocal(candidate, round(k1 / 2))
            if len(half & own) > 2 / 3 * len(half):
                expanded |= half
        members = sorted(expanded)
        w = np.exp(-dist[i, members])
        weights[i, members] = w / w.sum()
    if k2 > 1:
        weights = np.stack([weights[rank[i, :k2]].mean(axis=0) for i in range(num_items)])
    jaccard = np.empty((num_query, num_items - num_query), dtype=np.float32)
    for i in range(num_query):
        for j in range(num_query, num_items):
            jaccard[i, j - num_query] = 1 - (
                np.minimum(weights[i], weights[j]).sum() / np.maximum(weights[i], weights[j]).sum()
            )
    return (1 - lam) * jaccard + lam * dist[:num_query, num_query:]


def clustered_problem(
    seed: int, num_ids: int, per_id_query: int, per_id_gallery: int, noise: float
):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_ids, 16, generator=generator) * 4
    q_pids = torch.arange(num_ids).repeat_interleave(per_id_query)
    g_pids = torch.arange(num_ids).repeat_interleave(per_id_gallery)
    query = centres[q_pids] + noise * torch.randn(len(q_pids), 16, generator=generator)
    gallery = centres[g_pids] + noise * torch.randn(len(g_pids), 16, generator=generator)
    return query, gallery, q_pids + 1, g_pids + 1


@pytest.mark.parametrize(("k1", "k2"), [(20, 6), (5, 3), (4, 1)])
def test_matches_plain_loop_over_the_definitions(k1: int, k2: int) -> None:
    query, gallery, _, _ = clustered_problem(
        0, num_ids=12, per_id_query=2, per_id_gallery=6, noise=3.0
    )
    q_g, q_q, g_g = (
        torch.cdist(a, b).numpy() for a, b in [(query, gallery), (query, query), (gallery, gallery)]
    )
    expected = loop_rerank(q_g, q_q, g_g, k1, k2, 0.3)
    result = k_reciprocal_rerank(q_g, q_q, g_g, RerankConfig(k1=k1, k2=k2), show_progress=False)
    assert result.shape == (24, 72) and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=1e-5)


def test_well_separated_ranking_stays_perfect() -> None:
    query, gallery, q_pids, g_pids = clustered_problem(
        1, num_ids=8, per_id_query=2, per_id_gallery=5, noise=0.1
    )
    q_cams, g_cams = np.zeros(len(q_pids), dtype=int), np.ones(len(g_pids), dtype=int)
    before = evaluate_rankings(
        torch.cdist(query, gallery), q_pids, g_pids, q_cams, g_cams, show_progress=False
    )
    assert before["mAP"] == 1.0
    reranked = rerank_features(query, gallery, torch.cdist, show_progress=False)
    assert reranked.shape == (len(query), len(gallery))
    after = evaluate_rankings(reranked, q_pids, g_pids, q_cams, g_cams, show_progress=False)
    assert after["mAP"] == 1.0 and after["mINP"] == 1.0
    np.testing.assert_array_equal(after["cmc"], np.ones(10))


def test_refuses_large_problems_before_computing_anything() -> None:
    def must_not_run(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise AssertionError("distances computed before the size check")

    with pytest.raises(ValueError, match=r"(?s)30x30 distance matrix.*max_items=20"):
        rerank_features(
            torch.zeros(10, 4), torch.zeros(20, 4), must_not_run, RerankConfig(max_items=20)
        )


def test_bad_configuration_and_shapes_are_named() -> None:
    with pytest.raises(ValueError, match="k1 must be >= 1"):
        RerankConfig(k1=0)
    with pytest.raises(ValueError, match=r"lambda_value must be in \[0, 1\]"):
        RerankConfig(lambda_value=1.5)
    with pytest.raises(ValueError, match=r"g_g has shape \(3, 3\), expected \(4, 4\)"):
        k_reciprocal_rerank(
            np.zeros((2, 4)), np.zeros((2, 2)), np.zeros((3, 3)), show_progress=False
        )
