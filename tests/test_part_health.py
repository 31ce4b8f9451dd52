"""Part-health figures (reid_core.part_health) on hand-made segmentations with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reid_core.features import ReIDFeatures
from reid_core.part_health import (
    LABEL_FIGURES,
    PartHealthAccumulator,
    check_targets,
    meets_targets,
    part_health,
)
from reid_core.parts import BODY_PART_INDEX, part_group_names


def features(
    segmentation: torch.Tensor,
    keypoints: torch.Tensor | None = None,
    part_features: torch.Tensor | None = None,
    global_features: torch.Tensor | None = None,
    visibility: torch.Tensor | None = None,
) -> ReIDFeatures:
    n, k1 = segmentation.shape[:2]
    k, d = k1 - 1, 4
    generator = torch.Generator().manual_seed(0)
    return ReIDFeatures(
        global_features=(
            global_features
            if global_features is not None
            else torch.randn(n, d, generator=generator)
        ),
        part_features=(
            part_features
            if part_features is not None
            else torch.randn(n, k, d, generator=generator)
        ),
        visibility=visibility if visibility is not None else torch.ones(n, k),
        keypoints=keypoints if keypoints is not None else torch.zeros(n, k, 2),
        jacobians=torch.eye(2).expand(n, k, 2, 2).clone(),
        segmentation=segmentation,
    )


def block_segmentation(rows: list[int], n: int = 1, width: int = 4) -> torch.Tensor:
    """One-hot [n, K+1, len(rows), width]: grid row r belongs to channel rows[r]."""
    channels = max(rows) + 1
    one_hot = torch.nn.functional.one_hot(torch.tensor(rows), channels).float()  # [h, K+1]
    return one_hot.T[:, :, None].expand(channels, len(rows), width)[None].repeat(n, 1, 1, 1)


def test_one_part_taking_everything() -> None:
    segmentation = torch.zeros(2, 4, 8, 4)
    segmentation[:, 1] = 1.0
    figures = part_health(features(segmentation))
    assert figures["background_fraction"] == 0.0
    assert figures["part_share"] == [1.0, 0.0, 0.0]
    assert figures["largest_part_share"] == 1.0
    assert figures["mass_entropy"] == 0.0
    assert figures["spatial_entropy"] == pytest.approx([1.0, 0.0, 0.0])
    assert figures["confidence"] == 1.0
    checks = check_targets(figures)
    assert checks == {
        "largest_part_share": False,
        "background_fraction": False,
        "spatial_entropy_max": False,
    }
    assert not meets_targets(figures)


def test_uniform_mixture_passes_mass_checks_but_fails_the_spatial_one() -> None:
    segmentation = torch.full((3, 4, 8, 4), 0.25)  # K = 3: every channel 1/4 everywhere
    figures = part_health(features(segmentation))
    assert figures["background_fraction"] == pytest.approx(0.25)
    assert figures["part_share"] == pytest.approx([1 / 3] * 3)
    assert figures["largest_part_share"] == pytest.approx(1 / 3)
    assert figures["mass_entropy"] == pytest.approx(1.0)
    assert figures["spatial_entropy"] == pytest.approx([1.0] * 3)
    assert figures["spatial_entropy_mean"] == pytest.approx(1.0)
    assert figures["spatial_entropy_max"] == pytest.approx(1.0)
    assert figures["confidence"] == pytest.approx(0.25)
    assert check_targets(figures) == {
        "largest_part_share": True,
        "background_fraction": True,
        "spatial_entropy_max": False,
    }
    assert not meets_targets(figures)


def test_parts_on_their_own_blocks_of_cells() -> None:
    # 8×4 grid, background and K = 3 parts on two rows each = 8 cells per part
    segmentation = block_segmentation([0, 0, 1, 1, 2, 2, 3, 3], n=2)
    figures = part_health(features(segmentation))
    expected = math.log(8) / math.log(32)  # = 3/5
    assert figures["spatial_entropy"] == pytest.approx([expected] * 3, abs=1e-12)
    assert figures["spatial_entropy_max"] == pytest.approx(0.6)
    assert figures["background_fraction"] == pytest.approx(0.25)
    assert figures["part_share"] == pytest.approx([1 / 3] * 3)
    assert figures["mass_entropy"] == pytest.approx(1.0)
    assert figures["confidence"] == pytest.approx(1.0)
    assert check_targets(figures) == dict.fromkeys(
        ("largest_part_share", "background_fraction", "spatial_entropy_max"), True
    )
    assert meets_targets(figures)


def label_map() -> np.ndarray:
    """[1, 16, 8] uint8: rows 0-3 background, 4-7 head, 8-11 torso, 12-15 right upper leg —
    for K = 3 the groups 1 (head+neck), 2 (torso, arms), 3 (legs), 32 pixels each."""
    rows = np.repeat(
        [
            BODY_PART_INDEX["background"],
            BODY_PART_INDEX["head"],
            BODY_PART_INDEX["torso"],
            BODY_PART_INDEX["right_upper_leg"],
        ],
        4,
    )
    return np.repeat(rows[None, :, None], 8, axis=2).astype(np.uint8)


def test_perfect_segmentation_in_another_part_order() -> None:
    # learned part 3 on the head, 1 on the torso, 2 on the legs (grid rows ×2 = label rows)
    segmentation = block_segmentation([0, 0, 3, 3, 1, 1, 2, 2])
    figures = part_health(features(segmentation), label_map())
    names = part_group_names(3)
    assert figures["part_miou"] == pytest.approx(1.0)
    assert figures["part_iou"] == pytest.approx([1.0, 1.0, 1.0])
    assert figures["part_purity"] == pytest.approx(1.0)
    assert figures["background_iou"] == pytest.approx(1.0)
    assert figures["part_matching"] == [names[1], names[2], names[0]]


def test_half_wrong_segmentation_has_the_hand_computed_iou() -> None:
    # part 1 = head rows (right); part 2 = torso + upper half of the legs; part 3 = lower legs
    segmentation = block_segmentation([0, 0, 1, 1, 2, 2, 2, 3])
    figures = part_health(features(segmentation), torch.from_numpy(label_map()))
    # |p2| = 48, |p2 ∩ torso| = 32 → IoU 2/3; |p3| = 16 ⊂ legs (32) → IoU 1/2
    assert figures["part_iou"] == pytest.approx([1.0, 2 / 3, 1 / 2])
    assert figures["part_miou"] == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    assert figures["part_purity"] == pytest.approx((32 + 32 + 16) / (32 + 48 + 16))
    assert figures["background_iou"] == pytest.approx(1.0)
    assert figures["part_matching"] == part_group_names(3)
    assert check_targets(figures)["part_miou"]


def test_keypoint_spread_visibility_and_cosines() -> None:
    segmentation = torch.full((2, 3, 4, 2), 1 / 3)
    keypoints = torch.tensor([[[-0.5, 0.0], [0.5, 0.0]], [[0.3, 0.3], [0.3, 0.3]]])
    glob = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    copies = glob[:, None].repeat(1, 2, 1)
    figures = part_health(
        features(
            segmentation,
            keypoints=keypoints,
            part_features=copies,
            global_features=glob,
            visibility=torch.tensor([[1.0, 0.0], [0.5, 0.5]]),
        )
    )
    assert figures["keypoint_spread"] == pytest.approx((0.5 + 0.0) / 2)  # collapsed → 0
    assert figures["visibility"] == pytest.approx([0.75, 0.25])
    assert figures["visibility_mean"] == pytest.approx(0.5)
    assert figures["part_global_cosine"] == pytest.approx(1.0)
    assert figures["part_part_cosine"] == pytest.approx(1.0)

    orthogonal = torch.eye(4)[None, 1:3].repeat(2, 1, 1)  # parts e2, e3 against global e1
    figures = part_health(
        features(
            segmentation,
            part_features=orthogonal,
            global_features=torch.eye(4)[:1].repeat(2, 1),
        )
    )
    assert figures["part_global_cosine"] == pytest.approx(0.0)
    assert figures["part_part_cosine"] == pytest.approx(0.0)


def random_batch(n: int, k: int, seed: int) -> tuple[ReIDFeatures, np.ndarray]:
    generator = torch.Generator().manual_seed(seed)
    out = ReIDFeatures(
        global_features=torch.randn(n, 8, generator=generator),
        part_features=torch.randn(n, k, 8, generator=generator),
        visibility=torch.rand(n, k, generator=generator),
        keypoints=torch.rand(n, k, 2, generator=generator) * 2 - 1,
        jacobians=torch.eye(2).expand(n, k, 2, 2).clone(),
        segmentation=(3 * torch.randn(n, k + 1, 8, 4, generator=generator)).softmax(1),
    )
    labels = np.random.default_rng(seed).integers(0, 17, (n, 32, 16), dtype=np.uint8)
    return out, labels


def test_accumulator_over_batches_equals_one_call_on_the_concatenation() -> None:
    first, first_labels = random_batch(5, 6, seed=1)
    second, second_labels = random_batch(3, 6, seed=2)
    accumulator = PartHealthAccumulator()
    accumulator.update(first, first_labels).update(second, second_labels)
    batched = accumulator.compute()
    whole = part_health(
        ReIDFeatures.cat([first, second]), np.concatenate([first_labels, second_labels])
    )
    assert set(batched) == set(whole) and set(LABEL_FIGURES) <= set(whole)
    for name, value in whole.items():
        if name == "part_matching":
            assert batched[name] == value
        else:
            assert batched[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_global_only_model_and_unsupported_part_counts() -> None:
    assert part_health(features(torch.ones(2, 1, 8, 4))) == {}
    assert PartHealthAccumulator().compute() == {}
    # K = 5 has no body-part grouping: label figures are left out, not an error
    figures = part_health(*random_batch(2, 5, seed=3))
    assert "part_share" in figures and not set(LABEL_FIGURES) & set(figures)
    assert "part_miou" not in check_targets(figures)


def test_bad_label_maps_are_named() -> None:
    batch, labels = random_batch(2, 6, seed=4)
    with pytest.raises(ValueError, match="body-part labels are 0..16"):
        part_health(batch, np.full_like(labels, 40))
    with pytest.raises(ValueError, match="3 label maps for 2 segmentations"):
        part_health(batch, np.zeros((3, 32, 16), np.uint8))
    with pytest.raises(ValueError, match="a batch has K = 3 parts"):
        PartHealthAccumulator().update(batch).update(random_batch(1, 3, seed=5)[0])


def test_training_log_keeps_per_part_lists_in_history_and_scalars_in_tensorboard(
    tmp_path,
) -> None:
    import json
    from types import SimpleNamespace

    from trainer.engine import Trainer

    scalars: dict[str, float] = {}
    stub = SimpleNamespace(
        optimizer=SimpleNamespace(param_groups=[{"name": "all", "lr": 0.01}]),
        writer=SimpleNamespace(add_scalar=lambda tag, value, step: scalars.update({tag: value})),
        out_dir=tmp_path,
    )
    metrics = {
        "mAP": 0.5,
        "cmc": np.array([0.5, 0.75]),
        "part_health/background_fraction": 0.2,
        "part_health/part_share": [0.5, 0.5],
        "part_health/part_matching": ["head+neck", "torso+carried"],
    }
    Trainer._log_epoch(stub, 0, {"images_per_second": 10.0, "step_identities": [[1]]}, metrics)
    record = json.loads((tmp_path / "history.jsonl").read_text())
    assert record["eval"]["part_health/part_share"] == [0.5, 0.5]
    assert record["eval"]["part_health/part_matching"] == ["head+neck", "torso+carried"]
    assert "cmc" not in record["eval"]
    assert scalars["eval/part_health/background_fraction"] == 0.2
    assert scalars["eval/mAP"] == 0.5
    assert not any("part_share" in tag or "matching" in tag for tag in scalars)
