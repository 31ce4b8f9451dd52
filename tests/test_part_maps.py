"""Part label maps travel with their images: the transform and ImageDataset (SPEC §6)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from reid_core.parts import BODY_PART_INDEX, BODY_PARTS, FLIP_BODY_PARTS
from trainer.data import (
    ImageDataset,
    ImageRecord,
    ReIDTransform,
    TransformConfig,
    UnreadableImageError,
    build_dataset,
)
from trainer.data.image_dataset import read_part_map, read_rgb
from trainer.synth.reid_set import encode_part_map

HEIGHT, WIDTH = 64, 32
NO_AUGMENT = {"flip_prob": 0.0, "pad": 0, "erasing_prob": 0.0}


def colour_coded(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 2×-size source image whose red channel is 10 × the label of its part map, in 2×2
    blocks (so bilinear and nearest resizing agree exactly); blue marks the left half."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, len(BODY_PARTS), (HEIGHT, WIDTH), dtype=np.uint8)
    labels = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)
    image = np.zeros((*labels.shape, 3), np.uint8)
    image[..., 0] = labels * 10
    image[..., 1] = 90
    image[:, :WIDTH, 2] = 250
    return image, labels


def denormalise(tensor: torch.Tensor, config: TransformConfig) -> np.ndarray:
    mean = torch.tensor(config.mean).view(3, 1, 1)
    std = torch.tensor(config.std).view(3, 1, 1)
    return torch.round((tensor * std + mean) * 255).permute(1, 2, 0).numpy()


def test_test_transform_resizes_the_map_with_its_image() -> None:
    config = TransformConfig(height=HEIGHT, width=WIDTH)
    image, labels = colour_coded()
    tensor, joints, part_map = ReIDTransform(config, False)(image, part_map=labels)
    assert joints is None
    assert part_map.dtype == torch.uint8 and part_map.shape == (HEIGHT, WIDTH)
    assert np.array_equal(denormalise(tensor, config)[..., 0], part_map.numpy() * 10.0)
    assert np.array_equal(part_map.numpy(), labels[1::2, 1::2])
    # no map, the old two values
    assert len(ReIDTransform(config, False)(image)) == 2


def test_train_transform_keeps_map_and_image_aligned() -> None:
    """Flip, pad + crop and erasing, drawn at random: the map always equals the colour code
    (relabelled left ↔ right when flipped) outside the erased rectangle, 0 inside it."""
    config = TransformConfig(height=HEIGHT, width=WIDTH, pad=6)
    transform = ReIDTransform(config, True)
    image, labels = colour_coded(1)
    torch.manual_seed(0)
    flips = erased = padded = 0
    for _ in range(60):
        tensor, _, part_map = transform(image, part_map=labels)
        pixels = denormalise(tensor, config)
        labels_out = part_map.numpy()
        erase = (tensor == 0).all(dim=0).numpy()
        blue = pixels[..., 2]
        flipped = blue[:, -WIDTH // 4 :].mean() > blue[:, : WIDTH // 4].mean()
        code = (pixels[..., 0] / 10).astype(np.uint8)
        expected = FLIP_BODY_PARTS[code] if flipped else code
        assert np.array_equal(labels_out[~erase], expected[~erase])
        assert not labels_out[erase].any()
        flips += flipped
        erased += erase.any()
        padded += (pixels[..., 1] == 0).any()  # green is 90 on every image pixel
    assert 10 < flips < 50 and 10 < erased < 50 and padded > 40


def test_flip_swaps_right_and_left_parts() -> None:
    config = TransformConfig(height=HEIGHT, width=WIDTH, **{**NO_AUGMENT, "flip_prob": 1.0})
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    labels[10:30, 2:8] = BODY_PART_INDEX["right_upper_arm"]  # on the image's left
    labels[40:60, 20:30] = BODY_PART_INDEX["left_foot"]
    labels[0:10, 10:20] = BODY_PART_INDEX["head"]
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    _, _, flipped = ReIDTransform(config, True)(image, part_map=labels)
    flipped = flipped.numpy()
    assert (flipped[10:30, WIDTH - 8 : WIDTH - 2] == BODY_PART_INDEX["left_upper_arm"]).all()
    assert (flipped[40:60, WIDTH - 30 : WIDTH - 20] == BODY_PART_INDEX["right_foot"]).all()
    assert (flipped[0:10, WIDTH - 20 : WIDTH - 10] == BODY_PART_INDEX["head"]).all()
    assert np.count_nonzero(flipped) == np.count_nonzero(labels)


def test_bad_maps_are_refused() -> None:
    transform = ReIDTransform(TransformConfig(height=HEIGHT, width=WIDTH), False)
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    with pytest.raises(ValueError, match="image's size"):
        transform(image, part_map=np.zeros((HEIGHT, WIDTH + 1), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        transform(image, part_map=np.zeros((HEIGHT, WIDTH), np.int64))
    with pytest.raises(ValueError, match="label 17"):
        transform(image, part_map=np.full((HEIGHT, WIDTH), 17, np.uint8))


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.synth.reid_set import ReidSetConfig, write_reid_set

    root = tmp_path_factory.mktemp("parts") / "synth"
    config = ReidSetConfig(identities=4, cameras=2, seed=3, images_per_camera=(2, 3))
    write_reid_set(config, root, workers=1, show_progress=False)
    return root


def test_dataset_returns_the_rendered_maps(synthetic_set: Path) -> None:
    dataset = build_dataset("synthetic", synthetic_set)
    record = dataset.train[0]
    assert record.extras["part_map"].is_absolute() and record.extras["part_map"].is_file()
    config = TransformConfig()  # 256×128: the rendered size, so no resize
    samples = ImageDataset(dataset.train, ReIDTransform(config, False), part_maps=True)
    sample = samples[0]
    rendered = read_part_map(record.extras["part_map"])
    assert sample["part_map"].dtype == torch.uint8
    assert np.array_equal(sample["part_map"].numpy(), rendered)
    assert np.array_equal(denormalise(sample["image"], config), read_rgb(record.path))
    batch = next(iter(DataLoader(samples, batch_size=3)))
    assert batch["part_map"].shape == (3, 256, 128) and batch["part_map"].dtype == torch.uint8
    assert "part_map" not in ImageDataset(dataset.train, ReIDTransform(config, False))[0]


def test_dataset_maps_follow_flip_and_crop_with_the_joints(synthetic_set: Path) -> None:
    dataset = build_dataset("synthetic", synthetic_set)
    config = TransformConfig(flip_prob=1.0, erasing_prob=0.0)
    transform = ReIDTransform(config, True, dataset.joint_names)
    samples = ImageDataset(dataset.train + dataset.gallery, transform, part_maps=True)
    head = dataset.joint_names.index("head")
    checked = 0
    torch.manual_seed(0)
    for index in range(len(samples)):
        sample = samples[index]
        x, y, visible = sample["joints"][head].tolist()
        if not visible:
            continue
        u, v = int((x + 1) / 2 * config.width), int((y + 1) / 2 * config.height)
        window = sample["part_map"][max(0, v - 3) : v + 4, max(0, u - 3) : u + 4]
        assert window.eq(BODY_PART_INDEX["head"]).any() or window.eq(BODY_PART_INDEX["neck"]).any()
        checked += 1
    assert checked >= 10


def test_dataset_without_maps_says_so(synthetic_set: Path, tmp_path: Path) -> None:
    dataset = build_dataset("synthetic", synthetic_set)
    transform = ReIDTransform(TransformConfig(), False)
    stripped = [
        ImageRecord(r.path, r.pid, r.camid, {k: v for k, v in r.extras.items() if k != "part_map"})
        for r in dataset.train
    ]
    with pytest.raises(ValueError, match=f"{stripped[0].path.name} has no part label map"):
        ImageDataset(dataset.train[:1] + stripped, transform, part_maps=True)
    ImageDataset(stripped, transform)  # without part_maps=True nothing is asked

    # a set written before part label maps existed still loads, without them
    manifest = synthetic_set / "manifest.jsonl"
    old = tmp_path / "old"
    for folder in ("bounding_box_train", "bounding_box_test", "query", "occluded_query"):
        (old / folder).mkdir(parents=True)
        for path in (synthetic_set / folder).iterdir():
            (old / folder / path.name).write_bytes(path.read_bytes())
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    (old / "manifest.jsonl").write_text(
        "".join(json.dumps({k: v for k, v in e.items() if k != "part_map"}) + "\n" for e in entries)
    )
    (old / "meta.json").write_bytes((synthetic_set / "meta.json").read_bytes())
    old_set = build_dataset("synthetic", old)
    with pytest.raises(ValueError, match="no part label maps"):
        ImageDataset(old_set.train, transform, part_maps=True)


def test_unreadable_map_follows_the_image_policy(synthetic_set: Path, tmp_path: Path) -> None:
    dataset = build_dataset("synthetic", synthetic_set)
    transform = ReIDTransform(TransformConfig(), False)
    first = dataset.train[0]
    same_pid = [r for r in dataset.train if r.pid == first.pid]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    small = tmp_path / "small.png"
    small.write_bytes(encode_part_map(np.zeros((8, 4), np.uint8)))
    for bad in (tmp_path / "missing.png", broken, small):
        records = [
            ImageRecord(first.path, first.pid, first.camid, {**first.extras, "part_map": bad}),
            *same_pid[1:],
        ]
        with pytest.raises(UnreadableImageError, match=bad.name):
            ImageDataset(records, transform, part_maps=True)[0]
        sample = ImageDataset(records, transform, on_error="skip", part_maps=True)[0]
        assert sample["skipped"] == 1 and sample["index"] == 1
