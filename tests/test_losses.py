"""Loss terms against hand computations, and MotionAwareLoss's terms per configuration."""

from __future__ import annotations

import math

import pytest
import torch
from test_model import tiny_model_config

from reid_core.distance import pairwise_distance
from reid_core.losses import (
    MotionAwareLoss,
    batch_hard_triplet_loss,
    freeze_keypoint_branch,
    id_loss,
    keypoint_supervision_loss,
    part_id_loss,
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
