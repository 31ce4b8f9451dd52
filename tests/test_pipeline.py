"""`stream run` end to end on a tiny synthetic scene: outputs, identities, a worker that dies."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest.mock import ANY

import cv2
import numpy as np
import pytest
import yaml
from stream_setup import TINY_MODEL, write_tiny_stream

from reid_core.zoo import file_sha256
from stream.cli import main as stream_main
from stream.cli import parser as stream_parser
from stream.config import load_cams_config
from stream.gallery import Gallery, GalleryConfig
from stream.mtmc import evaluate_run
from stream.pipeline import (
    IdSet,
    ResumePoint,
    RunState,
    Supervisor,
    prepare_out,
    progress_line,
    run_pipeline,
    worker_configs,
)


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
    own = os.getpriority(os.PRIO_PROCESS, 0)  # cameras yield the CPU to the worker
    assert {s["nice"] for s in summary["cameras"].values()} == {min(own + 10, 19)}
    assert sorted(p.name for p in (out / "videos").glob("*.mp4")) == ["cam1.mp4", "cam2.mp4"]
    final = {(a["camera"], a["track_id"]): a["global_id"] for a in assignments}
    mot = (out / "results" / "mot" / "cam1.txt").read_text().splitlines()
    cam1 = [e for e in events if e["camera"] == "cam1"]
    assert len(mot) == len(cam1)
    for line, event in zip(mot, cam1, strict=True):  # 1-based frames, final global ids
        frame, global_id = (int(v) for v in line.split(",")[:2])
        assert frame == event["frame"] + 1
        assert global_id == final.get(("cam1", event["track_id"]), global_id)
    aicity = (out / "results" / "aicity_mtmc.txt").read_text().splitlines()
    assert len(aicity) == len(events) and aicity[0].split()[0] in {"1", "2"}
    _result_files_score_as_stream_eval(scene, out)
    sheet = cv2.imread(str(out / "results" / "identities.png"))  # who was seen where
    shown = {a["global_id"] for a in assignments}
    assert sheet is not None and sheet.shape[0] >= 24 + min(len(shown), 40) * 100
    from stream.gallery import read_manifest

    manifest = read_manifest(out / "gallery")
    assert manifest is not None and manifest.embedder.runtime == "torch"
    assert manifest.gallery.vector_size == TINY_MODEL["transformer"]["d_model"]  # not 512


def _result_files_score_as_stream_eval(scene: Path, out: Path) -> None:
    """The MOTChallenge files of results/ read by `trackers`' own evaluation: per camera the
    same detection accuracy as `stream eval`'s, and laid end to end (the AI City layout's
    cameras one after another) the same cross-camera IDF1."""
    from trackers.eval import evaluate_mot_sequence

    from stream.detectors import read_mot_file
    from stream.mtmc import evaluate_run

    summary = evaluate_run(out, scene / "cams.yaml")
    gt_lines, pred_lines, offset = [], [], 0
    for camera in ("cam1", "cam2"):
        gt = scene / "scene" / camera / "gt" / "gt.txt"
        result_file = out / "results" / "mot" / f"{camera}.txt"
        read_back = evaluate_mot_sequence(gt, result_file, metrics=["HOTA"])
        assert read_back.HOTA.DetA == pytest.approx(summary["cameras"][camera]["DetA"], abs=1e-9)
        truth = read_mot_file(gt)
        for line in truth.to_mot17_lines():
            frame, rest = line.split(",", 1)
            gt_lines.append(f"{int(frame) + offset},{rest}")
        last = int(truth.frame.max())
        for line in result_file.read_text().splitlines():
            frame, rest = line.split(",", 1)
            pred_lines.append(f"{int(frame) + offset},{rest}")
            last = max(last, int(frame))
        offset += last  # as `stream eval` lays the cameras end to end
    folder = out / "read_back"
    folder.mkdir()
    (folder / "gt.txt").write_text("\n".join(gt_lines) + "\n")
    (folder / "pred.txt").write_text("\n".join(pred_lines) + "\n")
    cross = evaluate_mot_sequence(folder / "gt.txt", folder / "pred.txt", metrics=["Identity"])
    assert abs(cross.Identity.IDF1 - summary["IDF1"]) < 1e-9


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


def test_a_used_out_folder_needs_resume_or_overwrite(
    scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "used"
    out.mkdir()
    (out / "events.jsonl").write_text('{"camera": "cam1", "frame": 4, "track_id": 2}\n{"cam')
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"already holds a run \(events.jsonl\).*--resume"):
        prepare_out(out, resume=False, overwrite=False)
    with pytest.raises(ValueError, match="pick one"):
        prepare_out(out, resume=True, overwrite=True)
    assert prepare_out(out, resume=True, overwrite=False) == {"cam1": ResumePoint(5, 3)}
    assert (out / "events.jsonl").read_text().endswith("}\n")  # the cut line is gone
    assert prepare_out(out, resume=False, overwrite=True) == {}
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # only run outputs deleted
    with pytest.raises(ValueError, match="no run to continue"):
        prepare_out(out, resume=True, overwrite=False)
    (out / "summary.json").write_text("{}")
    assert stream_main(["run", "--cameras", str(scene / "cams.yaml"), "--out", str(out)]) == 2
    assert "already holds a run (summary.json)" in capsys.readouterr().err


@pytest.mark.slow
def test_a_second_run_on_a_persistent_gallery_gives_no_new_person_an_old_id(
    scene: Path, tmp_path: Path
) -> None:
    """Track ids restart at 1 in every run; the gallery outlives runs. The second run films
    other people (another scene) and no distance passes the threshold: every tracklet is a
    new person, and none may inherit a first-run id."""
    write_tiny_stream(tmp_path / "other", seed=12, threshold=1e-9)
    paths = []
    for name, root in (("first", scene), ("second", tmp_path / "other")):
        cams = yaml.safe_load((root / "cams.yaml").read_text())
        for camera in cams["cameras"]:
            camera["source"] = str(root / camera["source"])
            camera["ground_truth"] = str(root / camera["ground_truth"])
        cams["worker"]["embedder"]["model"] = str(scene / "tiny.safetensors")
        cams["worker"]["gallery"]["threshold"] = 1e-9
        cams["gallery"] = {"path": str(tmp_path / "shared-gallery")}
        paths.append(tmp_path / f"{name}.yaml")
        paths[-1].write_text(yaml.safe_dump(cams))
    first = run_pipeline(paths[0], tmp_path / "first", live=False)
    second = run_pipeline(paths[1], tmp_path / "second", live=False)
    old = _lines(tmp_path / "first" / "assignments.jsonl")
    new = _lines(tmp_path / "second" / "assignments.jsonl")
    assert old and new and first["run"] != second["run"]
    assert {(a["camera"], a["track_id"]) for a in old} & {(a["camera"], a["track_id"]) for a in new}
    assert max(a["global_id"] for a in old) < min(a["global_id"] for a in new)
    first_answers = {}
    for a in new:
        first_answers.setdefault((a["camera"], a["track_id"]), a)
    assert all(a["is_new"] for a in first_answers.values())
    gallery_config = GalleryConfig(
        path=tmp_path / "shared-gallery",
        vector_size=TINY_MODEL["transformer"]["d_model"],
        num_parts=TINY_MODEL["heads"]["num_parts"],
    )
    with Gallery.open(gallery_config) as gallery:
        assert len(gallery) == len({(a["run"], a["camera"], a["track_id"]) for a in old + new})
        for a in old:  # the first run's tracklets keep their ids
            assert gallery.get(a["camera"], a["track_id"], a["run"]).global_id == a["global_id"]


@pytest.fixture(scope="module")
def paced_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three cameras playing 60 s videos at real time, in a loop, a worker reporting every
    0.1 s and restarted at once: crops flow while the worker is killed, however slow its
    restarts are."""
    root = tmp_path_factory.mktemp("paced")
    path = write_tiny_stream(
        root, seed=9, threshold=10.0, cameras=3, people=6, seconds=60, pace=1.0
    )
    cams = yaml.safe_load(path.read_text())
    cams["crops"]["max_per_track"] = 10_000  # a crop every 2nd frame for as long as a track lasts
    for camera in cams["cameras"]:
        camera["source"]["loop"] = True
    cams["worker"]["stats_interval_s"] = 0.1
    # a published id is final (no relink: at threshold 10 every alone tracklet would join
    # another camera's identity at its re-match), so each one must be the stored one
    cams["worker"]["gallery"]["relink"] = False
    cams["workers"] = {"restart_backoff_s": 0.0, "restart_limit": 12}
    path.write_text(yaml.safe_dump(cams))
    return root


@pytest.mark.slow
def test_a_worker_killed_ten_times_while_crops_flow_loses_no_acknowledged_identity(
    paced_scene: Path,
) -> None:
    """SIGKILL after a seeded 1-3 crops embedded by each life of the worker (its own counters,
    no sleeps): cameras go on, drops are counted, every acknowledged assignment is in the
    gallery, and tracklets still seen 3 s after the last life is serving (so crops of theirs
    reached it) all get an identity."""
    rng = np.random.default_rng(0)
    kills: list[int] = []
    target = [int(rng.integers(1, 4))]
    last_life_serving = [float("inf")]
    started = time.time()

    def kill_when_due(supervisor: Supervisor) -> None:
        worker = supervisor.workers[0]
        stats = supervisor.state.workers.get("worker-0")
        if time.time() - started > 300:  # a guard: fail, do not hang
            supervisor.stop_event.set()
        if not worker.alive or stats is None or stats["t"] < worker.started_at:
            return  # down, or not reporting yet in this life
        if len(kills) == 10:
            last_life_serving[0] = min(last_life_serving[0], stats["t"])
            if stats["t"] - last_life_serving[0] > 10.0:  # the last life served 10 s: stop
                supervisor.stop_event.set()
        elif stats["embedded"] >= target[0]:
            worker.process.kill()
            worker.process.wait()
            kills.append(stats["embedded"])
            target[0] = int(rng.integers(1, 4))

    out = paced_scene / "killed-10"
    summary = run_pipeline(paced_scene / "cams.yaml", out, live=False, on_tick=kill_when_due)

    assert len(kills) == 10 and summary["worker_restarts"] == 10, kills
    cameras = summary["cameras"].values()
    assert all(c["finished"] and c["error"] is None for c in cameras)
    # the cameras went on at their 10 fps through every restart
    assert all(c["frames"] >= 9 * (last_life_serving[0] - started) for c in cameras)
    assert summary["messages_lost"] > 0  # crops sent to a dead worker are counted, not hidden
    assignments = _lines(out / "assignments.jsonl")
    with Gallery.open(GalleryConfig(path=out / "gallery", vector_size=32, num_parts=3)) as g:
        for a in assignments:
            assert g.get(a["camera"], a["track_id"], a["run"]).global_id == a["global_id"]
    assigned = {(a["camera"], a["track_id"]) for a in assignments}
    late = [
        t
        for t in _lines(out / "tracklets.jsonl")
        if t["t_last"] > last_life_serving[0] + 3 and t["crops_sent"] >= 2  # min_crops
    ]
    assert late and all((t["camera"], t["track_id"]) in assigned for t in late)


def _worker_processes_of(out: Path) -> list[int]:
    """Pids of live processes whose command line names a worker config under ``out``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if str(out / "workers") in command:
            pids.append(int(entry.name))
    return pids


@pytest.mark.slow
def test_a_killed_run_leaves_no_worker_behind_and_resumes_where_it_stopped(
    paced_scene: Path, tmp_path: Path
) -> None:
    cams = yaml.safe_load((paced_scene / "cams.yaml").read_text())
    for camera in cams["cameras"]:
        camera["source"]["path"] = str(paced_scene / camera["source"]["path"])
        camera["source"].update(pace=5.0, loop=False)  # 600 frames in 12 s
        camera["ground_truth"] = str(paced_scene / camera["ground_truth"])
    cams["worker"]["embedder"]["model"] = str(paced_scene / "tiny.safetensors")
    path = tmp_path / "cams.yaml"
    path.write_text(yaml.safe_dump(cams))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "stream", "run", "--cameras", str(path), "--out", str(out)]
    supervisor = subprocess.Popen([*command, "--no-live"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    events = out / "events.jsonl"
    while not (events.is_file() and len(events.read_bytes().splitlines()) > 300):
        assert supervisor.poll() is None and time.monotonic() < deadline
        with contextlib.suppress(subprocess.TimeoutExpired):
            supervisor.wait(0.2)  # waits for the run's progress, or its end
    assert _worker_processes_of(out)
    supervisor.send_signal(signal.SIGKILL)
    supervisor.wait()
    while _worker_processes_of(out):  # the worker got SIGTERM with its parent's death
        assert time.monotonic() < deadline, "the worker outlived its killed supervisor"
        with contextlib.suppress(subprocess.TimeoutExpired):
            supervisor.wait(0.1)
    killed = _lines(out / "events.jsonl") if events.read_text().endswith("\n") else None
    summary = run_pipeline(path, out, live=False, resume=True)  # opens the gallery it released

    runs = json.loads((out / "run.json").read_text())["runs"]
    assert [r["resumed"] for r in runs] == [False, True] and summary["run"] == runs[1]["run"]
    lines = _lines(out / "events.jsonl")
    before = [e for e in lines if e["run"] == runs[0]["run"]]
    after = [e for e in lines if e["run"] == runs[1]["run"]]
    assert killed is None or before == killed
    assert before and after and len(before) + len(after) == len(lines)
    for camera in ("cam1", "cam2", "cam3"):
        old = [e for e in before if e["camera"] == camera]
        new = [e for e in after if e["camera"] == camera]
        if not old:
            continue
        assert max(e["frame"] for e in old) < min(e["frame"] for e in new)  # nothing twice
        assert max(e["track_id"] for e in old) < min(e["track_id"] for e in new)
        assert max(e["frame"] for e in new) == 599
    assert all(stats["finished"] for stats in summary["cameras"].values())
    scores = evaluate_run(out, path)
    assert scores["IDF1"] > 0


def test_stream_run_source_needs_no_cams_yaml(scene: Path, tmp_path: Path) -> None:
    """The quick path: videos named on the command line, everything else defaulted."""
    videos = [str(scene / "scene" / camera / "video.mp4") for camera in ("cam1", "cam2")]
    out = tmp_path / "quick"
    argv = ["run", *(a for v in videos for a in ("--source", v)), "--out", str(out), "--no-live"]
    argv += ["--model", str(scene / "tiny.safetensors"), "--detector", "background_subtraction"]
    assert stream_main(argv) == 0
    cams = yaml.safe_load((out / "cams.yaml").read_text())
    assert [c["id"] for c in cams["cameras"]] == ["video", "cam2"]  # a repeated name: numbered
    assert cams["worker"]["embedder"]["runtime"] == "torch"
    events = _lines(out / "events.jsonl")
    assert {e["camera"] for e in events} == {"video", "cam2"}
    with pytest.raises(ValueError, match="go with --source"):
        run_handler(["run", "--cameras", str(scene / "cams.yaml"), "--model", "m.onnx"])


def test_a_real_video_alone_is_detected_and_tracked(tud_campus: Path, tmp_path: Path) -> None:
    """No cams.yaml, no detector named: the shipped detector and re-ID model find people."""
    out = tmp_path / "tud"
    video = str(tud_campus / "TUD-Campus.mp4")
    argv = ["run", "--source", video, "--out", str(out), "--no-live", "--max-frames", "25"]
    assert stream_main(argv) == 0
    events = _lines(out / "events.jsonl")
    assert len({e["track_id"] for e in events}) >= 4  # TUD-Campus shows 5-6 people at first
    assert max(e["frame"] for e in events) == 24


def run_handler(argv: list[str]) -> int:
    """A `stream` subcommand's handler, without the CLI's error printing (to see the raise)."""
    args = stream_parser().parse_args(argv)
    return args.handler(args)


def test_the_id_set_counts_distinct_ids_in_a_bitmap() -> None:
    ids = IdSet()
    for global_id in [1, 5, 1, 9, 5, 1000, 0]:
        ids.add(global_id)
    assert len(ids) == 5 and len(ids._bits) == 126


def test_the_progress_line_says_what_the_live_table_says() -> None:
    state = RunState(cameras={"cam1": {"frames": 40, "fps": 9.5}}, events=7, assignments=2)
    state.global_ids.add(3)
    line = progress_line(state, time.monotonic() - 12)
    assert line.startswith("12 s: cam1 40 frames 9.5 fps; events 7, assignments 2, global ids 1")


def people_and_uncalibrated_cams(scene: Path, tmp_path: Path) -> tuple[Path, dict]:
    """A folder data set of 12 people to calibrate on, and the scene's cams.yaml (absolute
    paths) without a threshold: a site that has not calibrated yet."""
    from test_folder_dataset import write_people

    people = write_people(tmp_path / "people", people=12)
    cams = yaml.safe_load((scene / "cams.yaml").read_text())
    for camera in cams["cameras"]:
        camera["source"] = str(scene / camera["source"])
        camera["ground_truth"] = str(scene / camera["ground_truth"])
    del cams["worker"]["gallery"]["threshold"]
    return people, cams


def test_stream_calibrate_writes_a_threshold_that_stream_run_uses_for_that_model(
    scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    people, cams = people_and_uncalibrated_cams(scene, tmp_path)
    cams_yaml = tmp_path / "site.yaml"
    cams_yaml.write_text(yaml.safe_dump(cams))
    model = scene / "tiny.safetensors"
    argv = ["calibrate", "--data", str(people), "--model", str(model), "--cameras", str(cams_yaml)]
    assert stream_main([*argv, "--option", "test_fraction=0.5"]) == 0
    written = yaml.safe_load((tmp_path / "site.calibration.yaml").read_text())
    threshold = written["gallery"]["threshold"]
    assert threshold > 0 and written["calibration"]["identities"] == 6
    assert f"threshold {threshold:.4f}" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)  # SPEC §8's bare form: `stream calibrate --model M --data DIR`
    bare = ["calibrate", "--model", str(model), "--data", str(people)]
    assert stream_main([*bare, "--option", "test_fraction=0.5"]) == 0
    assert yaml.safe_load((tmp_path / "calibration.yaml").read_text()) == {
        **written,
        "calibration": {**written["calibration"], "created": ANY},
    }

    workers = worker_configs(load_cams_config(cams_yaml), tmp_path / "run", "r", str(cams_yaml))
    settings = yaml.safe_load(workers[0].config_path.read_text())
    assert settings["gallery"]["threshold"] == threshold  # read for this very model
    other = tmp_path / "other.safetensors"
    other.write_bytes(model.read_bytes() + b" ")
    cams["worker"]["embedder"]["model"] = str(other)
    cams_yaml.write_text(yaml.safe_dump(cams))
    workers = worker_configs(load_cams_config(cams_yaml), tmp_path / "run2", "r", str(cams_yaml))
    assert "threshold" not in yaml.safe_load(workers[0].config_path.read_text())["gallery"]


def test_stream_calibrate_embeds_with_the_flip_of_the_cameras_it_is_for(
    scene: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker with embedder.flip averages each crop with its mirror image: its distances are
    not those of a calibration without flip, so `stream calibrate --cameras` embeds as the run
    will (cams.yaml's model and flip), and `stream run` uses only a calibration of its flip."""
    import trainer.evaluation.evaluate as evaluate

    embedded_with_flip = []
    evaluate_model = evaluate.evaluate_model

    def spy(*args: object, flip: bool = False, **kwargs: object) -> object:
        embedded_with_flip.append(flip)
        return evaluate_model(*args, flip=flip, **kwargs)

    monkeypatch.setattr(evaluate, "evaluate_model", spy)
    people, cams = people_and_uncalibrated_cams(scene, tmp_path)
    model = scene / "tiny.safetensors"
    cams["worker"]["embedder"] = {"runtime": "torch", "model": str(model), "flip": True}
    cams_yaml = tmp_path / "site.yaml"
    cams_yaml.write_text(yaml.safe_dump(cams))
    argv = ["calibrate", "--data", str(people), "--cameras", str(cams_yaml)]
    assert stream_main([*argv, "--option", "test_fraction=0.5"]) == 0  # model from cams.yaml
    flipped = yaml.safe_load((tmp_path / "site.calibration.yaml").read_text())
    assert flipped["calibration"]["flip"] is True
    assert flipped["calibration"]["model_sha256"] == file_sha256(model)
    plain_out = tmp_path / "plain.yaml"
    plain = ["calibrate", "--data", str(people), "--model", str(model), "--no-flip"]
    assert stream_main([*plain, "--out", str(plain_out), "--option", "test_fraction=0.5"]) == 0
    unflipped = yaml.safe_load(plain_out.read_text())
    assert unflipped["calibration"]["flip"] is False
    assert embedded_with_flip == [True, False]

    workers = worker_configs(load_cams_config(cams_yaml), tmp_path / "run", "r", str(cams_yaml))
    settings = yaml.safe_load(workers[0].config_path.read_text())
    assert settings["gallery"]["threshold"] == flipped["gallery"]["threshold"]
    (tmp_path / "site.calibration.yaml").write_text(plain_out.read_text())  # flip off: not used
    with caplog.at_level("WARNING"):
        workers = worker_configs(
            load_cams_config(cams_yaml), tmp_path / "run2", "r", str(cams_yaml)
        )
    assert "threshold" not in yaml.safe_load(workers[0].config_path.read_text())["gallery"]
    assert "calibrated with embedder.flip False" in caplog.text

    cams["worker"]["embedder"]["model"] = str(tmp_path / "tiny.onnx")
    cams_yaml.write_text(yaml.safe_dump(cams))
    with pytest.raises(ValueError, match="worker.embedder.model is an ONNX file"):
        run_handler(argv)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_assignments_of_external_curve_workers_are_recorded(scene: Path, tmp_path: Path) -> None:
    """The compose layout: an external worker on tcp with Curve; the supervisor's SUB must
    speak Curve like the cameras' to record the assignments (it connected in clear before)."""
    from stream.security import generate_keypair

    generate_keypair(tmp_path / "worker", "worker")
    generate_keypair(tmp_path / "stage", "stage", authorize_dir=tmp_path / "accepted")
    crops, assignments = (f"tcp://127.0.0.1:{_free_port()}" for _ in range(2))
    server = {
        "enabled": True,
        "server_secret_key": str(tmp_path / "worker" / "worker.key_secret"),
        "client_keys_dir": str(tmp_path / "accepted"),
    }
    worker = {
        "embedder": {"runtime": "torch", "model": str(scene / "tiny.safetensors"), "threads": 1},
        "gallery": {"path": str(tmp_path / "gallery"), "threshold": 10.0},
        "tracklets": {"min_crops": 2},
        "sockets": {
            "crops": {"endpoint": crops, "bind": True},
            "assignments": {"endpoint": assignments, "bind": True},
            "curve": server,
        },
    }
    (tmp_path / "worker.yaml").write_text(yaml.safe_dump(worker))
    log = tmp_path / "worker.log"
    command = [sys.executable, "-m", "stream", "worker", "--config", str(tmp_path / "worker.yaml")]
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "ready" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(0.2)
        cams = yaml.safe_load((scene / "cams.yaml").read_text())
        for camera in cams["cameras"]:
            camera["source"] = str(scene / camera["source"])
            camera["ground_truth"] = str(scene / camera["ground_truth"])
        del cams["worker"]
        cams["workers"] = {
            "crop_endpoints": [crops],
            "assignment_endpoints": [assignments],
            "curve": {
                "enabled": True,
                "client_secret_key": str(tmp_path / "stage" / "stage.key_secret"),
                "server_public_key": str(tmp_path / "worker" / "worker.key"),
            },
        }
        path = tmp_path / "cams.yaml"
        path.write_text(yaml.safe_dump(cams))
        run_pipeline(path, tmp_path / "run", live=False)
    finally:
        process.terminate()
        process.wait(60)
    recorded = _lines(tmp_path / "run" / "assignments.jsonl")
    assert recorded and {a["camera"] for a in recorded} <= {"cam1", "cam2"}


def test_stream_run_set_overrides_reach_the_run(
    scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["run", "--cameras", str(scene / "cams.yaml"), "--out", str(tmp_path / "o"), "--no-live"]
    assert stream_main([*argv, "--set", "crops.every_n_frames"]) == 2
    assert "is not key=value" in capsys.readouterr().err
    assert stream_main([*argv, "--set", "outputs.video=false", "--max-frames", "5"]) == 0
    assert not (tmp_path / "o" / "videos").exists()  # the override was applied
