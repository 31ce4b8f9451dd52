"""Data set loaders on tiny trees with the real naming (trainer/data, SPEC §3 and §8)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from rich.console import Console

from reid_core.cli import build_parser, run
from trainer.data import (
    DATASET_NAMES,
    DatasetLayoutError,
    build_dataset,
    dataset_options,
)
from trainer.synth.figure import JOINT_NAMES


def write_image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (16, 8, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), pixels)
    return path


def write_tree(root: Path, files: dict[str, list[str]]) -> Path:
    for folder, names in files.items():
        for i, name in enumerate(names):
            write_image(root / folder / name, seed=i)
    return root


MARKET_FILES = {
    "bounding_box_train": [
        "0002_c1s1_000451_03.jpg",
        "0002_c2s1_000301_01.jpg",
        "0007_c3s1_000551_01.jpg",
        "0007_c6s2_001234_02.jpg",
        "-1_c1s1_000401_03.jpg",
    ],
    "query": ["0010_c1s1_000151_01.jpg", "0011_c2s1_000201_01.jpg"],
    "bounding_box_test": [
        "0010_c2s1_000451_01.jpg",
        "0010_c1s1_000152_01.jpg",
        "0011_c4s2_000501_02.jpg",
        "0000_c1s1_000001_01.jpg",
        "-1_c3s1_000002_01.jpg",
    ],
}
DUKE_FILES = {
    "bounding_box_train": ["0001_c2_f0046182.jpg", "0001_c5_f0051341.jpg", "0003_c1_f0044158.jpg"],
    "query": ["0005_c2_f0046985.jpg"],
    "bounding_box_test": ["0005_c5_f0051781.jpg", "0005_c2_f0046999.jpg", "0009_c3_f0000151.jpg"],
}


@pytest.mark.parametrize("top_folder", ["", "Market-1501-v15.09.15"])
def test_market1501_ids_cameras_junk_and_relabelling(tmp_path: Path, top_folder: str) -> None:
    write_tree(tmp_path / top_folder, MARKET_FILES)
    dataset = build_dataset("market1501", tmp_path)

    assert dataset.root == tmp_path / top_folder
    # Junk is dropped from train; identities 2 and 7 become classifier labels 0 and 1.
    assert dataset.train_pid_labels == {2: 0, 7: 1}
    assert dataset.num_train_pids == 2
    assert sorted(r.pid for r in dataset.train) == [0, 0, 1, 1]
    assert sorted(r.camid for r in dataset.train) == [0, 1, 2, 5]  # c1 c2 c3 c6, 0-based
    assert dataset.num_train_cams == 4
    assert [(r.pid, r.camid) for r in dataset.query] == [(10, 0), (11, 1)]
    # The gallery keeps junk (−1) and distractors (0) for the evaluation protocol.
    assert sorted(r.pid for r in dataset.gallery) == [-1, 0, 10, 10, 11]
    assert all(r.path.is_file() for r in dataset.train + dataset.query + dataset.gallery)


def test_summary_table_counts(tmp_path: Path) -> None:
    dataset = build_dataset("market1501", write_tree(tmp_path, MARKET_FILES))
    console = Console(record=True, width=120)
    console.print(dataset.summary())
    cells = [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in console.export_text().splitlines()
        if line.startswith("│")
    ]
    rows = {row[0]: row[1:] for row in cells}
    assert rows == {"train": ["2", "4", "4"], "query": ["2", "2", "2"], "gallery": ["4", "5", "4"]}


def test_market_root_missing_folder_names_expected_folders(tmp_path: Path) -> None:
    write_tree(tmp_path, {"bounding_box_train": MARKET_FILES["bounding_box_train"]})
    with pytest.raises(DatasetLayoutError) as error:
        build_dataset("market1501", tmp_path)
    message = str(error.value)
    assert "bounding_box_test" in message and "query" in message
    assert "Market-1501-v15.09.15" in message and str(tmp_path) in message


def test_market_loader_on_duke_root_names_first_bad_file(tmp_path: Path) -> None:
    write_tree(tmp_path, DUKE_FILES)
    with pytest.raises(DatasetLayoutError, match="0001_c2_f0046182.jpg"):
        build_dataset("market1501", tmp_path)


def test_missing_root_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="nowhere"):
        build_dataset("dukemtmcreid", tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("name", "top_folder"), [("dukemtmcreid", "DukeMTMC-reID"), ("occluded_duke", "Occluded_Duke")]
)
def test_duke_family(tmp_path: Path, name: str, top_folder: str) -> None:
    write_tree(tmp_path / top_folder, DUKE_FILES)
    dataset = build_dataset(name, tmp_path)
    assert dataset.name == name
    assert dataset.train_pid_labels == {1: 0, 3: 1}
    assert sorted((r.pid, r.camid) for r in dataset.train) == [(0, 1), (0, 4), (1, 0)]
    assert [(r.pid, r.camid) for r in dataset.query] == [(5, 1)]
    assert len(dataset.gallery) == 3


def test_camera_zero_is_rejected(tmp_path: Path) -> None:
    files = {**DUKE_FILES, "query": ["0005_c0_f0046985.jpg"]}
    with pytest.raises(DatasetLayoutError, match="0005_c0_f0046985.jpg"):
        build_dataset("dukemtmcreid", write_tree(tmp_path, files))


def write_msmt(root: Path, train_folder: str, test_folder: str) -> Path:
    lists = {
        "list_train.txt": (train_folder, ["0000/0000_000_01_0303morning_0015_0.jpg 0",
                                           "0000/0000_001_03_0303noon_0020_1.jpg 0",
                                           "0001/0001_000_15_0303afternoon_0003_0.jpg 1"]),
        "list_val.txt": (train_folder, ["0002/0002_000_02_0303morning_0100_0.jpg 2"]),
        "list_query.txt": (test_folder, ["0000/0000_000_04_0113morning_0010_0.jpg 0"]),
        "list_gallery.txt": (test_folder, ["0000/0000_001_07_0113noon_0011_0.jpg 0",
                                            "0001/0001_000_04_0113noon_0040_0.jpg 1"]),
    }  # fmt: skip
    for list_name, (folder, lines) in lists.items():
        for line in lines:
            write_image(root / folder / line.split()[0])
        (root / list_name).write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize(
    ("release", "train_folder", "test_folder"),
    [("MSMT17_V1", "train", "test"), ("MSMT17_V2", "mask_train_v2", "mask_test_v2")],
)
def test_msmt17_releases_and_val_option(
    tmp_path: Path, release: str, train_folder: str, test_folder: str
) -> None:
    write_msmt(tmp_path / release, train_folder, test_folder)
    dataset = build_dataset("msmt17", tmp_path)
    assert dataset.root == tmp_path / release
    assert dataset.num_train_pids == 3 and len(dataset.train) == 4
    assert sorted(r.camid for r in dataset.train) == [0, 1, 2, 14]  # third name field − 1
    # test labels start at 0 on disk; +1 so identity 0 is not read as a distractor
    assert [(r.pid, r.camid) for r in dataset.query] == [(1, 3)]
    assert sorted((r.pid, r.camid) for r in dataset.gallery) == [(1, 6), (2, 3)]

    without_val = build_dataset("msmt17", tmp_path, include_val=False)
    assert without_val.num_train_pids == 2 and len(without_val.train) == 3


def test_msmt17_bad_line_and_missing_image_are_named(tmp_path: Path) -> None:
    root = write_msmt(tmp_path, "train", "test")
    list_path = root / "list_query.txt"
    list_path.write_text("0000/0000_000_04_0113morning_0010_0.jpg\n")
    with pytest.raises(DatasetLayoutError, match=r"list_query.txt:1: expected"):
        build_dataset("msmt17", root)
    list_path.write_text(
        "0000/0000_000_04_0113morning_0010_0.jpg 0\n0000/0000_009_04_0113morning_0099_0.jpg 0\n"
    )
    with pytest.raises(DatasetLayoutError, match=r"list_query.txt:2: listed image .*0099_0.jpg"):
        build_dataset("msmt17", root)


def test_msmt17_wrong_root_names_both_releases(tmp_path: Path) -> None:
    write_tree(tmp_path, MARKET_FILES)
    with pytest.raises(DatasetLayoutError) as error:
        build_dataset("msmt17", tmp_path)
    assert "list_train.txt" in str(error.value) and "mask_train_v2" in str(error.value)


def test_occluded_reid_identity_folders_tif(tmp_path: Path) -> None:
    base = tmp_path / "Occluded_REID"
    for pid in ("001", "002"):
        for n in range(2):
            write_image(base / "occluded_body_images" / pid / f"{pid}_0{n + 1}.tif")
            write_image(base / "whole_body_images" / pid / f"{pid}_0{n + 1}.tif")
    dataset = build_dataset("occluded_reid", tmp_path)
    assert dataset.train == [] and dataset.num_train_pids == 0
    assert sorted((r.pid, r.camid) for r in dataset.query) == [(1, 0), (1, 0), (2, 0), (2, 0)]
    assert {r.camid for r in dataset.gallery} == {1}
    assert sorted({r.pid for r in dataset.gallery}) == [1, 2]


def test_occluded_reid_bad_identity_folder(tmp_path: Path) -> None:
    write_image(tmp_path / "occluded_body_images" / "001" / "001_01.tif")
    write_image(tmp_path / "whole_body_images" / "person_a" / "001_01.tif")
    with pytest.raises(DatasetLayoutError, match="person_a"):
        build_dataset("occluded_reid", tmp_path)


def test_partial_reid_ids_from_file_names(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "partial_body_images": ["001_01.jpg", "001_02.jpg", "060_01.jpg"],
            "whole_body_images": ["001_01.jpg", "060_01.jpg"],
        },
    )
    dataset = build_dataset("partial_reid", tmp_path)
    assert sorted((r.pid, r.camid) for r in dataset.query) == [(1, 0), (1, 0), (60, 0)]
    assert sorted((r.pid, r.camid) for r in dataset.gallery) == [(1, 1), (60, 1)]


def test_partial_reid_bad_file_name(tmp_path: Path) -> None:
    files = {"partial_body_images": ["001_01.jpg", "person.jpg"], "whole_body_images": ["001.jpg"]}
    with pytest.raises(DatasetLayoutError, match="person.jpg"):
        build_dataset("partial_reid", write_tree(tmp_path, files))


@pytest.mark.parametrize(
    ("query_folder", "gallery_folder"),
    [("Probe", "Gallery"), ("partial_body_images", "whole_body_images")],
)
def test_partial_ilids_both_layouts(tmp_path: Path, query_folder: str, gallery_folder: str) -> None:
    files = {query_folder: ["001.jpg", "002.jpg"], gallery_folder: ["001.jpg", "002.jpg"]}
    write_tree(tmp_path / "Partial_iLIDS", files)
    dataset = build_dataset("partial_ilids", tmp_path)
    assert [(r.pid, r.camid) for r in dataset.query] == [(1, 0), (2, 0)]
    assert [(r.pid, r.camid) for r in dataset.gallery] == [(1, 1), (2, 1)]


def test_partial_ilids_wrong_root(tmp_path: Path) -> None:
    write_tree(tmp_path, {"Probe": ["001.jpg"]})
    with pytest.raises(DatasetLayoutError, match="Gallery"):
        build_dataset("partial_ilids", tmp_path)


SYNTH_FILES = {
    "bounding_box_train": [
        "0001_c1s1_000010_00.jpg",
        "0001_c2s1_000020_00.jpg",
        "0001_c2s1_000021_00.jpg",
        "0002_c1s1_000030_00.jpg",
        "0002_c2s1_000040_00.jpg",
        "0003_c1s1_000050_00.jpg",
        "0003_c2s1_000060_00.jpg",
        "0004_c1s1_000070_00.jpg",
        "0004_c2s1_000080_00.jpg",
        "0004_c2s1_000081_00.jpg",
    ],
    "query": ["0005_c1s1_000100_00.jpg", "0006_c2s1_000110_00.jpg"],
    "occluded_query": ["0005_c2s1_000120_00.jpg"],
    "bounding_box_test": [
        "0005_c2s1_000130_00.jpg",
        "0006_c1s1_000140_00.jpg",
        "0000_c1s1_000150_00.jpg",
        "-1_c2s1_000160_00.jpg",
    ],
}
SPLIT_OF_FOLDER = {
    "bounding_box_train": "train",
    "bounding_box_test": "gallery",
    "query": "query",
    "occluded_query": "occluded_query",
}


def write_synthetic(root: Path) -> Path:
    """A synthetic set as `trainer synth reid` writes it: Market layout + manifest + meta."""
    write_tree(root, SYNTH_FILES)
    lines = []
    for folder, names in SYNTH_FILES.items():
        for i, name in enumerate(names):
            pid, camera = name.split("_")[0], name.split("_")[1][1]
            joints = [[2.0 + j * 0.25, 1.0 + j, int(j % 3 != 0)] for j in range(len(JOINT_NAMES))]
            entry = {
                "path": f"{folder}/{name}",
                "split": SPLIT_OF_FOLDER[folder],
                "pid": int(pid),
                "camid": int(camera),
                "occlusion": 0.4 if folder == "occluded_query" else 0.05 * i,
                "occluder": "object" if folder == "occluded_query" else "none",
                "hidden_parts": ["left_leg"] if folder == "occluded_query" else [],
                "joints": joints,
                "view": "front",
            }
            lines.append(json.dumps(entry))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    (root / "meta.json").write_text(json.dumps({"seed": 0, "joint_names": JOINT_NAMES}))
    return root


def test_synthetic_occluded_protocol_and_manifest_extras(tmp_path: Path) -> None:
    dataset = build_dataset("synthetic", write_synthetic(tmp_path))
    assert dataset.joint_names == tuple(JOINT_NAMES)
    assert dataset.num_train_pids == 4 and len(dataset.train) == 10
    assert [r.path.name for r in dataset.query] == SYNTH_FILES["occluded_query"]
    query = dataset.query[0]
    assert (query.pid, query.camid) == (5, 1)
    assert query.extras["occlusion"] == 0.4 and query.extras["hidden_parts"] == ["left_leg"]
    assert query.extras["split"] == "occluded_query"
    assert len(query.extras["joints"]) == 14
    assert "pid" not in query.extras and "path" not in query.extras
    assert sorted(r.pid for r in dataset.gallery) == [-1, 0, 5, 6]

    holistic = build_dataset("synthetic", tmp_path, query_split="query")
    assert [r.path.name for r in holistic.query] == SYNTH_FILES["query"]


def test_synthetic_bad_inputs_are_named(tmp_path: Path) -> None:
    root = write_synthetic(tmp_path)
    with pytest.raises(ValueError, match="query_split='holistic'"):
        build_dataset("synthetic", root, query_split="holistic")

    manifest = root / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    entry = json.loads(lines[0])
    entry["camid"] = 2
    manifest.write_text("\n".join([json.dumps(entry), *lines[1:]]) + "\n")
    with pytest.raises(DatasetLayoutError, match="0001_c1s1_000010_00.jpg"):
        build_dataset("synthetic", root)

    manifest.write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(DatasetLayoutError, match="0001_c1s1_000010_00.jpg has no entry"):
        build_dataset("synthetic", root)

    manifest.write_text("\n".join([*lines[:2], "{not json", *lines[2:]]) + "\n")
    with pytest.raises(DatasetLayoutError, match=r"manifest.jsonl:3: not valid JSON"):
        build_dataset("synthetic", root)

    (root / "meta.json").write_text(json.dumps({"seed": 0}))
    with pytest.raises(DatasetLayoutError, match="joint_names"):
        build_dataset("synthetic", root)


def test_synthetic_without_manifest_names_it(tmp_path: Path) -> None:
    root = write_synthetic(tmp_path)
    (root / "manifest.jsonl").unlink()
    with pytest.raises(DatasetLayoutError, match="manifest.jsonl"):
        build_dataset("synthetic", root)


def test_loads_what_the_renderer_writes(tmp_path: Path) -> None:
    """The real `trainer synth reid` output: camera numbering and joint names agree."""
    from trainer.synth.reid_set import ReidSetConfig, write_reid_set

    config = ReidSetConfig(identities=4, cameras=2, seed=1, images_per_camera=(2, 2))
    write_reid_set(config, tmp_path / "synth", workers=1, show_progress=False)
    dataset = build_dataset("synthetic", tmp_path / "synth")
    assert dataset.num_train_pids == 2 and dataset.num_train_cams == 2
    assert dataset.joint_names == tuple(JOINT_NAMES)
    assert dataset.query and all(r.extras["occlusion"] >= 0.3 for r in dataset.query)
    assert all(len(r.extras["joints"]) == 14 for r in dataset.train + dataset.gallery)
    assert {r.camid for r in dataset.gallery} <= {0, 1}


def test_registry_names_and_options(tmp_path: Path) -> None:
    assert DATASET_NAMES == (
        "market1501",
        "dukemtmcreid",
        "msmt17",
        "occluded_duke",
        "occluded_reid",
        "partial_reid",
        "partial_ilids",
        "synthetic",
        "folder",
    )
    with pytest.raises(ValueError) as error:
        build_dataset("market", tmp_path)
    assert all(name in str(error.value) for name in DATASET_NAMES)
    assert dataset_options("msmt17") == ("include_val",)
    with pytest.raises(ValueError, match="no option query_split .*include_val"):
        build_dataset("msmt17", tmp_path, query_split="query")


def data_command(argv: list[str]) -> int:
    return run(build_parser("trainer", "test", ["trainer.data.cli"]), ["data", *argv])


def test_cli_summary_and_batch_preview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_synthetic(tmp_path / "synthetic")
    preview = tmp_path / "preview.png"
    argv = ["--dataset", "synthetic", "--root", str(root), "--option", "query_split=query"]
    assert data_command([*argv, "--preview", str(preview), "--identities", "2"]) == 0
    out = capsys.readouterr().out
    assert "synthetic" in out and "train" in out and f"wrote {preview}" in out
    sheet = cv2.imread(str(preview))
    # 2 identities × 4 images, 256×128 tiles with a 2-px gutter.
    assert sheet.shape == (2 * 258, 4 * 130, 3)

    assert data_command(["--dataset", "dukemtmcreid", "--root", str(root)]) == 2
    assert "naming" in capsys.readouterr().err


def write_keypoints(
    root: Path, images: dict[str, list], names: list[str], name: str = "keypoints.json"
) -> Path:
    path = root / name
    path.write_text(json.dumps({"joint_names": names, "images": images}))
    return path


def test_a_keypoint_file_gives_real_images_their_joints(tmp_path: Path) -> None:
    from trainer.data import ImageDataset, TransformConfig, attach_keypoints, build_transforms

    write_tree(tmp_path, MARKET_FILES)
    names = ["head", "left_ankle", "right_ankle"]
    given = [[4, 2, 1], [2, 15, 0.9], [6, 15, 0.2]]  # a confidence below 0.5 is invisible
    write_keypoints(tmp_path, {"bounding_box_train/0002_c1s1_000451_03.jpg": given}, names)
    dataset = attach_keypoints(build_dataset("market1501", tmp_path), "keypoints.json")

    assert dataset.joint_names == tuple(names)
    by_name = {r.path.name: r.extras["joints"] for r in dataset.train}
    assert by_name["0002_c1s1_000451_03.jpg"] == [[4, 2, 1], [2, 15, 1], [6, 15, 0]]
    assert by_name["0007_c3s1_000551_01.jpg"] == [[0, 0, 0]] * 3  # no entry: nothing visible
    assert all("joints" in r.extras for r in dataset.query + dataset.gallery)

    _, test_tf = build_transforms(TransformConfig(height=16, width=8), dataset.joint_names)
    images = ImageDataset(dataset.train, test_tf)
    sample = next(
        images[i] for i, r in enumerate(images.records) if r.path.name.startswith("0002_c1")
    )
    assert sample["joints"].shape == (3, 3)
    assert sample["joints"][:, 2].tolist() == [1, 1, 0]
    assert sample["joints"][0, :2].tolist() == pytest.approx([0.0, -0.75])  # pixel → [-1, 1]


def test_bad_keypoint_files_are_named_and_change_nothing(tmp_path: Path) -> None:
    from trainer.data import KeypointFileError, attach_keypoints

    write_tree(tmp_path, MARKET_FILES)
    dataset = build_dataset("market1501", tmp_path)
    names = ["head", "neck"]
    cases = {
        "missing.json": "does not exist",
        write_keypoints(tmp_path, {"train/0002.jpg": [[1, 1, 1]] * 2}, names, "a.json"): (
            "none of its 1"
        ),
        write_keypoints(
            tmp_path, {"query/0010_c1s1_000151_01.jpg": [[1, 1]] * 2}, names, "b.json"
        ): ("'query/0010_c1s1_000151_01.jpg' has a joint that is not"),
        write_keypoints(
            tmp_path, {"query/0010_c1s1_000151_01.jpg": [[1, 1, 1]]}, names, "c.json"
        ): ("'query/0010_c1s1_000151_01.jpg' must list 2 joints"),
        write_keypoints(tmp_path, {}, [], "d.json"): "'joint_names' must be a non-empty list",
    }
    assert len(cases) == 5
    for path, message in cases.items():
        with pytest.raises(KeypointFileError, match=message):
            attach_keypoints(dataset, path)
    assert dataset.joint_names is None
    assert not any("joints" in r.extras for r in dataset.train + dataset.query + dataset.gallery)
