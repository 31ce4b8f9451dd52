"""Market-protocol metrics: hand-made cases with answers worked out on paper, the exactness of
chunking, and bit-for-bit agreement with the per-query reference loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid_core import ReIDFeatures
from trainer.evaluation import evaluate_features, evaluate_rankings, occluded_protocol_camids
from trainer.evaluation.reference import evaluate_rankings_reference


def ordered_distances(order: list[int]) -> np.ndarray:
    """A [G] distance row ranking gallery item order[0] first, order[1] second, ..."""
    row = np.empty(len(order))
    row[order] = np.arange(len(order), dtype=float)
    return row


def evaluate(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=5, **kwargs):
    return evaluate_rankings(
        np.asarray(distmat, dtype=float),
        np.asarray(q_pids),
        np.asarray(g_pids),
        np.asarray(q_camids),
        np.asarray(g_camids),
        max_rank=max_rank,
        show_progress=False,
        **kwargs,
    )


def test_perfect_ranking_scores_one() -> None:
    g_pids, g_cams = [1, 1, 2, 2, 3, 3], [1, 2, 1, 2, 1, 2]
    distmat = [ordered_distances([0, 1, 2, 3, 4, 5]), ordered_distances([2, 3, 0, 1, 4, 5])]
    result = evaluate(distmat, [1, 2], g_pids, [0, 0], g_cams)
    np.testing.assert_array_equal(result["cmc"], np.ones(5))
    assert result["mAP"] == 1.0
    assert result["mINP"] == 1.0
    assert result["num_valid_queries"] == 2
    assert result["num_skipped_queries"] == 0


def test_known_permutation_matches_hand_arithmetic() -> None:
    # Gallery: items 0, 1 are identity 1 (true matches), items 2, 3, 4 are identities 2, 3, 4.
    # Query A ranks [2, 0, 3, 1, 4]: matches at ranks 2 and 4.
    #   AP = (1/2 + 2/4) / 2 = 0.5; INP = 2 matches / rank 4 = 0.5; CMC = [0, 1, 1, 1, 1].
    # Query B ranks [0, 2, 3, 4, 1]: matches at ranks 1 and 5.
    #   AP = (1/1 + 2/5) / 2 = 0.7; INP = 2 / 5 = 0.4; CMC = [1, 1, 1, 1, 1].
    # Mean: mAP = 0.6, mINP = 0.45, CMC = [0.5, 1, 1, 1, 1].
    g_pids, g_cams = [1, 1, 2, 3, 4], [1, 1, 1, 1, 1]
    distmat = [ordered_distances([2, 0, 3, 1, 4]), ordered_distances([0, 2, 3, 4, 1])]
    result = evaluate(distmat, [1, 1], g_pids, [0, 0], g_cams)
    np.testing.assert_allclose(result["cmc"], [0.5, 1.0, 1.0, 1.0, 1.0])
    assert result["mAP"] == pytest.approx(0.6)
    assert result["mINP"] == pytest.approx(0.45)


@pytest.mark.parametrize(
    ("nearest_pid", "nearest_cam", "expected_ap", "why"),
    [
        # Nearest entry excluded: the true match at rank 2 moves up to rank 1.
        (1, 0, 1.0, "same identity and camera as the query: left out"),
        (-1, 1, 1.0, "junk: ignored"),
        # Nearest entry kept as a non-match: the true match stays at rank 2, AP = 1/2.
        (0, 1, 0.5, "distractor: a non-match"),
        (2, 0, 0.5, "other identity on the query's camera: a non-match"),
    ],
)
def test_protocol_exclusions(
    nearest_pid: int, nearest_cam: int, expected_ap: float, why: str
) -> None:
    # Gallery: [the entry under test (nearest), identity 2 cam 2, identity 1 cam 1 (the match)].
    distmat = [ordered_distances([0, 2, 1])]
    result = evaluate(distmat, [1], [nearest_pid, 2, 1], [0], [nearest_cam, 2, 1])
    assert result["mAP"] == expected_ap, why
    assert result["cmc"][0] == (1.0 if expected_ap == 1.0 else 0.0), why


def test_queries_without_valid_match_are_skipped_and_counted() -> None:
    g_pids, g_cams = [1, 2, 2], [1, 0, 0]
    distmat = np.arange(9, dtype=float).reshape(3, 3)
    # Query 0: identity 1, matched by gallery item 0 (camera 1).
    # Query 1: identity 2, whose gallery items are all on its own camera 0: skipped.
    # Query 2: identity 7, absent from the gallery: skipped.
    result = evaluate(distmat, [1, 2, 7], g_pids, [0, 0, 0], g_cams)
    assert result["num_valid_queries"] == 1
    assert result["num_skipped_queries"] == 2
    with pytest.raises(ValueError, match="no query has a true match"):
        evaluate(distmat[1:], [2, 7], g_pids, [0, 0], g_cams)


def test_cmc_beyond_gallery_size_stays_at_final_value() -> None:
    result = evaluate([ordered_distances([1, 0])], [1], [1, 2], [0], [1, 1], max_rank=10)
    np.testing.assert_array_equal(result["cmc"], [0.0] + [1.0] * 9)


def test_occluded_protocol_camids_leave_nothing_out() -> None:
    # Occluded-REID style: the query and the gallery item 0 share identity 1 and, on disk, a
    # camera. Every gallery image of the identity must count: matches at ranks 1 and 3, so
    # AP = (1/1 + 2/3) / 2 = 5/6 and INP = 2/3. With the on-disk cameras, the Market protocol
    # would drop item 0 and give AP = 1/2 instead.
    distmat = [ordered_distances([0, 1, 2])]
    q_cams, g_cams = occluded_protocol_camids(1, 3)
    result = evaluate(distmat, [1], [1, 2, 1], q_cams, g_cams)
    assert result["mAP"] == pytest.approx(5 / 6)
    assert result["mINP"] == pytest.approx(2 / 3)
    assert evaluate(distmat, [1], [1, 2, 1], [4], [4, 4, 5])["mAP"] == 0.5


def random_problem(seed: int, num_query: int = 40, num_gallery: int = 300, kind: str = "random"):
    """Identities -1..9 (junk, distractors included), 4 cameras. Distances: "random" (most
    matches deep in the ranking), "ties" (small integers), or "structured" (features near
    their identity's centre: matches near the top), so every ranking path is exercised."""
    rng = np.random.default_rng(seed)
    labels = (
        rng.integers(-1, 10, num_query),
        rng.integers(-1, 10, num_gallery),
        rng.integers(0, 4, num_query),
        rng.integers(0, 4, num_gallery),
    )
    if kind == "ties":
        distmat = rng.integers(0, 6, (num_query, num_gallery)).astype(np.float32)
    elif kind == "structured":
        centres = rng.normal(size=(11, 8))
        query = centres[labels[0] + 1] + 0.6 * rng.normal(size=(num_query, 8))
        gallery = centres[labels[1] + 1] + 0.6 * rng.normal(size=(num_gallery, 8))
        distmat = np.linalg.norm(query[:, None] - gallery[None], axis=2)
    else:
        distmat = rng.random((num_query, num_gallery))
    return (distmat, *labels)


def assert_same_result(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    np.testing.assert_array_equal(a["cmc"], b["cmc"])
    for key in ("mAP", "mINP", "num_valid_queries", "num_skipped_queries"):
        assert a[key] == b[key], key


@pytest.mark.parametrize("kind", ["random", "ties", "structured"])
@pytest.mark.parametrize("seed", range(3))
def test_vectorised_equals_per_query_reference_exactly(seed: int, kind: str) -> None:
    problem = random_problem(seed, kind=kind)
    for max_rank in (1, 10):
        expected = evaluate_rankings_reference(*problem, max_rank=max_rank)
        assert_same_result(evaluate(*problem, max_rank=max_rank), expected)


def test_chunking_and_input_types_do_not_change_a_bit() -> None:
    distmat, *labels = random_problem(7, kind="ties")
    one_shot = evaluate(distmat, *labels, chunk_size=len(distmat))
    for chunk_size in (1, 3, 16, None):
        assert_same_result(evaluate(distmat, *labels, chunk_size=chunk_size), one_shot)
    torch_labels = [torch.as_tensor(x) for x in labels]
    assert_same_result(
        evaluate_rankings(
            torch.from_numpy(distmat), *torch_labels, max_rank=5, show_progress=False
        ),
        one_shot,
    )
    as_lists = [x.tolist() for x in labels]
    assert_same_result(
        evaluate_rankings(distmat, *as_lists, max_rank=5, chunk_size=5, show_progress=False),
        one_shot,
    )


def l1_distance(query: ReIDFeatures, gallery: ReIDFeatures) -> torch.Tensor:
    """Row-independent by construction, so chunking cannot change a distance."""
    return (query.global_features[:, None] - gallery.global_features[None]).abs().sum(-1)


def features(global_features: torch.Tensor, parts: int = 2) -> ReIDFeatures:
    n, d = global_features.shape
    return ReIDFeatures(
        global_features=global_features,
        part_features=torch.zeros(n, parts, d),
        visibility=torch.ones(n, parts),
        keypoints=torch.zeros(n, parts, 2),
        jacobians=torch.eye(2).expand(n, parts, 2, 2),
        segmentation=torch.zeros(n, parts + 1, 4, 2),
    )


def test_evaluate_features_in_chunks_equals_full_matrix() -> None:
    generator = torch.Generator().manual_seed(0)
    _, q_pids, g_pids, q_cams, g_cams = random_problem(3, num_query=30, num_gallery=120)
    centres = torch.randn(10, 8, generator=generator)
    query = features(centres[q_pids.clip(0)] + torch.randn(30, 8, generator=generator))
    gallery = features(centres[g_pids.clip(0)] + torch.randn(120, 8, generator=generator))
    labels = (q_pids, g_pids, q_cams, g_cams)
    expected = evaluate(l1_distance(query, gallery).numpy(), *labels)
    assert expected["mAP"] > 0.3  # the identity structure shows: not a trivial case
    for chunk_size in (1, 7, 30, None):
        result = evaluate_features(
            query, gallery, l1_distance, *labels, max_rank=5, chunk_size=chunk_size,
            show_progress=False,
        )  # fmt: skip
        assert_same_result(result, expected)


def test_bad_input_is_named() -> None:
    distmat, q_pids, g_pids, q_cams, g_cams = random_problem(0, num_query=4, num_gallery=6)
    with pytest.raises(ValueError, match=r"distmat has shape \(4, 6\).*3 query"):
        evaluate(distmat, q_pids[:3], g_pids, q_cams[:3], g_cams)
    with pytest.raises(ValueError, match="q_pids has 4 entries but q_camids has 3"):
        evaluate(distmat, q_pids, g_pids, q_cams[:3], g_cams)
    with pytest.raises(ValueError, match="g_pids holds -2"):
        evaluate(distmat, q_pids, np.full(6, -2), q_cams, g_cams)
    with pytest.raises(TypeError, match="q_pids must hold integers"):
        evaluate(distmat, q_pids.astype(float), g_pids, q_cams, g_cams)
    with pytest.raises(ValueError, match="NaN or infinite"):
        evaluate(np.where(distmat > 0.5, np.nan, distmat), q_pids, g_pids, q_cams, g_cams)
    with pytest.raises(ValueError, match="max_rank must be >= 1"):
        evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=0)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        evaluate(distmat, q_pids, g_pids, q_cams, g_cams, chunk_size=0)
