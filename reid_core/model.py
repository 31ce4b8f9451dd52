"""The motion-aware transformer (paper Fig. 2, SPEC §2), assembled from its pieces:

crop ─► backbone F ─► projection + position ─► encoder E ─┬─► GAP ─► f_g ─► BNNeck ─► ID
                                                          │
          2K+1 queries ─► decoder ─► keypoint MLP e_k ─► H_k, p_k, J_k      (motion branch)
                                 └─► segment MLP s_j ─► S ─► f_k, v_k ─► BNNeck ─► ID
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reid_core.backbone import build_backbone
from reid_core.config import ModelConfig, load_model_config
from reid_core.features import ReIDFeatures
from reid_core.heads import (
    PART_MASS_EPS,
    KeypointHead,
    SegmentationHead,
    segment_centroids,
    segmentation_on_grid,
)
from reid_core.transformer import (
    ProjectionWithPosition,
    QueryDecoder,
    build_encoder,
    to_map,
    to_tokens,
)


@dataclass
class TrainOutput:
    """Training-mode output: what the losses need beyond the inference features.

    features:          the ReIDFeatures inference would return (BNNeck outputs)
    global_embedding:  [B, d] pooled E before the BNNeck (triplet loss)
    part_embeddings:   [B, K, d] part features before the BNNeck (triplet loss)
    global_logits:     [B, C] or None when num_classes is 0
    part_logits:       [B, K, C] (per_part), [B, C] (concatenated) or None
    feature_map:       E [B, d, h, w] (L_fc)
    """

    features: ReIDFeatures
    global_embedding: torch.Tensor
    part_embeddings: torch.Tensor
    global_logits: torch.Tensor | None
    part_logits: torch.Tensor | None
    feature_map: torch.Tensor


class BNNeck(nn.BatchNorm1d):
    """BatchNorm1d whose bias stays 0 (Luo et al.'s BNNeck) between embedding and classifier."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features)
        self.bias.requires_grad_(False)


class PartClassifiers(nn.Module):
    """One bias-free linear classifier per part: [B, K, d] → [B, K, C]."""

    def __init__(self, num_parts: int, dim: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_parts, num_classes, dim) * 0.001)

    def forward(self, parts: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bkd,kcd->bkc", parts, self.weight)


def _classifier(dim: int, num_classes: int) -> nn.Linear:
    layer = nn.Linear(dim, num_classes, bias=False)
    nn.init.normal_(layer.weight, std=0.001)
    return layer


class MotionAwareTransformer(nn.Module):
    """SPEC §2.1-2.6. ``eval()`` mode returns ReIDFeatures; ``train()`` mode a TrainOutput.

    With the keypoint branch off (K > 0) keypoints are the part centroids and Jacobians I, so
    the output has the same fields; with K = 0 (baseline) parts are empty and the segmentation
    is one all-ones background channel.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        heads, width = cfg.heads, cfg.transformer
        self.backbone = build_backbone(cfg.backbone)
        self.grid = tuple(size // self.backbone.stride for size in cfg.input_size)
        self.dim = width.d_model if width.projection else self.backbone.out_channels
        self.num_parts = heads.num_parts
        self.projection = (
            ProjectionWithPosition(self.backbone.out_channels, self.dim, self.grid)
            if width.projection
            else None
        )
        self.encoder = build_encoder(width, self.dim) if width.use_encoder else None
        self.part_projection = (
            nn.Conv2d(self.backbone.out_channels, self.dim, kernel_size=1)
            if heads.num_parts and heads.part_source == "backbone"
            else None
        )
        self.has_keypoints = heads.num_parts > 0 and heads.keypoints != "off"
        num_keypoints = heads.num_parts if self.has_keypoints else 0
        self.decoder = self.segmentation_head = self.keypoint_head = None
        self.skip_strides: tuple[int, ...] = ()
        if heads.num_parts > 0:
            self.decoder = QueryDecoder(width, self.dim, num_keypoints, heads.num_parts)
            self.skip_strides = tuple(
                self.backbone.stride // factor
                for factor in (2, 4)
                if factor <= heads.segmentation_upsampling
            )
            self.segmentation_head = SegmentationHead(
                self.dim,
                heads.segmentation_temperature,
                tuple(self.backbone.stages[stride][1] for stride in self.skip_strides),
            )
        if self.has_keypoints:
            self.keypoint_head = KeypointHead(heads, self.dim)
        self.global_neck = BNNeck(self.dim) if cfg.neck.bnneck else nn.Identity()
        self.part_neck = (
            BNNeck(self.num_parts * self.dim) if cfg.neck.bnneck and self.num_parts else None
        )
        self.global_classifier = self.part_classifier = None
        if cfg.num_classes:
            self.global_classifier = _classifier(self.dim, cfg.num_classes)
            if self.num_parts and cfg.loss.part_id == "per_part":
                self.part_classifier = PartClassifiers(self.num_parts, self.dim, cfg.num_classes)
            elif self.num_parts:
                self.part_classifier = _classifier(self.num_parts * self.dim, cfg.num_classes)

    def keypoint_branch_parameters(self) -> Iterator[nn.Parameter]:
        """The keypoint queries and the keypoint/Jacobian head (what ablation #6 freezes)."""
        if self.keypoint_head is None or self.decoder is None:
            return
        yield self.decoder.keypoint_queries
        yield from self.keypoint_head.parameters()

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Backbone → projection + position → encoder (SPEC §2.1-2.3): E [B, d, h, w], the
        map the part features are pooled from (heads.part_source: E, the projected map, or the
        backbone map through the parts' own projection), and the backbone's maps at the finer
        strides the segmentation is drawn through (heads.segmentation_upsampling; else [])."""
        skip_maps: list[torch.Tensor] = []
        if self.skip_strides:
            skip_maps, backbone_map = self.backbone.forward_with_skips(images, self.skip_strides)
        else:
            backbone_map = self.backbone(images)
        feature_map = backbone_map
        projected = feature_map
        if self.projection is not None:
            projected, feature_map = self.projection(feature_map)
        if self.encoder is not None:
            feature_map = to_map(self.encoder(to_tokens(feature_map)), self.grid)
        if self.part_projection is not None:
            share = self.config.heads.part_backbone_gradient
            if share != 1.0:
                backbone_map = scale_gradient(backbone_map, share)
            return feature_map, self.part_projection(backbone_map), skip_maps
        part_source = projected if self.config.heads.part_source == "projection" else feature_map
        return feature_map, part_source, skip_maps

    def _parts(
        self, feature_map: torch.Tensor, part_source: torch.Tensor, skip_maps: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """→ part embeddings [B,K,d] (S-weighted means of ``part_source`` on E's grid),
        visibility [B,K], keypoints, Jacobians, segmentation (from E, finer through skip maps)."""
        batch, dim, height, width = feature_map.shape
        if self.decoder is None:
            return (
                feature_map.new_zeros(batch, 0, dim),
                feature_map.new_zeros(batch, 0),
                feature_map.new_zeros(batch, 0, 2),
                feature_map.new_zeros(batch, 0, 2, 2),
                feature_map.new_ones(batch, 1, height, width),
            )
        keypoint_queries, part_queries = self.decoder(to_tokens(feature_map))
        segmentation = self.segmentation_head(feature_map, part_queries, skip_maps)
        part_maps = segmentation_on_grid(segmentation, (height, width))[:, 1:]
        mass = part_maps.sum((2, 3))  # [B, K] in grid cells
        denominator = mass.unsqueeze(-1) + PART_MASS_EPS
        embeddings = torch.einsum("bkhw,bdhw->bkd", part_maps, part_source) / denominator
        visibility = (mass / self.config.visibility.min_cells).clamp(0.0, 1.0)
        if self.keypoint_head is not None:
            _, keypoints, jacobians = self.keypoint_head(feature_map, keypoint_queries)
        else:
            keypoints = segment_centroids(segmentation)
            jacobians = torch.eye(2, device=feature_map.device).expand(batch, self.num_parts, 2, 2)
        return embeddings, visibility, keypoints, jacobians, segmentation

    def forward(self, images: torch.Tensor) -> ReIDFeatures | TrainOutput:
        feature_map, part_source, skip_maps = self.encode(images)
        global_embedding = feature_map.mean((2, 3))  # f_g = GAP(E)
        part_embeddings, visibility, keypoints, jacobians, segmentation = self._parts(
            feature_map, part_source, skip_maps
        )
        global_features = self.global_neck(global_embedding)
        part_features = part_embeddings
        if self.part_neck is not None:
            part_features = self.part_neck(part_embeddings.flatten(1)).view_as(part_embeddings)
        features = ReIDFeatures(
            global_features, part_features, visibility, keypoints, jacobians, segmentation
        )
        if not self.training:
            return features
        global_logits = part_logits = None
        if self.global_classifier is not None:
            global_logits = self.global_classifier(global_features)
        if isinstance(self.part_classifier, PartClassifiers):
            part_logits = self.part_classifier(part_features)
        elif self.part_classifier is not None:
            part_logits = self.part_classifier(part_features.flatten(1))
        return TrainOutput(
            features, global_embedding, part_embeddings, global_logits, part_logits, feature_map
        )


def scale_gradient(tensor: torch.Tensor, share: float) -> torch.Tensor:
    """``tensor`` in the forward pass; ``share`` × its gradient in the backward pass."""
    if share == 0.0:
        return tensor.detach()
    return tensor * share + tensor.detach() * (1.0 - share)


def build_model(cfg: str | Path | Mapping[str, Any] | ModelConfig) -> MotionAwareTransformer:
    """SPEC §8: a YAML path (``_base_`` resolved), a dict or a ModelConfig → the model."""
    return MotionAwareTransformer(load_model_config(cfg))
