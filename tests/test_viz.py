"""Part/keypoint pictures (reid_core.viz) and the `trainer viz` command."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_model import tiny_model_config

from reid_core.checkpoint import save
from reid_core.cli import build_parser, run
from reid_core.features import ReIDFeatures
from reid_core.model import build_model
from reid_core.part_health import part_health
from reid_core.viz import BACKGROUND_BGR, HEADER, draw_parts, panel_size, part_colours


def _features(num_parts: int = 3) -> ReIDFeatures:
    segmentation = torch.zeros(1, num_parts + 1, 16, 8)
    segmentation[0, 0] = 1.0
    segmentation[0, 0, :8] = 0.0
    segmentation[0, 1, :8] = 1.0  # part 1 = upper half
    return ReIDFeatures(
        global_features=torch.zeros(1, 4),
        part_features=torch.zeros(1, num_parts, 4),
        visibility=torch.ones(1, num_parts),
        keypoints=torch.tensor([[[0.0, 0.0], [-0.5, 0.5], [0.5, 0.75]]]),
        jacobians=torch.eye(2).expand(1, num_parts, 2, 2),
        segmentation=segmentation,
    )


def test_draw_parts_colours_parts_and_keypoints(tmp_path: Path) -> None:
    crop = np.full((300, 100, 3), 200, dtype=np.uint8)
    out = tmp_path / "parts.png"
    image = draw_parts([crop], _features(), out)
    assert image.shape == (HEADER + 256, 3 * 128, 3)
    assert np.array_equal(cv2.imread(str(out)), image)
    colours = part_colours(3)
    assert len({tuple(c) for c in colours}) == 3
    parts_panel = image[HEADER:, 128:256]
    assert np.array_equal(parts_panel[40, 60], colours[0])  # upper half = part 1
    assert np.array_equal(parts_panel[220, 60], np.array(BACKGROUND_BGR, dtype=np.uint8))
    crop_panel = image[HEADER:, :128]
    # keypoint 1 at (0, 0): the pixel centre (63.5, 127.5)
    assert np.array_equal(crop_panel[127, 63], colours[0])
    assert np.array_equal(crop_panel[int(0.75 * 128 + 127.5), int(0.5 * 64 + 63.5)], colours[2])
    assert np.array_equal(crop_panel[10, 10], np.array([200, 200, 200], dtype=np.uint8))


def test_trainer_viz_writes_a_png_of_the_expected_size(tmp_path: Path) -> None:
    model = build_model(tiny_model_config(heads={"num_parts": 6}))
    checkpoint = save(model, tmp_path / "model.safetensors")
    folder = tmp_path / "crops"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (120, 50, 3), dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")
    single = tmp_path / "c.png"
    cv2.imwrite(str(single), rng.integers(0, 255, (64, 32, 3), dtype=np.uint8))
    out = tmp_path / "viz" / "parts.png"
    parser = build_parser("trainer", "test", ["trainer.viz"])
    argv = [
        "viz",
        "--checkpoint",
        str(checkpoint),
        "--images",
        str(folder),
        str(single),
        "--out",
        str(out),
    ]
    assert run(parser, argv) == 0
    picture = cv2.imread(str(out))
    # three rows, then the part-health panel of the three crops
    assert picture.shape[1:] == (3 * 128, 3)
    assert picture.shape[0] > HEADER + 3 * 256 + 100
    assert (picture[HEADER + 3 * 256 + 2 :] == 255).mean() > 0.5  # a white panel with text


def test_trainer_viz_runs_a_model_at_its_own_input_size(tmp_path: Path) -> None:
    """A 128×64 model (the demo's size) used to be fed 256×128 crops and fail."""
    model = build_model(tiny_model_config(input_size=[128, 64], heads={"num_parts": 6}))
    checkpoint = save(model, tmp_path / "small.safetensors")
    crop = tmp_path / "crop.jpg"
    cv2.imwrite(str(crop), np.random.default_rng(1).integers(0, 255, (150, 60, 3), np.uint8))
    out = tmp_path / "small.png"
    parser = build_parser("trainer", "test", ["trainer.viz"])
    argv = ["viz", "--checkpoint", str(checkpoint), "--images", str(crop), "--out", str(out)]
    assert run(parser, argv) == 0
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[1] == 3 * 128  # panels keep a 2:1 aspect
    assert picture.shape[0] > HEADER + 256


def test_health_panel_is_drawn_only_when_given() -> None:
    crop = np.full((64, 32, 3), 120, dtype=np.uint8)
    plain = draw_parts([crop], _features())
    figures = part_health(_features())
    with_panel = draw_parts([crop], _features(), health=figures)
    assert with_panel.shape[0] > plain.shape[0] and with_panel.shape[1] == plain.shape[1]
    assert np.array_equal(with_panel[: plain.shape[0]], plain)
    assert draw_parts([crop], _features(), health={}).shape == plain.shape
    narrow = draw_parts([crop], _features(), size=panel_size((384, 128)), health=figures)
    assert narrow.shape[1] == 3 * round(256 * 128 / 384)


def test_trainer_viz_names_an_unreadable_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    parser = build_parser("trainer", "test", ["trainer.viz"])
    argv = [
        "viz",
        "--checkpoint",
        str(tmp_path / "m.safetensors"),
        "--images",
        str(bad),
        "--out",
        str(tmp_path / "o.png"),
    ]
    assert run(parser, argv) == 2
    assert "broken.jpg is not a readable image" in capsys.readouterr().err
