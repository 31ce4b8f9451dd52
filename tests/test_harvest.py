"""`stream harvest` (stream/harvest.py): crop filters, constrained clustering, the run's final
assignments, a harvest of a real `stream run` as a folder data set, and — with the shipped
model on a rendered 3-camera scene — pseudo-identities that are pure and link cameras."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from stream_setup import ground_truth_run, write_tiny_stream

from reid_core.cli import build_parser, run
from stream.harvest import (
    HarvestConfig,
    HarvestError,
    Tracklet,
    average_linkage,
    covered_share,
    good_boxes,
    harvest,
    read_assignments,
    split_mixed,
)
from stream.pipeline import run_pipeline
from trainer.data import build_dataset


def test_crop_filters_drop_small_cut_wide_and_covered_boxes() -> None:
    boxes = np.array(
        [
            [10, 10, 30, 70],  # good: 20 × 60
            [100, 10, 120, 40],  # too small: 30 px tall
            [0, 100, 20, 160],  # touches the left edge
            [200, 10, 260, 70],  # as wide as tall: two people
            [300, 10, 320, 70],  # half covered by the next one
            [310, 10, 330, 70],
        ],
        dtype=float,
    )
    assert covered_share(boxes[4:]) == pytest.approx([0.5, 0.5])
    config = HarvestConfig(min_height=48)
    assert good_boxes(boxes, (640, 360), config).tolist() == [
        True,
        False,
        False,
        False,
        False,
        False,
    ]


def test_average_linkage_stops_at_the_threshold_and_never_joins_a_forbidden_pair() -> None:
    distances = np.array(
        [
            [0.0, 0.1, 0.2, 0.9],
            [0.1, 0.0, 0.9, 0.9],
            [0.2, 0.9, 0.0, 0.1],
            [0.9, 0.9, 0.1, 0.0],
        ]
    )
    free = np.zeros((4, 4), dtype=bool)
    # 0+1 and 2+3 join at 0.1; the two pairs are 0.2·¼ + 0.9·¾ apart on average: not joined
    assert average_linkage(distances, free, 0.5).tolist() == [0, 0, 1, 1]
    assert average_linkage(distances, free, 0.05).tolist() == [0, 1, 2, 3]
    assert len(set(average_linkage(distances, free, 1.0).tolist())) == 1
    forbidden = free.copy()
    forbidden[1, 3] = forbidden[3, 1] = True  # 1 and 3 were in one view at once
    assert len(set(average_linkage(distances, forbidden, 1.0).tolist())) == 2


def test_a_tracklet_holding_two_people_is_split_and_stray_crops_dropped() -> None:
    import torch

    from reid_core import ReIDFeatures

    # crops 0-5 show one person, 6-9 another (the tracker swapped them), 10 a stray one
    directions = torch.tensor([[1.0, 0, 0]] * 6 + [[0, 1.0, 0]] * 4 + [[0, 0, 1.0]])
    n = len(directions)
    features = ReIDFeatures(
        directions + 0.01 * torch.randn(n, 3),
        torch.zeros(n, 1, 3),
        torch.zeros(n, 1),
        torch.zeros(n, 1, 2),
        torch.eye(2).expand(n, 1, 2, 2),
        torch.ones(n, 2, 4, 2),
    )
    frames = list(range(10, 10 + n))
    tracklet = Tracklet("cam1", 4, frames=frames, boxes=[np.zeros(4)] * n, crops=[None] * n)
    parts = split_mixed(tracklet, features, max_distance=0.5, min_crops=3)
    assert sorted(part.frames for part, _ in parts) == [frames[:6], frames[6:10]]
    assert all(len(f) == len(p.crops) for p, f in parts)
    whole = split_mixed(tracklet, features[:6], max_distance=0.5, min_crops=3)
    assert len(whole) == 1 and whole[0][0].first_frame == tracklet.first_frame


def test_final_assignments_keep_the_founder_and_the_last_link(tmp_path: Path) -> None:
    records = [
        {"camera": "a", "track_id": 1, "global_id": 1, "score": 0.9, "is_new": True},
        {"camera": "b", "track_id": 4, "global_id": 1, "score": 0.3, "is_new": False},
        {"camera": "b", "track_id": 5, "global_id": 2, "score": 0.8, "is_new": True},
        {"camera": "b", "track_id": 5, "global_id": 1, "score": 0.45, "is_new": False},
        {"camera": "a", "track_id": 1, "global_id": 1, "score": 0.9, "is_new": False},
    ]
    path = tmp_path / "assignments.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert read_assignments(path) == {
        ("a", 1): (1, None),  # founded id 1
        ("b", 4): (1, 0.3),
        ("b", 5): (1, 0.45),  # founded id 2, then re-matched to 1
    }
    path.write_text("{not json\n")
    with pytest.raises(HarvestError, match="assignments.jsonl:1"):
        read_assignments(path)


def test_a_harvested_run_is_a_folder_data_set_of_the_runs_crops(tmp_path: Path) -> None:
    cams = write_tiny_stream(tmp_path, seed=3, threshold=0.3, people=4, seconds=6)
    run_pipeline(cams, tmp_path / "run", live=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["workers"]["worker-0"]["match_threshold"] == pytest.approx(0.3)

    config = HarvestConfig(min_height=16, min_aspect=1.2, min_crops=2, linking="online")
    result = harvest(tmp_path / "run", tmp_path / "data", config, gt=cams)
    assert result["crops"] > 0 and result["pseudo_identities"] >= 2
    assert result["max_link_distance"] == pytest.approx(0.85 * 0.3)
    rows = [json.loads(line) for line in (tmp_path / "data" / "harvest.jsonl").open()]
    assert len(rows) == result["crops"]
    # each crop is the box of its frame, cut from the camera's video
    row = rows[len(rows) // 2]
    video = tmp_path / "scene" / row["camera"] / "video.mp4"
    capture = cv2.VideoCapture(str(video))
    for _ in range(row["frame"] + 1):
        ok, image = capture.read()
    x1, y1, x2, y2 = (int(round(v)) for v in row["box"])
    written = cv2.imread(str(tmp_path / "data" / row["path"]))
    assert written.shape == image[y1:y2, x1:x2].shape
    assert np.abs(written.astype(int) - image[y1:y2, x1:x2]).mean() < 8  # JPEG
    # ... and the folder reads as a data set: one identity per pseudo-identity
    dataset = build_dataset("folder", tmp_path / "data")
    assert dataset.num_train_pids + len({r.pid for r in dataset.gallery}) >= 2
    assert 0.0 <= result["truth"]["purity"] <= 1.0

    with pytest.raises(HarvestError, match="not empty"):
        harvest(tmp_path / "run", tmp_path / "data", config)
    parser = build_parser("stream", "", ["stream.harvest"])
    assert run(parser, ["harvest", "--run", str(tmp_path), "--out", str(tmp_path / "x")]) == 2


def _scene_run(scene: Path, folder: Path, threshold: float) -> Path:
    """A run folder whose events are the scene's ground-truth tracks (no global ids), whose
    worker embedded with the shipped model at ``threshold``: what offline linking reads."""
    ground_truth_run(scene, folder, global_ids=False)
    (folder / "summary.json").write_text(
        json.dumps({"workers": {"worker-0": {"match_threshold": threshold}}})
    )
    (folder / "workers").mkdir()
    (folder / "workers" / "worker-0.yaml").write_text(
        yaml.safe_dump(  # a worker config as `stream run` writes it
            {
                "embedder": {"runtime": "torch", "threads": 1},
                "gallery": {"path": str(folder / "gallery")},
            }
        )
    )
    return folder


@pytest.mark.slow
def test_shipped_model_harvest_is_pure_and_links_cameras(tmp_path: Path) -> None:
    from reid_core.zoo import read_card
    from trainer.synth.video import VideoConfig, write_videos

    scene = tmp_path / "scene"
    write_videos(
        VideoConfig(cameras=3, people=8, seconds=20, seed=11), scene, workers=1, show_progress=False
    )
    folder = _scene_run(scene, tmp_path / "run", read_card().threshold)
    result = harvest(folder, tmp_path / "data", gt=scene / "cams.yaml")
    truth = result["truth"]
    assert truth["purity"] >= 0.9
    assert truth["link_recall"] >= 0.5
    assert result["pseudo_identities_multi_camera"] >= 2
