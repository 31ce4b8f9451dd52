"""Training losses (SPEC §2 "Training losses", paper §3.5, Eq. 9):

  L = Lg_id + Lg_tri + Lp_id + Lp_tri + 10·L_eq + 5·L_fc   (weights from ``loss.weights``)

Stated choices where the paper leaves a gap:
- Lp_id: ``per_part`` (default) = one classifier per part, each part's cross-entropy weighted by
  its (detached) visibility so hidden parts are not forced to classify; ``concatenated`` = one
  classifier on the K concatenated part features, unweighted.
- Lp_tri: the occlusion-aware part distance (visibility-weighted mean of per-part distances,
  visibility detached so a model cannot shrink distances by hiding parts), batch-hard.
- L_fc (Eq. 10): ``spatial`` (default, the paper) — each channel of E a distribution over the
  h×w positions, KL(f^A ‖ f^{AX}) summed over positions, averaged over channels; ``channel`` —
  a distribution over channels at each position, the KL averaged with weights 1 − S^A_0 (or
  S^A_0 < 0.5), detached. Part motion is anchored at the segment centroids (Eq. 5's s^k) or the
  keypoints (``loss.motion_anchor``). Summed over X ∈ {B, C, D}, averaged over identities.
- L_eq's second forward (the warped batch) normalises with its own batch statistics but does
  not move BatchNorm's running statistics: the warped images are not the data the model serves.
- Beyond the paper (weights 0 by default): L_part, the cross-entropy of S against rendered
  body-part maps grouped into K parts (soft targets: each grid cell's share of each part); and
  L_con, SCOPS' concentration term, Σ_z S̄_k(z)‖z − c_k‖² with S̄_k = S_k / Σ_z S_k; L_sep,
  Zhang et al.'s keypoint separation; L_use, KL(prior ‖ mean channel mass) of the segmentation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reid_core.config import ModelConfig, load_model_config
from reid_core.distance import pairwise_distance, part_distance
from reid_core.heads import (
    part_distributions,
    segment_centroids,
    segmentation_on_grid,
    soft_argmax,
)
from reid_core.model import MotionAwareTransformer, TrainOutput
from reid_core.motion import (
    ThinPlateSpline,
    coordinate_grid,
    dense_motion,
    inverse_2x2,
    warp_features,
)
from reid_core.parts import part_targets


def _check_labels(pids: torch.Tensor, num_classes: int) -> None:
    if pids.min() < 0 or pids.max() >= num_classes:
        raise ValueError(
            f"identity labels must lie in [0, num_classes={num_classes}), got "
            f"[{int(pids.min())}, {int(pids.max())}]: set num_classes to the training identities"
        )


def id_loss(logits: torch.Tensor, pids: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Eq. 15 with label smoothing: (1−ε)·CE + ε·mean_c(−log p_c)."""
    _check_labels(pids, logits.shape[-1])
    return F.cross_entropy(logits, pids, label_smoothing=label_smoothing)


def part_id_loss(
    part_logits: torch.Tensor, pids: torch.Tensor, visibility: torch.Tensor, label_smoothing: float
) -> torch.Tensor:
    """Eq. 16. [B, K, C] logits: visibility-weighted mean of per-part CE; [B, C]: plain CE."""
    if part_logits.dim() == 2:
        return id_loss(part_logits, pids, label_smoothing)
    batch, num_parts, num_classes = part_logits.shape
    _check_labels(pids, num_classes)
    per_part = F.cross_entropy(
        part_logits.reshape(-1, num_classes),
        pids.repeat_interleave(num_parts),
        label_smoothing=label_smoothing,
        reduction="none",
    ).view(batch, num_parts)
    weights = visibility.detach()
    return (weights * per_part).sum() / weights.sum().clamp_min(1e-6)


def batch_hard_triplet_loss(distances: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
    """Eq. 17, soft margin log(1 + exp(d(a,p) − d(a,n))) with the hardest positive (farthest,
    other than a itself) and hardest negative (closest) of each anchor. Anchors with no positive
    or no negative are left out; with none left the loss is 0."""
    same = pids.unsqueeze(0) == pids.unsqueeze(1)
    positives = same & ~torch.eye(len(pids), dtype=torch.bool, device=pids.device)
    hardest_positive = distances.masked_fill(~positives, float("-inf")).amax(1)
    hardest_negative = distances.masked_fill(same, float("inf")).amin(1)
    valid = positives.any(1) & (~same).any(1)
    if not valid.any():
        return distances.sum() * 0.0
    return F.softplus(hardest_positive[valid] - hardest_negative[valid]).mean()


def equivariance_loss(
    keypoints_x: torch.Tensor,
    jacobians_x: torch.Tensor,
    keypoints_y: torch.Tensor,
    jacobians_y: torch.Tensor,
    warp: ThinPlateSpline,
) -> torch.Tensor:
    """Eq. 14 (First Order Motion Model) for Y = X∘T: ‖p^X − T(p^Y)‖₁ +
    ‖(J^X)⁻¹ ∇T(p^Y) J^Y − I‖₁, each a mean over batch, keypoints and coordinates.
    Computed in float32 whatever the autocast dtype: these are geometric quantities."""
    keypoints_x, jacobians_x = keypoints_x.float(), jacobians_x.float()
    keypoints_y, jacobians_y = keypoints_y.float(), jacobians_y.float()
    value = (keypoints_x - warp.warp_coordinates(keypoints_y)).abs().mean()
    composed = inverse_2x2(jacobians_x) @ warp.jacobian(keypoints_y) @ jacobians_y
    identity = torch.eye(2, device=composed.device, dtype=composed.dtype)
    return value + (composed - identity).abs().mean()


def feature_consistency_loss(
    feature_a: torch.Tensor,
    feature_ax: torch.Tensor,
    background_a: torch.Tensor,
    softmax: str = "spatial",
    foreground: str = "weighted",
) -> torch.Tensor:
    """Eq. 10 per pair, KL(f^A ‖ f^{AX}) for [P, d, h, w] maps → [P].

    ``spatial``: each channel a softmax over the h·w positions, the KL summed over positions
    and averaged over channels (background_a unused). ``channel``: a softmax over channels at
    each position, the KL averaged over A's foreground (background_a [P, h, w] = S^A_0)."""
    if softmax == "spatial":
        log_a = feature_a.float().flatten(2).log_softmax(-1)
        log_ax = feature_ax.float().flatten(2).log_softmax(-1)
        return (log_a.exp() * (log_a - log_ax)).sum(-1).mean(-1)
    log_a = feature_a.float().log_softmax(1)
    log_ax = feature_ax.float().log_softmax(1)
    divergence = (log_a.exp() * (log_a - log_ax)).sum(1)  # [P, h, w]
    background = background_a.detach()
    weights = 1.0 - background if foreground == "weighted" else (background < 0.5).to(log_a)
    return (weights * divergence).sum((1, 2)) / weights.sum((1, 2)).clamp_min(1e-6)


def concentration_loss(segmentation: torch.Tensor) -> torch.Tensor:
    """SCOPS' concentration term: each foreground part's spatial variance around its own
    centroid, Σ_z S̄_k(z)‖z − c_k‖² (S̄_k = S_k normalised over z), mean over parts and images.
    A part spread over the whole crop pays the most; a compact one little."""
    normalised = part_distributions(segmentation[:, 1:].float())
    grid = coordinate_grid(*normalised.shape[-2:], device=normalised.device, dtype=normalised.dtype)
    centroids = soft_argmax(normalised)  # [B, K, 2]
    offsets = grid.view(1, 1, *grid.shape) - centroids.view(*centroids.shape[:2], 1, 1, 2)
    return (normalised * offsets.pow(2).sum(-1)).sum((2, 3)).mean()


def keypoint_separation_loss(keypoints: torch.Tensor, sigma: float) -> torch.Tensor:
    """Zhang et al. (2018): Σ_{k≠l} exp(−‖p_k − p_l‖² / 2σ²) / (K(K−1)), mean over images;
    1 when every keypoint sits on one point, → 0 as they spread."""
    num = keypoints.shape[1]
    if num < 2:
        return keypoints.sum() * 0.0
    squared = (keypoints.unsqueeze(2) - keypoints.unsqueeze(1)).pow(2).sum(-1).float()
    pairs = torch.exp(-squared / (2 * sigma**2))
    off_diagonal = pairs.sum((1, 2)) - num
    return (off_diagonal / (num * (num - 1))).mean()


def part_usage_loss(segmentation: torch.Tensor, background_prior: float) -> torch.Tensor:
    """KL(prior ‖ mass) between a prior over the K+1 channels (background_prior, then an even
    share of the rest per part) and the batch's mean channel mass of S."""
    num_parts = segmentation.shape[1] - 1
    prior = segmentation.new_full((num_parts + 1,), (1 - background_prior) / num_parts).float()
    prior[0] = background_prior
    mass = segmentation.float().mean((0, 2, 3)).clamp_min(1e-8)
    return (prior * (prior.log() - mass.log())).sum()


def part_supervision_loss(segmentation: torch.Tensor, part_maps: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the K+1 segmentation [B, K+1, h, w] against body-part label maps
    [B, H, W] (reid_core.parts labels, grouped into K parts; soft targets = each cell's share
    of each part), mean over cells and images."""
    num_parts = segmentation.shape[1] - 1
    targets = part_targets(part_maps, num_parts, tuple(segmentation.shape[-2:]))
    log_probabilities = segmentation.float().clamp_min(1e-8).log()
    return -(targets * log_probabilities).sum(1).mean()


@contextmanager
def frozen_batchnorm_statistics(model: nn.Module) -> Iterator[None]:
    """Inside: BatchNorm layers still normalise with the batch's statistics (train mode) but
    their running mean/variance do not move (momentum 0)."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        yield
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum


def keypoint_supervision_loss(keypoints: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
    """Ablation #6: L1 between predicted keypoints [B, K, 2] and given joints [B, K, 3]
    ((x, y) in [-1, 1], visible flag), averaged over visible joints."""
    if joints.shape != (*keypoints.shape[:2], 3):
        raise ValueError(
            f"joints have shape {tuple(joints.shape)}, expected {(*keypoints.shape[:2], 3)} "
            "((x, y, visible) per keypoint; heads.num_parts must equal the joint count)"
        )
    keypoints, joints = keypoints.float(), joints.float()
    visible = joints[..., 2:]
    error = (keypoints - joints[..., :2]).abs() * visible
    return error.sum() / (2 * visible.sum()).clamp_min(1.0)


def _unwrap(model: nn.Module) -> MotionAwareTransformer:
    inner = getattr(model, "module", model)  # DistributedDataParallel
    if not isinstance(inner, MotionAwareTransformer):
        raise TypeError(f"expected a MotionAwareTransformer, got {type(inner).__name__}")
    return inner


def freeze_keypoint_branch(model: nn.Module) -> None:
    """Ablation #6, second stage: the supervised keypoint queries and head stop learning."""
    for parameter in _unwrap(model).keypoint_branch_parameters():
        parameter.requires_grad_(False)


def _keypoint_branch_frozen(model: nn.Module) -> bool:
    return not any(p.requires_grad for p in _unwrap(model).keypoint_branch_parameters())


class MotionAwareLoss:
    """Every term of Eq. 9 from one batch; ``loss(model, images, pids, joints=None,
    part_maps=None)`` returns each unweighted term and 'total' (the weighted sum). Terms whose
    branch is off or whose weight is 0 are absent. L_eq runs the second forward on the
    TPS-warped batch itself. ``part_maps`` [B, H, W] (body-part labels) feed L_part."""

    def __init__(
        self,
        cfg: ModelConfig | str | Path | Mapping[str, Any],
        generator: torch.Generator | None = None,
    ) -> None:
        self.cfg = load_model_config(cfg)
        self.generator = generator

    def __call__(
        self,
        model: nn.Module,
        images: torch.Tensor,
        pids: torch.Tensor,
        joints: torch.Tensor | None = None,
        part_maps: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        return self.compute(model, images, pids, joints, part_maps)[0]

    def compute(
        self,
        model: nn.Module,
        images: torch.Tensor,
        pids: torch.Tensor,
        joints: torch.Tensor | None = None,
        part_maps: torch.Tensor | None = None,
    ) -> tuple[dict[str, torch.Tensor], TrainOutput]:
        """As ``__call__``, also returning the model's TrainOutput (for accuracy logging)."""
        if not model.training:
            raise ValueError("MotionAwareLoss needs the model in train() mode")
        loss_cfg, heads = self.cfg.loss, self.cfg.heads
        weights = loss_cfg.weights
        output: TrainOutput = model(images)
        features = output.features
        visibility = features.visibility.detach()
        terms: dict[str, torch.Tensor] = {}
        if weights.id_global:
            terms["id_global"] = id_loss(
                self._logits(output.global_logits), pids, loss_cfg.label_smoothing
            )
        if weights.tri_global:
            embedding = output.global_embedding
            distances = pairwise_distance(embedding, embedding, loss_cfg.triplet_distance)
            terms["tri_global"] = batch_hard_triplet_loss(distances, pids)
        if heads.num_parts and weights.id_parts:
            terms["id_parts"] = part_id_loss(
                self._logits(output.part_logits), pids, visibility, loss_cfg.label_smoothing
            )
        if heads.num_parts and weights.tri_parts:
            parts = output.part_embeddings
            distances = part_distance(
                parts, visibility, parts, visibility, loss_cfg.triplet_distance
            )
            terms["tri_parts"] = batch_hard_triplet_loss(distances, pids)
        if heads.num_parts and heads.keypoints == "self_supervised" and weights.equivariance:
            terms["equivariance"] = self._equivariance(model, images, output)
        if heads.num_parts and heads.keypoints == "pretrained":
            if joints is not None and weights.keypoint_supervision:
                terms["keypoint_supervision"] = keypoint_supervision_loss(
                    features.keypoints, joints
                )
            elif joints is None and not _keypoint_branch_frozen(model):
                raise ValueError(
                    "heads.keypoints 'pretrained' learns from given joints: pass joints "
                    "[B, K, 3], or call freeze_keypoint_branch(model) once it is trained"
                )
        if heads.num_parts and heads.keypoints != "off" and weights.feature_consistency:
            terms["feature_consistency"] = self._feature_consistency(output, pids)
        if heads.num_parts and weights.part_supervision:
            if part_maps is None:
                raise ValueError(
                    "loss.weights.part_supervision > 0 needs body-part label maps: pass "
                    "part_maps [B, H, W] (the synthetic set's part_maps/, reid_core.parts)"
                )
            terms["part_supervision"] = part_supervision_loss(features.segmentation, part_maps)
        if heads.num_parts and weights.concentration:
            terms["concentration"] = concentration_loss(features.segmentation)
        if heads.num_parts and weights.part_usage:
            terms["part_usage"] = part_usage_loss(features.segmentation, loss_cfg.background_prior)
        if heads.num_parts and heads.keypoints == "self_supervised" and weights.keypoint_separation:
            terms["keypoint_separation"] = keypoint_separation_loss(
                features.keypoints, loss_cfg.separation_sigma
            )
        terms["total"] = sum(
            (getattr(weights, name) * value for name, value in terms.items()),
            images.new_zeros(()),
        )
        return terms, output

    def _logits(self, logits: torch.Tensor | None) -> torch.Tensor:
        if logits is None:
            raise ValueError(
                "the model has no classifier (num_classes 0): set num_classes to the number of "
                "training identities, or the ID loss weights to 0"
            )
        return logits

    def _equivariance(
        self, model: nn.Module, images: torch.Tensor, output: TrainOutput
    ) -> torch.Tensor:
        warp = ThinPlateSpline.random(
            len(images), self.cfg.loss.tps, device=images.device, generator=self.generator
        )
        with frozen_batchnorm_statistics(model):
            warped: TrainOutput = model(warp.warp_images(images))
        x, y = output.features, warped.features
        return equivariance_loss(x.keypoints, x.jacobians, y.keypoints, y.jacobians, warp)

    def _feature_consistency(self, output: TrainOutput, pids: torch.Tensor) -> torch.Tensor:
        """L_fc (Eq. 12): image 0 of each consecutive group is A, the others are X."""
        group = self.cfg.loss.images_per_identity
        if len(pids) % group or (pids.view(-1, group) != pids.view(-1, group)[:, :1]).any():
            raise ValueError(
                f"L_fc needs the batch as consecutive groups of loss.images_per_identity="
                f"{group} images of one identity; got identities {pids.tolist()}"
            )
        index = torch.arange(len(pids), device=pids.device).view(-1, group)
        reference = index[:, :1].expand(-1, group - 1).reshape(-1)
        others = index[:, 1:].reshape(-1)
        features, feature_map = output.features, output.feature_map.float()
        loss_cfg = self.cfg.loss
        segmentation = segmentation_on_grid(
            features.segmentation.float(), tuple(feature_map.shape[-2:])
        )
        if loss_cfg.motion_anchor == "centroid":
            anchors = segment_centroids(segmentation)
        else:
            anchors = features.keypoints.float()
        jacobians = features.jacobians.float()
        grid = dense_motion(
            anchors[reference],
            jacobians[reference],
            anchors[others],
            jacobians[others],
            segmentation[reference],
        )
        per_pair = feature_consistency_loss(
            feature_map[reference],
            warp_features(feature_map[others], grid),
            segmentation[reference, 0],
            loss_cfg.feature_consistency_softmax,
            loss_cfg.feature_consistency_foreground,
        )
        return per_pair.view(-1, group - 1).sum(1).mean()
