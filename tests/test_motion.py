"""Thin-plate-spline warps, their analytic Jacobian, L_eq, dense part motion and L_fc."""

from __future__ import annotations

import math

import pytest
import torch

from reid_core.config import TPSConfig
from reid_core.losses import equivariance_loss, feature_consistency_loss
from reid_core.motion import (
    ThinPlateSpline,
    coordinate_grid,
    dense_motion,
    inverse_2x2,
    warp_features,
)


def _random_warp(batch: int, seed: int = 0, scale: float = 1.0) -> ThinPlateSpline:
    cfg = TPSConfig(sigma_affine=0.05 * scale, sigma_tps=0.005 * scale)
    return ThinPlateSpline.random(batch, cfg, generator=torch.Generator().manual_seed(seed))


def test_identity_tps_leaves_an_image_unchanged() -> None:
    images = torch.rand(2, 3, 32, 16)
    warped = ThinPlateSpline.identity(2).warp_images(images)
    assert torch.allclose(warped, images, atol=1e-6)


def test_random_tps_moves_an_image() -> None:
    images = torch.rand(2, 3, 32, 16)
    assert (_random_warp(2).warp_images(images) - images).abs().mean() > 0.01


def test_tps_jacobian_matches_finite_differences() -> None:
    warp = _random_warp(3, scale=4.0)  # strong warp so the radial part matters
    warp = ThinPlateSpline(
        warp.affine.double(), warp.control_points.double(), warp.control_weights.double()
    )
    points = torch.rand(3, 20, 2, dtype=torch.float64) * 1.8 - 0.9
    step = 1e-6
    columns = []
    for axis in range(2):
        delta = torch.zeros(2, dtype=torch.float64)
        delta[axis] = step
        forward = warp.warp_coordinates(points + delta)
        backward = warp.warp_coordinates(points - delta)
        columns.append((forward - backward) / (2 * step))
    numeric = torch.stack(columns, dim=-1)  # [B, P, 2 (output), 2 (input)]
    analytic = warp.jacobian(points)
    assert torch.allclose(analytic, numeric, atol=1e-6)
    assert (analytic - warp.affine[:, None, :, :2]).abs().max() > 1e-3  # radial part counted


def test_equivariance_loss_is_zero_for_an_oracle_and_positive_otherwise() -> None:
    warp = _random_warp(4)
    keypoints_y = torch.rand(4, 10, 2) * 1.6 - 0.8
    jacobians_y = torch.eye(2) + 0.1 * torch.randn(4, 10, 2, 2)
    # the oracle sees X = Y warped back: p^X = T(p^Y), J^X = ∇T(p^Y) J^Y
    keypoints_x = warp.warp_coordinates(keypoints_y)
    jacobians_x = warp.jacobian(keypoints_y) @ jacobians_y
    assert equivariance_loss(keypoints_x, jacobians_x, keypoints_y, jacobians_y, warp) < 1e-5
    assert equivariance_loss(keypoints_y, jacobians_x, keypoints_y, jacobians_y, warp) > 1e-2
    assert equivariance_loss(keypoints_x, jacobians_y, keypoints_y, jacobians_y, warp) > 1e-2


def test_inverse_2x2_matches_linalg() -> None:
    matrices = torch.eye(2) + 0.3 * torch.randn(5, 3, 2, 2)
    assert torch.allclose(inverse_2x2(matrices), torch.linalg.inv(matrices), atol=1e-5)


def _segmentation(batch: int, num_parts: int, height: int = 16, width: int = 8) -> torch.Tensor:
    return torch.randn(batch, num_parts + 1, height, width).softmax(1)


def test_dense_motion_is_identity_for_equal_keypoints_and_jacobians() -> None:
    keypoints = torch.rand(2, 4, 2) * 2 - 1
    jacobians = torch.eye(2) + 0.2 * torch.randn(2, 4, 2, 2)
    grid = dense_motion(keypoints, jacobians, keypoints, jacobians, _segmentation(2, 4))
    assert torch.allclose(grid, coordinate_grid(16, 8).expand(2, 16, 8, 2), atol=1e-5)
    features = torch.randn(2, 5, 16, 8)
    assert torch.allclose(warp_features(features, grid), features, atol=1e-4)


def test_translated_keypoints_move_a_feature_map_by_that_translation() -> None:
    height, width, shift_rows, shift_cols = 16, 8, 3, 2
    feature_a = torch.randn(1, 6, height, width)
    # X shows A moved down by 3 rows and right by 2 columns
    feature_x = torch.zeros_like(feature_a)
    feature_x[:, :, shift_rows:, shift_cols:] = feature_a[:, :, :-shift_rows, :-shift_cols]
    keypoints_a = torch.rand(1, 3, 2) - 0.5
    shift = torch.tensor([2 * shift_cols / width, 2 * shift_rows / height])
    segmentation_a = torch.zeros(1, 4, height, width)
    segmentation_a[:, 1:] = 1 / 3  # every position is foreground
    jacobians = torch.eye(2).expand(1, 3, 2, 2)
    grid = dense_motion(keypoints_a, jacobians, keypoints_a + shift, jacobians, segmentation_a)
    warped = warp_features(feature_x, grid)
    assert torch.allclose(
        warped[..., : height - shift_rows, : width - shift_cols],
        feature_a[..., : height - shift_rows, : width - shift_cols],
        atol=1e-5,
    )
    # background positions stay where they are
    segmentation_a[:, 0], segmentation_a[:, 1:] = 1.0, 0.0
    grid = dense_motion(keypoints_a, jacobians, keypoints_a + shift, jacobians, segmentation_a)
    assert torch.allclose(warp_features(feature_x, grid), feature_x, atol=1e-5)


def test_feature_consistency_is_zero_for_identical_maps_and_positive_otherwise() -> None:
    features = torch.randn(3, 8, 16, 8)
    background = torch.rand(3, 16, 8)
    for softmax, foreground in (
        ("spatial", "weighted"),
        ("channel", "weighted"),
        ("channel", "threshold"),
    ):
        same = feature_consistency_loss(features, features, background, softmax, foreground)
        assert same.abs().max() < 1e-6
        other = torch.randn(3, 8, 16, 8)
        assert (
            feature_consistency_loss(features, other, background, softmax, foreground) > 0.1
        ).all()


def test_feature_consistency_on_a_known_flow_equals_the_hand_computed_kl() -> None:
    """One part covering a 1×4 row moves right by two cells (anchors s^A = 0, s^X = 0.5,
    J = I), so f^{AX}(z_i) = f^X(z_i + 0.5): cells 1, 2, 3 and the border
    cell 3 again. f^X = log[1, 1, 2, 4] → f^{AX} ∝ [1, 2, 4, 4] (q = /11); f^A uniform (p = ¼).
    Eq. 10 over positions: Σ_z p log(p/q) = ¼[ln(11/4) + ln(11/8) + 2 ln(11/16)] = 0.145167."""
    feature_x = torch.log(torch.tensor([1.0, 1.0, 2.0, 4.0])).view(1, 1, 1, 4)
    feature_a = torch.zeros(1, 1, 1, 4)
    segmentation = torch.zeros(1, 2, 1, 4)
    segmentation[:, 1] = 1.0
    identity = torch.eye(2).view(1, 1, 2, 2)
    grid = dense_motion(
        torch.zeros(1, 1, 2), identity, torch.tensor([[[0.5, 0.0]]]), identity, segmentation
    )
    warped = warp_features(feature_x, grid)
    assert torch.allclose(warped.exp().flatten(), torch.tensor([1.0, 2.0, 4.0, 4.0]), atol=1e-5)
    loss = feature_consistency_loss(feature_a, warped, segmentation[:, 0], "spatial")
    expected = 0.25 * (math.log(11 / 4) + math.log(11 / 8) + 2 * math.log(11 / 16))
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    assert expected == pytest.approx(0.145167, abs=1e-6)
