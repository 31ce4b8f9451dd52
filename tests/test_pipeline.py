"""`stream run` end to end on a tiny synthetic scene: outputs, identities, a worker that dies."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import yaml
from stream_setup import TINY_MODEL, write_tiny_stream

from stream.pipeline import Supervisor, run_pipeline

pytestmark = pytest.mark.xdist_group("pipeline")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    # an untrained model: accept any match, so identities must be shared across cameras
    write_tiny_stream(root, seed=7, threshold=10.0)
    return root


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_run_writes_events_videos_summary_and_cross_camera_ids(scene: Path) -> None:
    out = scene / "run"
    summary = run_pipeline(scene / "cams.yaml", out, live=False)
    events = _lines(out / "events.jsonl")
    assert {e["camera"] for e in events} == {"cam1", "cam2"}
    assert {"camera", "frame", "time", "track_id", "global_id", "box", "score"} <= set(events[0])
    assignments = _lines(out / "assignments.jsonl")
    cameras_of_id: dict[int, set[str]] = {}
    for record in assignments:
        cameras_of_id.setdefault(record["global_id"], set()).add(record["camera"])
    assert any(len(cams) == 2 for cams in cameras_of_id.values()), cameras_of_id
    assert summary["worker_exit_codes"] == {"worker-0": 0}
    assert summary["events"] == len(events) and summary["assignments"] == len(assignments)
    assert json.loads((out / "summary.json").read_text())["cameras"]["cam1"]["finished"]
    assert sorted(p.name for p in (out / "videos").glob("*.mp4")) == ["cam1.mp4", "cam2.mp4"]
    from stream.gallery import read_manifest

    manifest = read_manifest(out / "gallery")
    assert manifest is not None and manifest.embedder.runtime == "torch"
    assert manifest.gallery.vector_size == TINY_MODEL["transformer"]["d_model"]  # not 512


def test_a_killed_worker_is_restarted_and_the_run_finishes(scene: Path) -> None:
    out = scene / "killed"

    def kill_worker(supervisor: Supervisor) -> None:
        worker = supervisor.workers[0]
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait()

    summary = run_pipeline(scene / "cams.yaml", out, live=False, after_start=kill_worker)
    assert summary["worker_restarts"] >= 1
    assert all(stats["error"] is None for stats in summary["cameras"].values())
    assert (out / "summary.json").is_file() and (out / "events.jsonl").stat().st_size > 0


def test_a_bad_worker_section_is_named(scene: Path, tmp_path: Path) -> None:
    cams = yaml.safe_load((scene / "cams.yaml").read_text())
    cams["worker"]["batching"] = {"max_batchh": 3}
    for camera in cams["cameras"]:
        camera["source"] = str(scene / camera["source"])
        camera["ground_truth"] = str(scene / camera["ground_truth"])
    path = tmp_path / "cams.yaml"
    path.write_text(yaml.safe_dump(cams))
    with pytest.raises(ValueError, match="max_batchh"):
        run_pipeline(path, tmp_path / "run", live=False)
