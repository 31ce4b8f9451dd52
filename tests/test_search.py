"""`stream search` on a gallery built by a short synthetic `stream run`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from stream_setup import TINY_MODEL, write_tiny_stream

from reid_core import build_model, save
from stream.cli import main as stream_main
from stream.pipeline import run_pipeline


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-camera run whose gallery gives every tracklet its own identity (threshold ~0), so
    a query must find the right tracklet by appearance alone."""
    root = tmp_path_factory.mktemp("search")
    run_pipeline(write_tiny_stream(root, seed=11, threshold=1e-9), root / "run", live=False)
    return root


def _gt_crop(root: Path, camera: str) -> tuple[np.ndarray, int, int]:
    """(crop, frame index, box) of the largest ground-truth person in the middle of a video."""
    gt = np.loadtxt(root / "scene" / camera / "gt" / "gt.txt", delimiter=",", ndmin=2)
    middle = int(np.median(gt[:, 0]))
    rows = gt[gt[:, 0] == middle]
    row = rows[np.argmax(rows[:, 4] * rows[:, 5] * rows[:, 8])]
    capture = cv2.VideoCapture(str(root / "scene" / camera / "video.mp4"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, middle - 1)
    ok, frame = capture.read()
    capture.release()
    assert ok
    x, y, w, h = (int(round(v)) for v in row[2:6])
    x, y = max(x - 1, 0), max(y - 1, 0)
    return frame[y : y + h, x : x + w], middle - 1, int(row[1])


def _track_of(run_dir: Path, camera: str, frame: int, crop_box: tuple[int, int]) -> int:
    """The global id the run gave to the track whose event box at `frame` holds the crop."""
    events = [json.loads(line) for line in (run_dir / "events.jsonl").open()]
    assignments = [json.loads(line) for line in (run_dir / "assignments.jsonl").open()]
    x, y = crop_box
    here = [e for e in events if e["camera"] == camera and e["frame"] == frame]
    best = min(here, key=lambda e: abs(e["box"][0] - x) + abs(e["box"][1] - y))
    final = {(a["camera"], a["track_id"]): a["global_id"] for a in assignments}
    return final[(camera, best["track_id"])]


def test_a_crop_of_a_known_person_finds_its_identity_first(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crop, frame, _ = _gt_crop(run, "cam1")
    query = tmp_path / "query.jpg"
    cv2.imwrite(str(query), crop)
    gt = np.loadtxt(run / "scene" / "cam1" / "gt" / "gt.txt", delimiter=",", ndmin=2)
    row = gt[(gt[:, 0] == frame + 1)]
    row = row[np.argmax(row[:, 4] * row[:, 5] * row[:, 8])]
    expected = _track_of(run / "run", "cam1", frame, (row[2] - 1, row[3] - 1))
    sheet = tmp_path / "sheet.png"
    code = stream_main(
        [
            "search",
            "--image",
            str(query),
            "--gallery",
            str(run / "run" / "gallery"),
            "--json",
            "--out",
            str(sheet),
        ]
    )
    assert code == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["global_id"] == expected and hits[0]["camera"] == "cam1"
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    assert cv2.imread(str(sheet)) is not None


def test_camera_and_time_filters(run: Path, tmp_path: Path, capsys) -> None:
    crop, _, _ = _gt_crop(run, "cam1")
    query = tmp_path / "query.jpg"
    cv2.imwrite(str(query), crop)
    gallery = str(run / "run" / "gallery")
    stream_main(
        ["search", "--image", str(query), "--gallery", gallery, "--camera", "cam2", "--json"]
    )
    hits = json.loads(capsys.readouterr().out)
    assert hits and all(h["camera"] == "cam2" for h in hits)
    stream_main(["search", "--image", str(query), "--gallery", gallery, "--since", "2.5", "--json"])
    late = json.loads(capsys.readouterr().out)
    assert all(h["t_last"] >= 2.5 for h in late)
    first = hits[0]["global_id"]
    stream_main(["search", "--global-id", str(first), "--gallery", gallery, "--json"])
    appearances = json.loads(capsys.readouterr().out)
    assert appearances and all(a["global_id"] == first for a in appearances)
    assert [a["t_first"] for a in appearances] == sorted(a["t_first"] for a in appearances)


def test_clear_messages_for_bad_queries(run: Path, tmp_path: Path, capsys) -> None:
    blank = tmp_path / "blank.jpg"
    cv2.imwrite(str(blank), np.full((128, 64, 3), 127, np.uint8))
    gallery = str(run / "run" / "gallery")
    assert stream_main(["search", "--image", str(blank), "--gallery", gallery]) == 2
    assert "no person-like content" in capsys.readouterr().err
    assert stream_main(["search", "--global-id", "999", "--gallery", gallery]) == 2
    assert "no appearance of global id 999" in capsys.readouterr().err
    other = dict(TINY_MODEL, transformer={**TINY_MODEL["transformer"], "d_model": 16})
    save(build_model(other).eval(), tmp_path / "other.safetensors")
    crop, _, _ = _gt_crop(run, "cam1")
    cv2.imwrite(str(tmp_path / "q.jpg"), crop)
    args = ["search", "--image", str(tmp_path / "q.jpg"), "--gallery", gallery]
    assert (
        stream_main([*args, "--model", str(tmp_path / "other.safetensors"), "--runtime", "torch"])
        == 2
    )
    assert "32-d" in capsys.readouterr().err
    assert stream_main(["search", "--global-id", "1", "--gallery", str(tmp_path)]) == 2
    assert "no model" in capsys.readouterr().err
