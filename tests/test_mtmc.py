"""`stream eval` (stream/mtmc.py): perfect predictions score 1, swapped global ids hurt only the
cross-camera IDF1, final vs online labels, and a real MOT15 sequence's ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stream_setup import ground_truth_events

from reid_core.cli import build_parser, run
from stream.mtmc import EvalError, evaluate_run


def write_run(folder: Path, events: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return folder


def scene_gt(scene: Path) -> dict[str, Path]:
    return {camera: scene / camera / "gt" / "gt.txt" for camera in ("cam1", "cam2")}


def test_perfect_predictions_score_one(scene: Path, tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", ground_truth_events(scene_gt(scene)))
    summary = evaluate_run(run_dir, scene)
    assert summary["IDF1"] == pytest.approx(1.0)
    for camera in ("cam1", "cam2"):
        metrics = summary["cameras"][camera]
        assert metrics["IDF1"] == pytest.approx(1.0)
        assert metrics["HOTA"] == pytest.approx(1.0, abs=1e-6)
        assert metrics["MOTA"] == pytest.approx(1.0)
    written = json.loads((run_dir / "mtmc.json").read_text())
    assert written["IDF1"] == summary["IDF1"] and set(written["cameras"]) == {"cam1", "cam2"}
    assert (run_dir / "mtmc.png").stat().st_size > 0
    assert evaluate_run(run_dir, scene / "cams.yaml")["IDF1"] == pytest.approx(1.0)


def test_the_no_reid_yardstick_is_a_run_whose_tracklets_keep_their_own_ids(
    scene: Path, tmp_path: Path
) -> None:
    events = ground_truth_events(scene_gt(scene))
    perfect = evaluate_run(write_run(tmp_path / "perfect", events), scene)
    for event in events:
        event["global_id"] = None
    unmatched = evaluate_run(write_run(tmp_path / "unmatched", events), scene)
    assert unmatched["IDF1"] == pytest.approx(perfect["IDF1_without_reid"])
    assert unmatched["IDF1_without_reid"] == pytest.approx(perfect["IDF1_without_reid"])
    assert perfect["IDF1_without_reid"] < 0.9  # people walk through both cameras


def test_swapped_global_ids_hurt_only_the_cross_camera_score(scene: Path, tmp_path: Path) -> None:
    swap = {"cam2": {1: 2, 2: 1}}  # cam2 calls person 1 "2" and person 2 "1"
    run_dir = write_run(tmp_path / "run", ground_truth_events(scene_gt(scene), swap))
    summary = evaluate_run(run_dir, scene)
    for camera in ("cam1", "cam2"):
        assert summary["cameras"][camera]["IDF1"] == pytest.approx(1.0)  # track ids are right
    assert summary["IDF1"] < 0.9
    cross = summary["cross_camera"]
    assert cross["IDF1"] == pytest.approx(
        2 * cross["IDTP"] / (2 * cross["IDTP"] + cross["IDFP"] + cross["IDFN"])
    )


def test_final_labels_cover_a_tracklet_online_labels_do_not(scene: Path, tmp_path: Path) -> None:
    events = ground_truth_events(scene_gt(scene))
    first_frames: dict[tuple[str, int], int] = {}
    for event in events:
        key = (event["camera"], event["track_id"])
        first_frames.setdefault(key, event["frame"])
        if event["frame"] < first_frames[key] + 5:
            event["global_id"] = None  # the worker answered after 5 frames
    run_dir = write_run(tmp_path / "run", events)
    assert evaluate_run(run_dir, scene)["IDF1"] == pytest.approx(1.0)
    online = evaluate_run(run_dir, scene, online=True)
    assert online["labels"] == "online" and online["IDF1"] < 0.95

    for event in events:
        event["global_id"] = None  # only assignments.jsonl knows the identities
    write_run(run_dir, events)
    (run_dir / "assignments.jsonl").write_text(
        "".join(
            json.dumps({"camera": camera, "track_id": track, "global_id": track}) + "\n"
            for camera, track in first_frames
        )
    )
    assert evaluate_run(run_dir, scene)["IDF1"] == pytest.approx(1.0)


def test_tud_campus_ground_truth_as_predictions(tud_campus: Path, tmp_path: Path) -> None:
    events = ground_truth_events({"tud": tud_campus / "gt" / "gt.txt"})
    run_dir = write_run(tmp_path / "run", events)
    summary = evaluate_run(run_dir, tud_campus)  # one MOT15 sequence folder
    metrics = summary["cameras"]["tud"]
    assert metrics["IDF1"] == pytest.approx(1.0) and metrics["MOTA"] == pytest.approx(1.0)
    assert metrics["HOTA"] == pytest.approx(1.0, abs=1e-6)
    assert summary["IDF1"] == pytest.approx(1.0)


def test_cli_prints_and_bad_input_names_file_and_line(
    scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = write_run(tmp_path / "run", ground_truth_events(scene_gt(scene)))
    parser = build_parser("stream", "test", ["stream.mtmc"])
    assert run(parser, ["eval", "--run", str(run_dir), "--gt", str(scene)]) == 0
    out = capsys.readouterr().out
    assert "cross-camera IDF1: 1.000" in out and "cam2" in out

    with open(run_dir / "events.jsonl", "a") as events:
        events.write('{"camera": "cam1", "frame": "x"}\n')
    lines = (run_dir / "events.jsonl").read_text().count("\n")
    with pytest.raises(EvalError, match=rf"events.jsonl:{lines}: "):
        evaluate_run(run_dir, scene)
    assert run(parser, ["eval", "--run", str(run_dir), "--gt", str(scene)]) == 2

    other = write_run(
        tmp_path / "other", [{**ground_truth_events(scene_gt(scene))[0], "camera": "cam7"}]
    )
    with pytest.raises(EvalError, match="cam7 of the run have no ground truth"):
        evaluate_run(other, scene)
