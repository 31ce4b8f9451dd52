"""Transforms (joints follow flips and crops) and ImageDataset (unreadable images)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch.utils.data import DataLoader

from trainer.data import (
    ImageDataset,
    ImageRecord,
    RandomIdentityBatchSampler,
    ReIDTransform,
    TransformConfig,
    UnreadableImageError,
    build_transforms,
)
from trainer.data.transforms import flip_permutation
from trainer.synth.figure import JOINT_NAMES

RIGHT_WRIST, LEFT_WRIST = JOINT_NAMES.index("right_wrist"), JOINT_NAMES.index("left_wrist")
NECK = JOINT_NAMES.index("neck")
NO_AUGMENT = {"flip_prob": 0.0, "pad": 0, "erasing_prob": 0.0}


def source_joints() -> np.ndarray:
    """Distinct joint positions in a 32×64 (W×H) source image; every third one hidden."""
    return np.array(
        [[2.0 + 2 * j, 3.0 + 4 * j, float(j % 3 != 0)] for j in range(len(JOINT_NAMES))],
        dtype=np.float32,
    )


def test_flip_permutation_swaps_left_and_right() -> None:
    permutation = flip_permutation(JOINT_NAMES)
    assert [JOINT_NAMES[i] for i in permutation][:8] == [
        "head",
        "neck",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
    ]
    with pytest.raises(ValueError, match="left_foot"):
        flip_permutation(["head", "left_foot"])


def test_joints_follow_a_flip_left_right_swapped_x_mirrored() -> None:
    image = np.zeros((64, 32, 3), dtype=np.uint8)
    joints = source_joints()
    plain = ReIDTransform(TransformConfig(height=128, width=64, **NO_AUGMENT), True, JOINT_NAMES)
    flipping = ReIDTransform(
        TransformConfig(height=128, width=64, **{**NO_AUGMENT, "flip_prob": 1.0}), True, JOINT_NAMES
    )
    _, straight = plain(image, joints)
    _, mirrored = flipping(image, joints)
    assert straight is not None and mirrored is not None
    # Resizing alone: x = 2·u/W − 1 with u scaled from the 32-px source to the 64-px output.
    assert torch.allclose(straight[:, 0], torch.from_numpy(2 * joints[:, 0] * 2 / 64 - 1))
    permutation = flip_permutation(JOINT_NAMES)
    assert torch.allclose(mirrored[:, 0], -straight[permutation, 0])
    assert torch.allclose(mirrored[:, 1:], straight[permutation, 1:])
    assert mirrored[LEFT_WRIST, 0] == pytest.approx(-float(straight[RIGHT_WRIST, 0]))


def marker_centre(tensor: torch.Tensor, config: TransformConfig) -> tuple[float, float]:
    """Centroid (u, v) in pixels of the white marker in a normalised output image."""
    red = tensor[0] * config.std[0] + config.mean[0]
    rows, cols = torch.nonzero(red > 0.5, as_tuple=True)
    return float(cols.float().mean()) + 0.5, float(rows.float().mean()) + 0.5


def test_joints_track_the_pixels_through_flip_pad_and_crop() -> None:
    """A white square drawn at the right wrist is where the transformed joints say it is."""
    config = TransformConfig(height=128, width=64, pad=6, erasing_prob=0.0)
    image = np.zeros((64, 32, 3), dtype=np.uint8)
    joints = source_joints()
    joints[RIGHT_WRIST, :2] = (20.0, 30.0)
    image[28:32, 18:22] = 255  # a 4×4 square centred on (20, 30)
    joints[NECK] = (1.0, 1.0, 1.0)  # visible, near the corner: some crops push it out
    transform = ReIDTransform(config, True, JOINT_NAMES)
    seen_flips, neck_cropped_out = set(), 0
    for seed in range(12):
        torch.manual_seed(seed)
        tensor, out = transform(image, joints)
        assert out is not None and out.shape == (14, 3) and out.dtype == torch.float32
        u, v = marker_centre(tensor, config)
        flipped = u < config.width / 2  # unflipped at 40 ± 6 px, flipped at 24 ± 6 px
        seen_flips.add(flipped)
        # After a flip the mirrored person's left wrist is the original right wrist.
        tracked = out[LEFT_WRIST if flipped else RIGHT_WRIST]
        assert (float(tracked[0]) + 1) / 2 * config.width == pytest.approx(u, abs=0.5)
        assert (float(tracked[1]) + 1) / 2 * config.height == pytest.approx(v, abs=0.5)
        # Visibility: the source flag, and off for joints the crop pushed out of the image.
        inside = (out[:, :2].abs() <= 1).all(dim=1)
        source_visible = torch.from_numpy(joints[:, 2] > 0)
        if flipped:
            source_visible = source_visible[flip_permutation(JOINT_NAMES)]
        assert torch.equal(out[:, 2].bool(), source_visible & inside)
        neck_cropped_out += int(not inside[NECK])
    assert seen_flips == {True, False}
    assert neck_cropped_out > 0


def test_test_transform_is_deterministic_and_normalised() -> None:
    _, test_tf = build_transforms(TransformConfig(height=32, width=16))
    image = np.full((64, 32, 3), (124, 116, 104), dtype=np.uint8)  # ≈ ImageNet mean colour
    first, _ = test_tf(image)
    second, _ = test_tf(image)
    assert first.shape == (3, 32, 16)
    assert torch.equal(first, second)
    assert first.abs().max() < 0.02


def test_test_transform_matches_the_runtime_preprocessing() -> None:
    """Training/evaluation and deployment must feed the model the same numbers."""
    from reid_core.runtime.preprocess import preprocess_crops

    rgb = np.random.default_rng(0).integers(0, 256, (97, 41, 3), dtype=np.uint8)
    _, test_tf = build_transforms()
    ours, _ = test_tf(rgb)
    runtime = preprocess_crops([np.ascontiguousarray(rgb[:, :, ::-1])])[0]
    assert ours.shape == runtime.shape == (3, 256, 128)
    assert torch.allclose(ours, runtime, atol=1e-5)


def test_random_erasing_is_applied_in_training() -> None:
    config = TransformConfig(height=64, width=32, flip_prob=0.0, pad=0, erasing_prob=1.0)
    image = np.full((64, 32, 3), 255, dtype=np.uint8)
    torch.manual_seed(0)
    tensor, _ = ReIDTransform(config, True)(image)
    erased = (tensor == 0).all(dim=0)  # erased pixels take the value 0 = the mean colour
    assert 0.02 * 64 * 32 <= erased.sum() <= 0.4 * 64 * 32


def test_lower_resolution_blurs_the_crop_and_keeps_its_geometry() -> None:
    """A far-away view: the crop loses its fine detail (a 1-px checkerboard averages to grey)
    while joints stay where they were; off (the paper's recipe) the pixels are untouched."""
    checker = np.indices((128, 64)).sum(axis=0) % 2 * 255
    image = np.repeat(checker[:, :, None], 3, axis=2).astype(np.uint8)
    joints = source_joints() * 2  # in this 64×128 image
    far = TransformConfig(height=128, width=64, low_res_prob=1.0, **NO_AUGMENT)
    near = TransformConfig(height=128, width=64, **NO_AUGMENT)
    torch.manual_seed(0)
    blurred, far_joints = ReIDTransform(far, True, JOINT_NAMES)(image, joints)
    sharp, near_joints = ReIDTransform(near, True, JOINT_NAMES)(image, joints)
    std = torch.tensor(far.std).view(3, 1, 1)
    assert (sharp * std).std() > 0.45  # ±0.5 around the mean: the checkerboard's contrast
    assert (blurred * std).std() < 0.1  # averaged away at 24-64 px tall
    assert torch.equal(far_joints, near_joints)
    with pytest.raises(ValidationError, match="low_res_heights"):
        TransformConfig(low_res_heights=(2, 64))


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError, match="flip_prob"):
        TransformConfig(flip_prob=1.5)
    with pytest.raises(ValidationError, match="erasing_scale"):
        TransformConfig(erasing_scale=(0.5, 0.1))
    with pytest.raises(ValidationError, match="bogus"):
        TransformConfig(bogus=1)


def test_flip_needs_joint_names() -> None:
    transform = ReIDTransform(TransformConfig(**{**NO_AUGMENT, "flip_prob": 1.0}), True)
    with pytest.raises(ValueError, match="joint_names"):
        transform(np.zeros((8, 4, 3), dtype=np.uint8), source_joints())


def make_records(tmp_path: Path, with_joints: bool = False) -> list[ImageRecord]:
    """Identities 0 and 1 with three images each; the first image of identity 0 is corrupt."""
    records = []
    for pid in (0, 1):
        for n in range(3):
            path = tmp_path / f"{pid}_{n}.jpg"
            if (pid, n) == (0, 0):
                path.write_bytes(b"not a jpeg")
            else:
                assert cv2.imwrite(str(path), np.full((16, 8, 3), 40 * n + 10, dtype=np.uint8))
            extras = {"joints": source_joints().tolist()} if with_joints else {}
            records.append(ImageRecord(path, pid, n % 2, extras))
    return records


SMALL = TransformConfig(height=32, width=16, erasing_prob=0.0, pad=2)


def test_unreadable_image_raise_mode_names_the_path(tmp_path: Path) -> None:
    records = make_records(tmp_path)
    dataset = ImageDataset(records, ReIDTransform(SMALL, False))
    with pytest.raises(UnreadableImageError, match="0_0.jpg"):
        dataset[0]
    sample = dataset[1]
    assert sample["image"].shape == (3, 32, 16)
    assert (sample["pid"], sample["camid"], sample["index"], sample["skipped"]) == (0, 1, 1, 0)


def test_unreadable_image_raise_mode_inside_a_worker(tmp_path: Path) -> None:
    dataset = ImageDataset(make_records(tmp_path), ReIDTransform(SMALL, False))
    loader = DataLoader(dataset, batch_size=2, num_workers=1)
    with pytest.raises(UnreadableImageError, match="0_0.jpg"):
        list(loader)


def test_unreadable_image_skip_mode_counts_and_keeps_identity(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dataset = ImageDataset(make_records(tmp_path), ReIDTransform(SMALL, False), on_error="skip")
    with caplog.at_level(logging.WARNING):
        sample = dataset[0]
    assert (sample["pid"], sample["index"], sample["skipped"]) == (0, 1, 1)
    assert dataset.num_skipped == 1
    assert "0_0.jpg" in caplog.text
    assert [dataset[i]["skipped"] for i in range(1, 6)] == [0] * 5


def test_identity_with_no_readable_image_fails_clearly(tmp_path: Path) -> None:
    records = make_records(tmp_path)
    for record in records[:3]:
        record.path.write_bytes(b"")
    dataset = ImageDataset(records, ReIDTransform(SMALL, False), on_error="skip")
    with pytest.raises(UnreadableImageError, match="identity 0"):
        dataset[2]
    with pytest.raises(ValueError, match="on_error='ignore'"):
        ImageDataset(records, ReIDTransform(SMALL, False), on_error="ignore")  # type: ignore[arg-type]


def test_missing_file_is_named(tmp_path: Path) -> None:
    record = ImageRecord(tmp_path / "gone.jpg", 3, 0)
    with pytest.raises(UnreadableImageError, match="gone.jpg"):
        ImageDataset([record], ReIDTransform(SMALL, False))[0]


def test_mixed_joint_records_are_rejected(tmp_path: Path) -> None:
    records = make_records(tmp_path, with_joints=True)
    records[4] = ImageRecord(records[4].path, 1, 0)
    with pytest.raises(ValueError, match="all or none"):
        ImageDataset(records, ReIDTransform(SMALL, False))


def test_sampled_batches_through_a_dataloader(tmp_path: Path) -> None:
    train_tf, _ = build_transforms(SMALL, JOINT_NAMES)
    dataset = ImageDataset(make_records(tmp_path, with_joints=True), train_tf, on_error="skip")
    sampler = RandomIdentityBatchSampler(dataset.pids, num_identities=2, num_instances=2, seed=1)
    batches = list(DataLoader(dataset, batch_sampler=sampler))
    assert len(batches) == len(sampler) >= 1
    for batch in batches:
        assert batch["image"].shape == (4, 3, 32, 16)
        assert batch["joints"].shape == (4, 14, 3)
        pids = batch["pid"].tolist()
        assert pids[0] == pids[1] and pids[2] == pids[3] and pids[0] != pids[2]
