"""Loss terms against hand computations, and MotionAwareLoss's terms per configuration."""

from __future__ import annotations

import math

import pytest
import torch
from test_model import tiny_model_config

from reid_core.distance import pairwise_distance
from reid_core.heads import segment_centroids
from reid_core.losses import (
    MotionAwareLoss,
    batch_hard_triplet_loss,
    concentration_loss,
    freeze_keypoint_branch,
    frozen_batchnorm_statistics,
    id_loss,
    keypoint_separation_loss,
    keypoint_supervision_loss,
    part_id_loss,
    part_supervision_loss,
    part_usage_loss,
)
from reid_core.model import build_model

SMALL_INPUT = {"input_size": [128, 64]}  # 8×4 grid: the loss logic, at a quarter of the cost
PIDS = torch.tensor([0, 0, 0, 0, 2, 2, 2, 2])


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_batch_hard_soft_margin_triplet_matches_a_hand_computation() -> None:
    features = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    pids = torch.tensor([0, 0, 1, 1])
    distances = pairwise_distance(features, features, "euclidean")
    # anchor: (hardest positive, hardest negative) = (1, 3), (1, 2), (4, 2), (4, 6)
    expected = (_softplus(1 - 3) + _softplus(1 - 2) + _softplus(4 - 2) + _softplus(4 - 6)) / 4
    assert batch_hard_triplet_loss(distances, pids).item() == pytest.approx(expected, rel=1e-5)
    squared = pairwise_distance(features, features, "squared_euclidean")
    expected = (_softplus(1 - 9) + _softplus(1 - 4) + _softplus(16 - 4) + _softplus(16 - 36)) / 4
    assert batch_hard_triplet_loss(squared, pids).item() == pytest.approx(expected, rel=1e-5)


def test_triplet_gradient_is_finite_where_samples_coincide() -> None:
    features = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    loss = batch_hard_triplet_loss(
        pairwise_distance(features, features, "euclidean"), torch.tensor([0, 0, 1])
    )
    loss.backward()
    assert torch.isfinite(features.grad).all()


def test_id_loss_with_label_smoothing_matches_a_hand_computation() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    log_z = math.log(math.exp(2.0) + math.exp(0.0) + math.exp(-1.0))
    log_p = [2.0 - log_z, 0.0 - log_z, -1.0 - log_z]
    eps = 0.1
    expected = -((1 - eps) * log_p[0] + eps / 3 * sum(log_p))
    assert id_loss(logits, torch.tensor([0]), eps).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="num_classes=3"):
        id_loss(logits, torch.tensor([3]), eps)


def test_part_id_loss_ignores_hidden_parts() -> None:
    logits = torch.randn(2, 3, 5)
    pids = torch.tensor([1, 4])
    visibility = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    expected = (id_loss(logits[0:1, 0], pids[:1], 0.1) + id_loss(logits[1:, 2], pids[1:], 0.1)) / 2
    assert part_id_loss(logits, pids, visibility, 0.1).item() == pytest.approx(expected.item())


def test_keypoint_supervision_counts_visible_joints_only() -> None:
    keypoints = torch.zeros(1, 2, 2)
    joints = torch.tensor([[[0.5, -0.5, 1.0], [0.9, 0.9, 0.0]]])
    assert keypoint_supervision_loss(keypoints, joints).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="num_parts must equal the joint count"):
        keypoint_supervision_loss(keypoints, torch.zeros(1, 3, 3))


def _loss_terms(config: dict, joints: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    model = build_model(config).train()
    return MotionAwareLoss(model.config)(model, torch.randn(8, 3, 128, 64), PIDS, joints)


def test_full_model_returns_every_term_and_their_weighted_total() -> None:
    terms = _loss_terms(tiny_model_config(num_classes=3, **SMALL_INPUT))
    names = {
        "id_global",
        "tri_global",
        "id_parts",
        "tri_parts",
        "equivariance",
        "feature_consistency",
        "total",
    }
    assert set(terms) == names
    weights = {"equivariance": 10.0, "feature_consistency": 5.0}
    expected = sum(weights.get(n, 1.0) * v for n, v in terms.items() if n != "total")
    assert torch.allclose(terms["total"], expected)
    assert all(torch.isfinite(v) for v in terms.values())


def test_switched_off_branches_have_no_terms() -> None:
    baseline = tiny_model_config(
        num_classes=3,
        transformer={"projection": False, "use_encoder": False, "use_decoder": False},
        heads={"num_parts": 0, "keypoints": "off", "segmentation": False},
        **SMALL_INPUT,
    )
    assert set(_loss_terms(baseline)) == {"id_global", "tri_global", "total"}
    no_keypoints = tiny_model_config(num_classes=3, heads={"keypoints": "off"}, **SMALL_INPUT)
    assert set(_loss_terms(no_keypoints)) == {
        "id_global",
        "tri_global",
        "id_parts",
        "tri_parts",
        "total",
    }
    no_eq = tiny_model_config(num_classes=3, loss={"weights": {"equivariance": 0}}, **SMALL_INPUT)
    assert "equivariance" not in _loss_terms(no_eq)


def test_part_supervision_and_concentration_terms_join_the_total() -> None:
    config = tiny_model_config(
        num_classes=3,
        heads={"num_parts": 6},
        loss={
            "weights": {
                "part_supervision": 2.0,
                "concentration": 3.0,
                "keypoint_separation": 0.5,
                "part_usage": 4.0,
            }
        },
        **SMALL_INPUT,
    )
    model = build_model(config).train()
    loss = MotionAwareLoss(model.config)
    images = torch.randn(8, 3, 128, 64)
    with pytest.raises(ValueError, match="part_maps"):
        loss(model, images, PIDS)
    terms = loss(model, images, PIDS, part_maps=torch.randint(0, 17, (8, 128, 64)))
    added = {"part_supervision": 2.0, "concentration": 3.0}
    added |= {"keypoint_separation": 0.5, "part_usage": 4.0}
    assert set(added) <= set(terms)
    weights = {"equivariance": 10.0, "feature_consistency": 5.0, **added}
    expected = sum(weights.get(n, 1.0) * v for n, v in terms.items() if n != "total")
    assert torch.allclose(terms["total"], expected)


def test_fine_segmentation_trains_with_every_term() -> None:
    """The finer S meets L_part at its own grid and L_fc on E's grid."""
    config = tiny_model_config(
        num_classes=3,
        heads={"num_parts": 6, "segmentation_upsampling": 2},
        loss={"weights": {"part_supervision": 1.0, "concentration": 1.0}},
        **SMALL_INPUT,
    )
    model = build_model(config).train()
    terms = MotionAwareLoss(model.config)(
        model, torch.randn(8, 3, 128, 64), PIDS, part_maps=torch.randint(0, 17, (8, 128, 64))
    )
    assert {"feature_consistency", "part_supervision", "equivariance"} <= set(terms)
    assert all(torch.isfinite(v) for v in terms.values())
    terms["total"].backward()
    assert model.segmentation_head.skips[0].weight.grad.abs().sum() > 0


def test_part_supervision_is_the_cross_entropy_against_grouped_cell_shares() -> None:
    """K = 3 (head+neck | torso+arms+carried | legs+feet) on a 1×2 grid of 2×2-pixel cells."""
    labels = torch.tensor([[[1, 3, 0, 0], [2, 16, 12, 0]]])  # [1, 2, 4]: cell 0 | cell 1
    # cell 0: head, torso, neck, carried → part 1 ½, part 2 ½; cell 1: foot ¼, background ¾
    segmentation = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]]).T.reshape(1, 4, 1, 2)
    expected = -(0.5 * math.log(0.2) + 0.5 * math.log(0.3)) - (
        0.75 * math.log(0.7) + 0.25 * math.log(0.1)
    )
    loss = part_supervision_loss(segmentation, labels)
    assert loss.item() == pytest.approx(expected / 2, rel=1e-5)


def test_concentration_rewards_compact_parts_and_centroids_are_first_moments() -> None:
    spread = torch.zeros(1, 3, 4, 4)
    spread[:, 0], spread[:, 1:] = 0.0, 0.5  # both parts everywhere
    compact = torch.zeros(1, 3, 4, 4)
    compact[:, 1, :2], compact[:, 2, 2:] = 1.0, 1.0  # top half, bottom half
    assert concentration_loss(compact) < concentration_loss(spread)
    one_cell = torch.zeros(1, 2, 4, 4)
    one_cell[:, 1, 1, 2] = 1.0
    one_cell[:, 0] = 1.0 - one_cell[:, 1]
    assert concentration_loss(one_cell).item() == pytest.approx(0.0, abs=1e-6)
    centroids = segment_centroids(compact)  # cell centres at ±0.25, ±0.75
    assert torch.allclose(centroids, torch.tensor([[[0.0, -0.5], [0.0, 0.5]]]), atol=1e-5)
    # the spread parts: variance of a uniform over the 4×4 centres, x and y: 2 × 0.3125
    assert concentration_loss(spread).item() == pytest.approx(0.625, rel=1e-4)


def test_the_equivariance_pass_leaves_batchnorm_running_statistics_alone() -> None:
    model = build_model(tiny_model_config(num_classes=3, **SMALL_INPUT)).train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running_" in k}
    with frozen_batchnorm_statistics(model):
        model(torch.randn(8, 3, 128, 64) * 3 + 1)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    model(torch.randn(8, 3, 128, 64) * 3 + 1)  # outside: statistics move again
    assert not all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_pretrained_keypoints_learn_from_joints_then_freeze() -> None:
    config = tiny_model_config(
        num_classes=3, heads={"num_parts": 4, "keypoints": "pretrained"}, **SMALL_INPUT
    )
    joints = torch.cat([torch.rand(8, 4, 2) * 2 - 1, torch.ones(8, 4, 1)], -1)
    terms = _loss_terms(config, joints)
    assert "keypoint_supervision" in terms and "equivariance" not in terms
    model = build_model(config).train()
    loss = MotionAwareLoss(model.config)
    with pytest.raises(ValueError, match="pass joints"):
        loss(model, torch.randn(8, 3, 128, 64), PIDS)
    freeze_keypoint_branch(model)
    terms = loss(model, torch.randn(8, 3, 128, 64), PIDS)
    assert "keypoint_supervision" not in terms and "feature_consistency" in terms
    terms["total"].backward()
    assert model.keypoint_head.embed[0].weight.grad is None
    assert model.decoder.part_queries.grad is not None


def test_loss_input_errors_are_clear() -> None:
    model = build_model(tiny_model_config(num_classes=3, **SMALL_INPUT)).train()
    loss = MotionAwareLoss(model.config)
    with pytest.raises(ValueError, match="consecutive groups of loss.images_per_identity=4"):
        loss(model, torch.randn(8, 3, 128, 64), torch.tensor([0, 0, 2, 2, 0, 0, 2, 2]))
    with pytest.raises(ValueError, match="train\\(\\) mode"):
        loss(model.eval(), torch.randn(8, 3, 128, 64), PIDS)
    unlabelled = build_model(tiny_model_config(**SMALL_INPUT)).train()
    with pytest.raises(ValueError, match="no classifier \\(num_classes 0\\)"):
        MotionAwareLoss(unlabelled.config)(unlabelled, torch.randn(8, 3, 128, 64), PIDS)


def test_keypoint_separation_and_part_usage_match_hand_computations() -> None:
    together = torch.zeros(2, 3, 2)
    assert keypoint_separation_loss(together, sigma=0.2).item() == pytest.approx(1.0)
    apart = torch.tensor([[[0.0, 0.0], [0.2, 0.0], [0.0, 0.2]]])
    # pairs at distance 0.2 (twice) and 0.2·√2: exp(−0.5), exp(−0.5), exp(−1), each both ways
    expected = (2 * math.exp(-0.5) + math.exp(-1.0)) * 2 / 6
    assert keypoint_separation_loss(apart, sigma=0.2).item() == pytest.approx(expected, rel=1e-5)
    segmentation = torch.zeros(1, 3, 2, 2)
    segmentation[:, 0] = 1.0  # all background
    segmentation[:, :, 0, 0] = torch.tensor([0.2, 0.4, 0.4])
    mass = [0.8, 0.1, 0.1]  # mean over the four cells
    prior = [0.5, 0.25, 0.25]
    expected = sum(p * math.log(p / m) for p, m in zip(prior, mass, strict=True))
    assert part_usage_loss(segmentation, 0.5).item() == pytest.approx(expected, rel=1e-5)
    balanced = torch.tensor([0.5, 0.25, 0.25]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert part_usage_loss(balanced, 0.5).item() == pytest.approx(0.0, abs=1e-6)
