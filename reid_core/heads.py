"""Keypoint and segmentation heads (SPEC §2.5, paper §3.3-3.4).

Two MLPs with a sigmoid output turn decoder outputs into K keypoint embeddings e_k and K+1
segment embeddings s_j; each is multiplied with the encoder map E:
  H_k = softmax_z(E(z)·e_k / (√d·τ)),  p_k = Σ_z H_k(z)·z  (soft-argmax),
  S   = softmax_j(E(z)·s_j / (√d·τ_s)) over the K+1 parts (channel 0 = background).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reid_core.config import HeadsConfig
from reid_core.motion import coordinate_grid


def embedding_mlp(d_model: int) -> nn.Sequential:
    """The paper's prediction head: an MLP with a sigmoid output (§3.2)."""
    return nn.Sequential(
        nn.Linear(d_model, d_model),
        nn.ReLU(inplace=True),
        nn.Linear(d_model, d_model),
        nn.Sigmoid(),
    )


PART_MASS_EPS = 1e-6


def part_distributions(part_maps: torch.Tensor) -> torch.Tensor:
    """Each part map of [B, K, h, w] as a distribution over the h·w positions:
    S_k / (Σ_z S_k + ε)."""
    return part_maps / (part_maps.sum((2, 3), keepdim=True) + PART_MASS_EPS)


def segment_centroids(segmentation: torch.Tensor) -> torch.Tensor:
    """Eq. 5's s^k: first moments Σ_z S_k(z)·z / Σ_z S_k(z) of the K foreground parts of a
    [B, K+1, h, w] segmentation → [B, K, 2] in [-1, 1]."""
    return soft_argmax(part_distributions(segmentation[:, 1:]))


def soft_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """Expected (x, y) of [B, K, h, w] probability maps, in the [-1, 1] cell-centre convention
    of ``F.grid_sample(align_corners=False)``."""
    grid = coordinate_grid(*heatmaps.shape[-2:], device=heatmaps.device, dtype=heatmaps.dtype)
    return torch.einsum("bkhw,hwc->bkc", heatmaps, grid)


def embedding_logits(feature_map: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """E [B, d, h, w] · embeddings [B, N, d] / √d → [B, N, h, w] (Eq. 1's scaling)."""
    return torch.einsum("bdhw,bnd->bnhw", feature_map, embeddings) / math.sqrt(feature_map.shape[1])


class KeypointHead(nn.Module):
    """K keypoints with their 2×2 Jacobians (First Order Motion Model's local affine motion).

    Jacobians start at the identity: ``query`` mode predicts them from the keypoint decoder
    output with a zero-initialised last layer plus I; ``heatmap_pooled`` predicts 4K Jacobian
    maps from E (zero weights, identity bias) and pools them with H_k as weights.
    """

    def __init__(self, cfg: HeadsConfig, d_model: int) -> None:
        super().__init__()
        self.num_parts = cfg.num_parts
        self.temperature = cfg.heatmap_temperature
        self.jacobian_mode = cfg.jacobian
        self.embed = embedding_mlp(d_model)
        identity = torch.eye(2).flatten()
        if cfg.jacobian == "query":
            last = nn.Linear(d_model, 4)
            self.jacobian = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(inplace=True), last)
        else:
            last = nn.Conv2d(d_model, 4 * cfg.num_parts, kernel_size=1)
            self.jacobian = last
            identity = identity.repeat(cfg.num_parts)
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(identity)

    def forward(
        self, feature_map: torch.Tensor, keypoint_queries: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """→ heatmaps [B, K, h, w], keypoints [B, K, 2], jacobians [B, K, 2, 2]."""
        batch, _, height, width = feature_map.shape
        logits = embedding_logits(feature_map, self.embed(keypoint_queries)) / self.temperature
        heatmaps = logits.flatten(2).softmax(-1).view(batch, self.num_parts, height, width)
        keypoints = soft_argmax(heatmaps)
        if self.jacobian_mode == "query":
            jacobians = self.jacobian(keypoint_queries)
        else:
            maps = self.jacobian(feature_map).view(batch, self.num_parts, 4, height, width)
            jacobians = torch.einsum("bkhw,bkchw->bkc", heatmaps, maps)
        return heatmaps, keypoints, jacobians.view(batch, self.num_parts, 2, 2)


class SegmentationHead(nn.Module):
    """K+1 part probability maps; channel 0 is the background.

    With ``skip_channels`` (heads.segmentation_upsampling, coarse to fine) the maps are drawn
    on the finest skip's grid, as a U-Net decoder does: per skip, the map so far upsampled
    bilinearly to the skip's size plus a zero-initialised 1×1 projection of the skip, so
    training starts from the smooth upsampled segmentation and learns the edges from there.
    """

    def __init__(
        self, d_model: int, temperature: float, skip_channels: tuple[int, ...] = ()
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.embed = embedding_mlp(d_model)
        self.skips = nn.ModuleList(nn.Conv2d(c, d_model, kernel_size=1) for c in skip_channels)
        for skip in self.skips:
            nn.init.zeros_(skip.weight)
            nn.init.zeros_(skip.bias)

    def forward(
        self,
        feature_map: torch.Tensor,
        part_queries: torch.Tensor,
        skip_maps: list[torch.Tensor] | tuple[torch.Tensor, ...] = (),
    ) -> torch.Tensor:
        for projection, skip_map in zip(self.skips, skip_maps, strict=True):
            feature_map = F.interpolate(
                feature_map, size=skip_map.shape[-2:], mode="bilinear", align_corners=False
            ) + projection(skip_map)
        logits = embedding_logits(feature_map, self.embed(part_queries)) / self.temperature
        return logits.softmax(1)


def segmentation_on_grid(segmentation: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A [B, K+1, H, W] segmentation on the coarser h×w grid of E: each cell's mean (still a
    distribution over the K+1 parts); unchanged when it is already on that grid."""
    if tuple(segmentation.shape[-2:]) == tuple(grid):
        return segmentation
    return F.adaptive_avg_pool2d(segmentation, grid)
