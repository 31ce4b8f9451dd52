"""Projection, learned 2-D position embedding, encoder and query decoder (SPEC §2.2-2.4,
paper §3.2 and Eq. 1). Built on torch.nn.Transformer*Layer (batch_first) so ONNX export works."""

from __future__ import annotations

import torch
from torch import nn

from reid_core.config import TransformerConfig


class ProjectionWithPosition(nn.Module):
    """1×1 conv from the backbone's C channels to d_model plus a learned h×w position map."""

    def __init__(self, in_channels: int, d_model: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.project = nn.Conv2d(in_channels, d_model, kernel_size=1)
        self.position = nn.Parameter(torch.zeros(1, d_model, *grid))
        nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, feature_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """→ (the projected map, the projected map + position). The first carries no position,
        so features pooled from it describe appearance alone (heads.part_source)."""
        if feature_map.shape[-2:] != self.position.shape[-2:]:
            raise ValueError(
                f"feature grid {tuple(feature_map.shape[-2:])} does not match the position "
                f"embedding {tuple(self.position.shape[-2:])}: feed crops of the configured "
                "input_size (default 256×128)"
            )
        projected = self.project(feature_map)
        return projected, projected + self.position


def to_tokens(feature_map: torch.Tensor) -> torch.Tensor:
    """[B, d, h, w] → [B, h·w, d] (row-major positions, the order used everywhere)."""
    return feature_map.flatten(2).transpose(1, 2)


def to_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """[B, h·w, d] → [B, d, h, w]."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


def build_encoder(cfg: TransformerConfig, d_model: int) -> nn.TransformerEncoder:
    """SPEC §2.3: stacked self-attention layers over the h·w tokens → E."""
    layer = nn.TransformerEncoderLayer(
        d_model, cfg.nhead, cfg.dim_feedforward, cfg.dropout, batch_first=True
    )
    return nn.TransformerEncoder(layer, cfg.num_encoder_layers, enable_nested_tensor=False)


class QueryDecoder(nn.Module):
    """SPEC §2.4: 2K+1 learned queries (K keypoint queries, K+1 part queries with part 0 the
    background) cross-attend to E. With ``use_decoder`` off the queries pass as they are.

    The two query sets are separate parameters so the keypoint branch can be frozen alone;
    without a keypoint branch there are no keypoint queries (num_keypoints 0).
    """

    def __init__(
        self, cfg: TransformerConfig, d_model: int, num_keypoints: int, num_parts: int
    ) -> None:
        super().__init__()
        self.num_keypoints = num_keypoints
        self.keypoint_queries = nn.Parameter(torch.randn(num_keypoints, d_model))
        self.part_queries = nn.Parameter(torch.randn(num_parts + 1, d_model))
        self.transformer: nn.TransformerDecoder | None = None
        if cfg.use_decoder:
            layer = nn.TransformerDecoderLayer(
                d_model, cfg.nhead, cfg.dim_feedforward, cfg.dropout, batch_first=True
            )
            self.transformer = nn.TransformerDecoder(layer, cfg.num_decoder_layers)

    def forward(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """memory [B, h·w, d] → (keypoint outputs [B, K, d], part outputs [B, K+1, d])."""
        queries = torch.cat([self.keypoint_queries, self.part_queries])
        queries = queries.unsqueeze(0).expand(memory.shape[0], -1, -1)
        if self.transformer is not None:
            queries = self.transformer(queries, memory)
        return queries[:, : self.num_keypoints], queries[:, self.num_keypoints :]
