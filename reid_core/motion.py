"""Motion: random thin-plate-spline warps for L_eq and the dense part motion for L_fc.

Coordinates everywhere are (x, y) in [-1, 1] with cell centres as in
``F.grid_sample(align_corners=False)``: the centre of column j of w is (2j + 1)/w − 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from reid_core.config import TPSConfig


def coordinate_grid(
    height: int, width: int, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """[h, w, 2] (x, y) cell-centre coordinates in [-1, 1]."""
    ys = (torch.arange(height, device=device, dtype=dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=device, dtype=dtype) * 2 + 1) / width - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)


@dataclass
class ThinPlateSpline:
    """T(z) = A z + b + Σ_i w_i U(‖z − c_i‖), U(r) = r² log r: First Order Motion Model's
    random ``Transform`` (affine part plus control-point part on a points×points grid).

    FOMM uses the L1 radius and one weight shared by x and y; this is the textbook TPS
    (Euclidean radius, a weight per axis), smooth everywhere, so ∇T below is exact.
    affine [B, 2, 3], control_points [N, 2], control_weights [B, N, 2].
    """

    affine: torch.Tensor
    control_points: torch.Tensor
    control_weights: torch.Tensor

    @classmethod
    def random(
        cls,
        batch: int,
        cfg: TPSConfig,
        device: torch.device | None = None,
        generator: torch.Generator | None = None,
    ) -> ThinPlateSpline:
        """Affine = [I | 0] + N(0, σ_affine²), control weights ~ N(0, σ_tps²)."""
        noise = torch.randn(batch, 2, 3, generator=generator, device=device) * cfg.sigma_affine
        affine = torch.eye(2, 3, device=device) + noise
        points = coordinate_grid(cfg.points_tps, cfg.points_tps, device=device).view(-1, 2)
        weights = torch.randn(batch, len(points), 2, generator=generator, device=device)
        return cls(affine, points, weights * cfg.sigma_tps)

    @classmethod
    def identity(cls, batch: int, points_tps: int = 5) -> ThinPlateSpline:
        points = coordinate_grid(points_tps, points_tps).view(-1, 2)
        return cls(
            torch.eye(2, 3).expand(batch, 2, 3).clone(), points, torch.zeros(batch, len(points), 2)
        )

    def _offsets(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z − c_i [B, P, N, 2] and log ‖z − c_i‖² [B, P, N]."""
        offsets = points.unsqueeze(2) - self.control_points.to(points)
        squared = offsets.pow(2).sum(-1)
        return offsets, torch.log(squared.clamp_min(1e-12))

    def warp_coordinates(self, points: torch.Tensor) -> torch.Tensor:
        """T(points) for points [B, P, 2] → [B, P, 2]."""
        affine = self.affine.to(points)
        result = points @ affine[:, :, :2].transpose(1, 2) + affine[:, :, 2].unsqueeze(1)
        offsets, log_squared = self._offsets(points)
        radial = 0.5 * offsets.pow(2).sum(-1) * log_squared  # r² log r = ½ r² log r²
        return result + radial @ self.control_weights.to(points)

    def jacobian(self, points: torch.Tensor) -> torch.Tensor:
        """Analytic ∇T at points [B, P, 2] → [B, P, 2, 2]; ∇_z U = (z − c)(log r² + 1)."""
        offsets, log_squared = self._offsets(points)
        radial_gradient = offsets * (log_squared + 1).unsqueeze(-1)  # [B, P, N, 2]
        tps = torch.einsum("bna,bpnc->bpac", self.control_weights.to(points), radial_gradient)
        return self.affine.to(points)[:, None, :, :2] + tps

    def warp_images(self, images: torch.Tensor) -> torch.Tensor:
        """Y = X∘T: Y(z) = X(T(z)), bilinear with reflection padding (as FOMM)."""
        batch, _, height, width = images.shape
        grid = coordinate_grid(height, width, device=images.device, dtype=images.dtype)
        warped = self.warp_coordinates(grid.view(1, -1, 2).expand(batch, -1, -1))
        return F.grid_sample(
            images,
            warped.view(batch, height, width, 2),
            padding_mode="reflection",
            align_corners=False,
        )


def inverse_2x2(matrices: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of [..., 2, 2] matrices (any dtype, unlike torch.linalg.inv)."""
    a, b = matrices[..., 0, 0], matrices[..., 0, 1]
    c, d = matrices[..., 1, 0], matrices[..., 1, 1]
    adjugate = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
    return adjugate / (a * d - b * c)[..., None, None]


def dense_motion(
    anchors_a: torch.Tensor,
    jacobians_a: torch.Tensor,
    anchors_x: torch.Tensor,
    jacobians_x: torch.Tensor,
    segmentation_a: torch.Tensor,
) -> torch.Tensor:
    """SPEC §2 L_fc (paper Eqs. 3-7): where each position z of A lies in X.

    Part k moves by T_k(z) = s_k^X + J_k^X (J_k^A)⁻¹ (z − s_k^A), anchored at s_k (Eq. 5: the
    segment centroids, or the keypoints — loss.motion_anchor); the background (channel 0)
    stays; the field is the S^A-weighted sum. Anchors [B, K, 2], Jacobians [B, K, 2, 2],
    segmentation_a [B, K+1, h, w] → sampling grid [B, h, w, 2] for ``warp_features``.
    """
    height, width = segmentation_a.shape[-2:]
    grid = coordinate_grid(height, width, device=segmentation_a.device, dtype=anchors_a.dtype)
    local_affine = jacobians_x @ inverse_2x2(jacobians_a)  # [B, K, 2, 2]
    relative = grid.view(1, 1, height, width, 2) - anchors_a.view(*anchors_a.shape[:2], 1, 1, 2)
    parts = torch.einsum("bkij,bkhwj->bkhwi", local_affine, relative)
    parts = parts + anchors_x.view(*anchors_x.shape[:2], 1, 1, 2)
    background = grid.expand(len(parts), 1, height, width, 2)
    motions = torch.cat([background, parts], dim=1)  # [B, K+1, h, w, 2]
    return (segmentation_a.unsqueeze(-1) * motions).sum(1)


def warp_features(feature_map: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """f^{AX} = grid_sample(f^X, T_{X←A}) (paper Eq. 8), border padding."""
    return F.grid_sample(feature_map, grid, padding_mode="border", align_corners=False)
