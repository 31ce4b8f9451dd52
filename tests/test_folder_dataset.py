"""Folder data sets (`--dataset folder`): one folder per person, cameras from sub-folders or
file names, a seeded held-out split usable for training and evaluation."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from trainer.cli import main as trainer_main
from trainer.data import build_dataset
from trainer.data.base import DatasetLayoutError


def write_people(root: Path, people: int = 10) -> Path:
    image = np.full((64, 32, 3), 120, np.uint8)
    for person in range(people):
        folder = root / f"person-{person:02d}"
        if person % 2:  # cameras as sub-folders
            for camera in ("entrance", "lobby"):
                (folder / camera).mkdir(parents=True)
                for shot in range(3):
                    cv2.imwrite(str(folder / camera / f"{shot}.jpg"), image)
        else:  # cameras in the file names
            folder.mkdir(parents=True)
            for camera in (1, 2):
                for shot in range(3):
                    cv2.imwrite(str(folder / f"p_c{camera}_{shot}.jpg"), image)
    return root


def test_a_folder_of_people_splits_into_train_query_and_gallery(tmp_path: Path) -> None:
    root = write_people(tmp_path / "people")
    dataset = build_dataset("folder", root, test_fraction=0.3, seed=1)
    test_ids = {r.pid for r in dataset.query}
    assert len(test_ids) == 3 and dataset.num_train_pids == 7
    assert test_ids == {r.pid for r in dataset.gallery}
    assert set(dataset.train_pid_labels).isdisjoint(test_ids)  # disk ids: no one in both
    assert (
        len(dataset.train) == 7 * 6
        and len(dataset.query) == 3 * 2
        and len(dataset.gallery) == 3 * 4
    )
    # 4 camera names (c1, c2, entrance, lobby) numbered in name order; one query per camera
    assert {r.camid for r in dataset.train} <= {0, 1, 2, 3}
    for pid in test_ids:
        assert len({r.camid for r in dataset.query if r.pid == pid}) == 2
    again = build_dataset("folder", root, test_fraction=0.3, seed=1)
    assert [r.path for r in again.query] == [r.path for r in dataset.query]  # seeded
    other = build_dataset("folder", root, test_fraction=0.3, seed=2)
    assert {r.pid for r in other.query} != test_ids or [r.path for r in other.query] != [
        r.path for r in dataset.query
    ]


def test_a_single_camera_set_still_evaluates_and_bad_folders_are_named(tmp_path: Path) -> None:
    root = tmp_path / "one-camera"
    for person in range(4):
        (root / f"p{person}").mkdir(parents=True)
        for shot in range(3):
            cv2.imwrite(str(root / f"p{person}" / f"{shot}.jpg"), np.zeros((8, 4, 3), np.uint8))
    dataset = build_dataset("folder", root, test_fraction=0.5)
    assert {r.camid for r in dataset.query} == {0} and {r.camid for r in dataset.gallery} == {1}
    with pytest.raises(DatasetLayoutError, match="at least 2 people"):
        build_dataset("folder", tmp_path / "one-camera" / "p0")
    with pytest.raises(ValueError, match="test_fraction"):
        build_dataset("folder", root, test_fraction=1.5)


def test_trainer_data_reads_a_folder_set(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = write_people(tmp_path / "people")
    argv = ["data", "--dataset", "folder", "--root", str(root), "--option", "test_fraction=0.2"]
    assert trainer_main(argv) == 0
    assert "folder" in capsys.readouterr().out


def _held_out_identities(output: str) -> int:
    """# ids of the query row of `trainer data`'s table."""
    row = next(line for line in output.splitlines() if "query" in line)
    return int(row.split("│")[2])


def test_data_set_options_are_key_value_on_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`trainer data` and `trainer eval` take data set options as positional key=value (as
    `trainer train` takes config overrides); `--option` stays for `trainer data`."""
    from test_training import TINY_MODEL

    from reid_core import build_model, save

    root = write_people(tmp_path / "people")
    base = ["data", "--dataset", "folder", "--root", str(root)]
    assert trainer_main([*base, "test_fraction=0.5"]) == 0
    assert _held_out_identities(capsys.readouterr().out) == 5
    assert trainer_main([*base, "--option", "test_fraction=0.3"]) == 0
    assert _held_out_identities(capsys.readouterr().out) == 3
    save(build_model(TINY_MODEL).eval(), tmp_path / "m.safetensors")
    argv = ["eval", "--checkpoint", str(tmp_path / "m.safetensors"), "--dataset", "folder"]
    argv += ["--root", str(root), "--out", str(tmp_path / "eval")]
    assert trainer_main([*argv, "test_fraction=0.5", "seed=3"]) == 0
    assert trainer_main([*argv, "test_fractio=0.5"]) == 2  # a wrong option is named
    assert "test_fractio" in capsys.readouterr().err


def test_a_model_trains_on_a_folder_set(tmp_path: Path) -> None:
    from test_training import write_tiny_config

    from trainer.engine import train

    root = write_people(tmp_path / "people")
    config = write_tiny_config(tmp_path / "tiny.yaml", {"dataset": "folder", "root": str(root)})
    history = train(config, tmp_path / "run", {"epochs": 1})
    assert np.isfinite(history["total"]) and (tmp_path / "run" / "model_last.safetensors").is_file()
