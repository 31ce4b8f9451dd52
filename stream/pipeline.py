"""`stream run --cameras cams.yaml --out DIR`: the live multi-camera pipeline (SPEC §1, §5).

One process per camera (`stream.camera.run_camera`: source → detector → tracker → crops over
ZeroMQ), the feature worker(s) (`stream worker` subprocesses with the embedded defaults, or the
external endpoints that cams.yaml names) and the identity gallery they share. This process
supervises them: it shows a live table (per camera FPS, tracks, queue depth, drops; per worker
batch and latency), writes what the stages and workers report, restarts a worker that died
(the stages keep running meanwhile, dropping and counting crops; ``workers.restart_limit``
times, waiting ``restart_backoff_s`` doubled after each restart), and stops everything cleanly
on Ctrl-C with what was written kept. Its children die with it (`stream.lifecycle`), so a killed
run leaves no worker holding the gallery.

Every run has an id (run.json lists them); it marks the events and the gallery's tracklets,
whose point ids and times (`stream.camera`) never collide with another run's, so a run against
a persistent gallery never hands a new person an old tracklet's id. ``--out`` must be a fresh
folder unless ``--overwrite`` (its run outputs are deleted first) or ``--resume``: a killed run
continues as a new run segment in the same folder — file sources from the frame after the last
one recorded, track ids numbered on past the recorded ones, the gallery reopened.

Outputs under DIR: events.jsonl (camera, frame, time, track id, global id, box, score, run),
assignments.jsonl (every global-id assignment the workers published), tracklets.jsonl (each
ended track: frames, crops sent, last global id, thumbnail, run), results/ (the boxes with
their final global ids: MOTChallenge per camera, AI City MTMC), camK.mp4 annotated
videos and thumbnails/ (by the stages), gallery/ (embedded Qdrant Edge shard and its manifest),
workers/ (generated worker configs and logs), run.json, summary.json (with
``messages_lost``: messages the cameras sent that no embedded worker received — lost with a
worker that died, or in flight when the run stopped).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from queue import Empty
from typing import Any

import yaml

from stream.config import CamsConfig, load_cams_config, names_gallery_location

WORKER_STOP_TIMEOUT_S = 60.0
WORKER_READY_TIMEOUT_S = 180.0
MAX_RESTART_DELAY_S = 30.0
TICK_S = 0.2
REPORT_QUEUE_SIZE = 4096  # camera reports waiting for the supervisor
PROGRESS_EVERY_S = 10.0  # --no-live: a progress line this often
RUN_FILE = "run.json"
# what a run writes into --out: --overwrite deletes exactly these, nothing else in the folder
RUN_OUTPUTS = ("events.jsonl", "assignments.jsonl", "tracklets.jsonl", "summary.json", RUN_FILE)
RUN_FOLDERS = ("videos", "thumbnails", "gallery", "workers", "work", "results")


def new_run_id() -> str:
    """A run id: UTC start time and a random suffix (two runs in one second differ)."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class ResumePoint:
    """Where a camera of a resumed run continues: its first unrecorded frame, and the offset
    that numbers its new tracks past every recorded one."""

    start_frame: int = 0
    track_offset: int = 0


def resume_points(events: Path) -> dict[str, ResumePoint]:
    """Per camera, from a killed run's events.jsonl (a line cut by the kill is skipped)."""
    last_frame: dict[str, int] = {}
    last_track: dict[str, int] = {}
    with open(events) as lines:
        for line in lines:
            try:
                event = json.loads(line)
                camera, frame, track = event["camera"], int(event["frame"]), int(event["track_id"])
            except (ValueError, KeyError, TypeError):
                continue
            last_frame[camera] = max(last_frame.get(camera, -1), frame)
            last_track[camera] = max(last_track.get(camera, -1), track)
    return {
        camera: ResumePoint(last_frame[camera] + 1, last_track[camera] + 1) for camera in last_frame
    }


def _cut_partial_line(path: Path) -> None:
    """Drop a last line a kill left unfinished, so appended lines start on their own."""
    if not path.is_file():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(end)


def prepare_out(out: Path, *, resume: bool, overwrite: bool) -> dict[str, ResumePoint]:
    """Make ``out`` ready for a run: fresh, or cleared (``overwrite``), or a killed run to
    continue (``resume``: its resume points). A used folder without either is an error."""
    from reid_core.cli import claim_output_folder

    used = [name for name in (*RUN_OUTPUTS, *RUN_FOLDERS) if (out / name).exists()]
    claim_output_folder(out, used, "a run", resume=resume, overwrite=overwrite)
    if not resume:
        return {}
    events = out / "events.jsonl"
    if not events.is_file():
        raise ValueError(f"--resume: {out} holds no run to continue (no events.jsonl)")
    for name in ("events.jsonl", "assignments.jsonl", "tracklets.jsonl"):
        _cut_partial_line(out / name)
    return resume_points(events)


def _record_run(out: Path, run_id: str, cameras_yaml: Path, resumed: bool) -> None:
    path = out / RUN_FILE
    runs = json.loads(path.read_text())["runs"] if path.is_file() else []
    runs.append(
        {
            "run": run_id,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cameras_yaml": str(cameras_yaml.resolve()),
            "resumed": resumed,
        }
    )
    path.write_text(json.dumps({"runs": runs}, indent=2) + "\n")


@dataclass
class WorkerProcess:
    """One `stream worker` subprocess this run started (and restarts if it dies)."""

    index: int
    config_path: Path
    log_path: Path
    crop_endpoint: str
    assignment_endpoint: str
    process: subprocess.Popen | None = None
    restarts: int = 0
    died_at: float | None = None  # monotonic time its death was noticed; None while it runs
    started_at: float = 0.0  # Unix time of the last start: its stats carry later times

    def start(self) -> None:
        from reid_core.runtime.embedder import MALLOC_ENV
        from stream.lifecycle import die_with_parent

        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stream", "worker", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **MALLOC_ENV, "PYTHONUNBUFFERED": "1"},
            preexec_fn=partial(die_with_parent, os.getpid()),
        )
        log.close()
        self.died_at = None
        self.started_at = time.time()

    def wait_ready(self, timeout_s: float) -> None:
        """Until the worker has bound its crop socket (its ipc file exists), so the cameras do
        not start dropping crops while it loads the model; a worker that dies is an error."""
        socket_file = Path(self.crop_endpoint.removeprefix("ipc://"))
        deadline = time.monotonic() + timeout_s
        while not socket_file.exists():
            if not self.alive:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"worker {self.index} exited while starting:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.index} not ready after {timeout_s:.0f} s")
            time.sleep(0.1)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float) -> int | None:
        """SIGTERM (the worker drains, flushes the gallery and exits 0), then SIGKILL."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class IdSet:
    """Distinct global ids seen, as a bitmap: ids are small sequential integers, so a run that
    sees a million identities holds 125 KB where a set of ints would hold ~60 MB."""

    def __init__(self) -> None:
        self._bits = bytearray()
        self._count = 0

    def add(self, global_id: int) -> None:
        byte, bit = divmod(global_id, 8)
        if byte >= len(self._bits):
            self._bits.extend(bytes(byte + 1 - len(self._bits)))
        if not self._bits[byte] >> bit & 1:
            self._bits[byte] |= 1 << bit
            self._count += 1

    def __len__(self) -> int:
        return self._count


@dataclass
class RunState:
    """What the supervisor knows, for the live table and summary.json."""

    cameras: dict[str, dict[str, Any]] = field(default_factory=dict)
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: int = 0
    assignments: int = 0
    global_ids: IdSet = field(default_factory=IdSet)
    tracklets: int = 0
    worker_restarts: int = 0
    received_by_dead_workers: int = 0  # messages received by worker processes that died


def _endpoints(count: int, run_id: str) -> list[tuple[str, str]]:
    """(crops, assignments) ipc endpoints per embedded worker, short enough for ipc paths
    (107 bytes)."""
    base = Path(tempfile.gettempdir()) / f"occlureid-{run_id}"
    return [(f"ipc://{base}-w{i}-crops", f"ipc://{base}-w{i}-assign") for i in range(count)]


def worker_configs(
    config: CamsConfig, out: Path, run_id: str, source: str = "cams.yaml"
) -> list[WorkerProcess]:
    """Write one `stream worker` config per embedded worker from cams.yaml's `worker` and
    `gallery` sections (the gallery defaults to an Edge shard in DIR/gallery); a bad section
    is an error naming ``source`` (the cams.yaml) and the field."""
    from stream.worker_config import parse_worker_config

    count = config.workers.num_workers
    # matching settings may sit in worker.gallery; where the gallery lives comes from cams.yaml's
    # gallery section, else the worker's own, else an embedded shard in the run folder
    gallery = {**config.worker.get("gallery", {}), **(config.gallery or {})}
    if not names_gallery_location(gallery):
        gallery["path"] = str(out / "gallery")
    if count > 1 and gallery.get("url") is None:
        raise ValueError(
            f"{count} embedded workers need a Qdrant server gallery (gallery.url in cams.yaml): "
            "an embedded Edge gallery opens in one process only"
        )
    folder = out / "workers"
    planned = []
    for index, (crops, assignments) in enumerate(_endpoints(count, run_id)):
        settings = {
            **config.worker,
            "name": f"worker-{index}",
            "worker_index": index,
            "num_workers": count,
            "sockets": {
                **config.worker.get("sockets", {}),
                "crops": {"endpoint": crops, "bind": True},
                "assignments": {"endpoint": assignments, "bind": True},
            },
            "gallery": gallery,
            "tracklets": {
                "thumbnails": str(out / "thumbnails" / "best"),
                **config.worker.get("tracklets", {}),
            },
        }
        checked = parse_worker_config(settings, source, field_prefix="worker.")
        planned.append((index, crops, assignments, settings))
    try:  # the shipped model's digest check and ONNX export, once, here
        checked.embedder.resolved()
    except FileNotFoundError as error:
        raise ValueError(f"{source}: worker.{error}") from None
    from stream.calibration import calibration_path, read_calibration

    # `stream calibrate --cameras` wrote a threshold beside cams.yaml: is it for this model?
    if "threshold" not in gallery and calibration_path(Path(source)).is_file():
        from reid_core.zoo import shipped_model_path

        model = checked.embedder.model or shipped_model_path()
        calibrated = read_calibration(Path(source), Path(model), checked.embedder.flip)
        if calibrated is not None:
            for *_, settings in planned:
                settings["gallery"] = {**settings["gallery"], "threshold": calibrated}
    folder.mkdir(parents=True, exist_ok=True)  # only once all is valid: a failed start leaves
    workers = []  # no trace that would make --out look used
    for index, crops, assignments, settings in planned:
        path = folder / f"worker-{index}.yaml"
        path.write_text(yaml.safe_dump(settings, sort_keys=False))
        workers.append(
            WorkerProcess(index, path, folder / f"worker-{index}.log", crops, assignments)
        )
    return workers


class Supervisor:
    """Runs the camera processes and workers of one `stream run` and records their reports."""

    def __init__(
        self,
        config: CamsConfig,
        out: Path,
        max_frames: int | None = None,
        run_id: str | None = None,
        resume: dict[str, ResumePoint] | None = None,
        source: str = "cams.yaml",
    ) -> None:
        self.config = config
        self.out = out
        self.max_frames = max_frames
        self.run_id = run_id or new_run_id()
        self.resume = resume or {}
        self.clock_origin = time.time()  # the run's clock (file sources): reset at `start`
        self.state = RunState()
        self.context = multiprocessing.get_context("spawn")
        # bounded: a stalled supervisor makes the cameras wait, not the memory grow
        self.queue = self.context.Queue(REPORT_QUEUE_SIZE)
        self.stop_event = self.context.Event()
        self.external = bool(config.workers.crop_endpoints)
        self.workers = [] if self.external else worker_configs(config, out, self.run_id, source)
        self.crop_endpoints = (
            list(config.workers.crop_endpoints)
            if self.external
            else [w.crop_endpoint for w in self.workers]
        )
        self.assignment_endpoints = (
            list(config.workers.assignment_endpoints)
            if self.external
            else [w.assignment_endpoint for w in self.workers]
        )
        self.cameras: dict[str, multiprocessing.Process] = {}
        self.files = {
            name: (out / f"{name}.jsonl").open("a")
            for name in ("events", "assignments", "tracklets")
        }

    def start(self) -> None:
        from stream.camera import run_camera

        for worker in self.workers:
            worker.start()
        for worker in self.workers:
            worker.wait_ready(WORKER_READY_TIMEOUT_S)
        self.clock_origin = time.time()  # file sources' times count from the cameras' start
        for camera in self.config.cameras:
            process = self.context.Process(
                target=run_camera,
                name=f"camera-{camera.id}",
                args=(camera, self.config, self.out),
                kwargs={
                    "crop_endpoints": self.crop_endpoints,
                    "assignment_endpoints": self.assignment_endpoints,
                    "stop_event": self.stop_event,
                    "emit": self.queue.put,
                    "max_frames": self.max_frames,
                    "run": self.run_id,
                    "clock_origin": self.clock_origin,
                    "start_frame": self.resume.get(camera.id, ResumePoint()).start_frame,
                    "track_offset": self.resume.get(camera.id, ResumePoint()).track_offset,
                    "supervisor_pid": os.getpid(),
                    "nice": self.config.camera_nice,
                },
            )
            process.start()
            self.cameras[camera.id] = process

    # -- reports in ------------------------------------------------------------------------
    def _record(self, kind: str, payload: Any) -> None:
        if kind == "events":
            for event in payload:
                self.files["events"].write(json.dumps(event) + "\n")
                if event.get("global_id") is not None:
                    self.state.global_ids.add(int(event["global_id"]))
            self.state.events += len(payload)
        elif kind == "stats":
            self.state.cameras[payload.get("camera", "?")] = payload
        elif kind == "track_end":
            self.files["tracklets"].write(json.dumps({**payload, "run": self.run_id}) + "\n")
            self.state.tracklets += 1

    def _record_worker_message(self, frames: list[bytes]) -> None:
        from stream.mtmc import assignment_record
        from stream.wire import AssignmentMessage, StatsMessage, WireError, decode

        try:
            message = decode(frames)
        except WireError:
            return
        if isinstance(message, AssignmentMessage) and message.run == self.run_id:
            record = assignment_record(message, time=message.t)
            self.files["assignments"].write(json.dumps(record) + "\n")
            self.state.assignments += 1
            self.state.global_ids.add(message.global_id)
        elif isinstance(message, StatsMessage):
            self.state.workers[message.worker] = {
                **message.counters,
                **message.gauges,
                "t": message.t,
            }

    def drain_reports(self, subscriber: Any, timeout_s: float) -> None:
        import zmq

        deadline = time.monotonic() + timeout_s
        while True:
            self._take_reports(0.01)
            while subscriber.poll(0):
                self._record_worker_message(subscriber.recv_multipart(zmq.NOBLOCK))
            if time.monotonic() >= deadline:
                break
        for handle in self.files.values():
            handle.flush()

    def supervise_workers(self, at_once: bool = False) -> None:
        """Restart a worker that died, after its back-off (``at_once``: now); the stages drop
        and count crops meanwhile. What the dead one had received is banked for the count of
        lost messages."""
        settings = self.config.workers
        now = time.monotonic()
        for worker in self.workers:
            if worker.alive:
                continue
            name = f"worker-{worker.index}"
            if worker.died_at is None:
                worker.died_at = now
                last = self.state.workers.pop(name, {})
                if last.get("t", 0.0) >= worker.started_at:  # not an earlier life's, banked
                    self.state.received_by_dead_workers += int(last.get("received", 0))
            if worker.restarts >= settings.restart_limit:
                continue
            delay = min(settings.restart_backoff_s * 2**worker.restarts, MAX_RESTART_DELAY_S)
            if at_once or now - worker.died_at >= delay:
                worker.restarts += 1
                self.state.worker_restarts += 1
                worker.start()

    def messages_lost(self) -> int | None:
        """Messages the cameras sent that no embedded worker received (None with external
        workers, which may also serve other runs)."""
        if self.external:
            return None
        sent = sum(int(stats.get("sent", 0)) for stats in self.state.cameras.values())
        received = self.state.received_by_dead_workers + sum(
            int(stats.get("received", 0)) for stats in self.state.workers.values()
        )
        return max(sent - received, 0)

    @property
    def cameras_running(self) -> bool:
        return any(process.is_alive() for process in self.cameras.values())

    def stop_cameras(self, timeout_s: float = 30.0) -> None:
        """Ask the cameras to stop and wait, taking their last reports meanwhile (a camera
        blocked on the full report queue could not finish otherwise)."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout_s
        while self.cameras_running and time.monotonic() < deadline:
            self._take_reports(0.05)
        for process in self.cameras.values():
            if process.is_alive():
                process.terminate()
            process.join()
        self._take_reports(0.0)

    def _take_reports(self, wait_s: float) -> None:
        try:
            kind, payload = self.queue.get(timeout=wait_s) if wait_s else self.queue.get_nowait()
        except Empty:
            return
        self._record(kind, payload)
        while True:
            try:
                kind, payload = self.queue.get_nowait()
            except Empty:
                return
            self._record(kind, payload)

    def stop_workers(self) -> dict[str, int | None]:
        return {f"worker-{w.index}": w.stop(WORKER_STOP_TIMEOUT_S) for w in self.workers}

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()


def progress_line(state: RunState, started: float) -> str:
    """One line of what the live table shows, for logs (``--no-live``)."""
    cameras = ", ".join(
        f"{name} {stats.get('frames', 0)} frames {stats.get('fps', 0):.1f} fps"
        for name, stats in sorted(state.cameras.items())
    )
    return (
        f"{time.monotonic() - started:.0f} s: {cameras or 'cameras starting'}; events "
        f"{state.events}, assignments {state.assignments}, global ids {len(state.global_ids)}, "
        f"worker restarts {state.worker_restarts}"
    )


def live_table(state: RunState, started: float):
    from rich.table import Table

    table = Table(title=f"stream run — {time.monotonic() - started:.0f} s")
    for column in ("camera", "fps", "tracks", "queue", "sent", "dropped", "error"):
        table.add_column(column)
    for camera, stats in sorted(state.cameras.items()):
        table.add_row(
            camera,
            f"{stats.get('fps', 0):.1f}",
            str(stats.get("tracks_active", 0)),
            str(stats.get("queue_depth", 0)),
            str(stats.get("sent", 0)),
            str(stats.get("dropped", 0)),
            str(stats.get("error") or ""),
        )
    for name, stats in sorted(state.workers.items()):
        batches = max(stats.get("batches", 0), 1)
        table.add_row(
            name,
            f"{stats.get('crops_per_s', 0):.1f} crops/s",
            str(stats.get("open_tracklets", 0)),
            f"batch {stats.get('embedded', 0) / batches:.1f}",
            str(stats.get("embedded", 0)),
            str(stats.get("dropped_malformed", 0)),
            f"latency p95 {stats.get('latency_p95_ms', 0.0):.0f} ms",
        )
    table.caption = (
        f"events {state.events} · assignments {state.assignments} · "
        f"global ids {len(state.global_ids)} · worker restarts {state.worker_restarts}"
    )
    return table


def run_pipeline(
    cameras_yaml: str | Path,
    out: str | Path,
    max_frames: int | None = None,
    live: bool = True,
    after_start: Callable[[Supervisor], None] | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    on_tick: Callable[[Supervisor], None] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run every camera of cams.yaml to its end (or Ctrl-C); returns summary.json's content.

    ``out`` must hold no run unless ``resume`` (continue it) or ``overwrite`` (replace it).
    ``after_start(supervisor)`` runs once everything is started, ``on_tick(supervisor)`` on
    every supervision tick (fault-injection tests use them to kill workers). ``overrides``
    (``--set``) are merged over cams.yaml."""
    import zmq
    from rich.console import Console
    from rich.live import Live

    from stream.security import open_endpoint
    from stream.wire import AssignmentMessage, StatsMessage

    config = load_cams_config(cameras_yaml, overrides)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    resume_at = prepare_out(out, resume=resume, overwrite=overwrite)
    supervisor = Supervisor(config, out, max_frames, resume=resume_at, source=str(cameras_yaml))
    _record_run(out, supervisor.run_id, Path(cameras_yaml), resume)
    context = zmq.Context()
    subscriber = context.socket(zmq.SUB)
    subscriber.setsockopt(zmq.LINGER, 0)
    for prefix in (AssignmentMessage.subscription(), StatsMessage.subscription()):
        subscriber.setsockopt(zmq.SUBSCRIBE, prefix)
    for endpoint in supervisor.assignment_endpoints:  # over Curve where the workers use it
        open_endpoint(subscriber, endpoint, config.workers.curve, bind=False)
    started = time.monotonic()
    interrupted = False
    worker_exit: dict[str, int | None] = {}
    console = Console()
    try:
        supervisor.start()
        if after_start is not None:
            after_start(supervisor)
        screen = Live(live_table(supervisor.state, started), console=console) if live else None
        with screen or nullcontext():
            try:
                next_line = started + PROGRESS_EVERY_S
                while supervisor.cameras_running:
                    supervisor.drain_reports(subscriber, TICK_S)
                    supervisor.supervise_workers()
                    if on_tick is not None:
                        on_tick(supervisor)
                    if screen is not None:
                        screen.update(live_table(supervisor.state, started))
                    elif time.monotonic() >= next_line:  # --no-live: a line now and then
                        next_line += PROGRESS_EVERY_S
                        console.print(progress_line(supervisor.state, started), highlight=False)
            except KeyboardInterrupt:
                interrupted = True
            supervisor.stop_cameras()
            supervisor.supervise_workers(at_once=True)  # serves the crops still queued
            supervisor.drain_reports(subscriber, 0.5)
            worker_exit = supervisor.stop_workers()  # they drain: the last assignments come now
            supervisor.drain_reports(subscriber, 1.0)
    finally:
        if not worker_exit:
            supervisor.stop_cameras()
            supervisor.stop_workers()
        subscriber.close(linger=0)
        context.term()
        supervisor.close()
    state = supervisor.state
    console.print(live_table(state, started))
    summary = {
        "run": supervisor.run_id,
        "resumed": resume,
        "clock_origin": supervisor.clock_origin,
        "cameras_yaml": str(Path(cameras_yaml).resolve()),
        "seconds": round(time.monotonic() - started, 2),
        "interrupted": interrupted,
        "cameras": state.cameras,
        "workers": state.workers,
        "worker_exit_codes": worker_exit,
        "worker_restarts": state.worker_restarts,
        "messages_lost": supervisor.messages_lost(),
        "events": state.events,
        "assignments": state.assignments,
        "global_ids": len(state.global_ids),
        "tracklets": state.tracklets,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if state.events:
        from stream.mtmc import final_labels, write_result_files

        labelled = final_labels(out)  # events and assignments read once for both outputs
        write_result_files(out, labelled)  # final global ids, MOTChallenge and AI City formats
        if config.outputs.video and config.outputs.relabel_video:
            from stream.relabel import relabel_videos

            relabel_videos(out, labelled, config.outputs.video_fourcc, config.outputs.trail_s)
    return summary


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the multi-camera pipeline of a cams.yaml, or of --source videos/streams",
        description="Start one stage per camera (detector, tracker, crop selection), the feature "
        "worker(s) and the identity gallery; show live per-camera FPS, queue depth and latency; "
        "write events.jsonl, assignments.jsonl, annotated videos, thumbnails and summary.json. "
        "Ctrl-C stops cleanly and keeps what was written.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--cameras", type=Path, help="cams.yaml (the full form)")
    where.add_argument(
        "--source",
        action="append",
        metavar="PATH|URL|INDEX",
        help="a camera without a cams.yaml: a video file, image folder, rtsp:// URL or webcam "
        "index (repeat for several cameras); OUT/cams.yaml records the configuration used",
    )
    parser.add_argument("--model", type=Path, help="--source: re-ID model (default: shipped)")
    parser.add_argument(
        "--detector", help="--source: detector name (default: ssdlite, the shipped one)"
    )
    parser.add_argument("--device", help="--source: where the worker embeds (cpu, cuda:0)")
    parser.add_argument("--out", type=Path, default=Path("runs/stream"), help="output folder")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a cams.yaml value by its dotted path, e.g. gallery.threshold=0.5 or "
        "crops.every_n_frames=3 (repeatable; mappings only, not list items)",
    )
    parser.add_argument("--max-frames", type=int, help="stop each camera after N frames")
    parser.add_argument("--no-live", action="store_true", help="no live table (logs, CI)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the killed run in --out (file sources from where they stopped)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="delete the run already in --out first"
    )
    parser.set_defaults(handler=_handle)


def quick_cams(
    sources: list[str],
    model: Path | None = None,
    detector: str | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """A cams.yaml mapping for `stream run --source`: one camera per source (ids from the file
    names, or cam1, cam2, ... for URLs and webcams), the defaults for everything else."""
    from reid_core.runtime.embedder import runtime_for

    cameras, ids = [], set()
    for number, source in enumerate(sources, start=1):
        stem = "".join(c if c.isalnum() or c in "_.-" else "-" for c in Path(source).stem)
        is_file = not (source.isdigit() or "://" in source)
        camera_id = stem if is_file and stem and stem not in ids else f"cam{number}"
        ids.add(camera_id)
        value: Any = int(source) if source.isdigit() else source
        if is_file:
            value = str(Path(source).resolve())
        cameras.append({"id": camera_id, "source": value})
    cams: dict[str, Any] = {"cameras": cameras}
    if detector is not None:
        cams["detector"] = {"name": detector}
    embedder: dict[str, Any] = {}
    if model is not None:
        embedder["model"] = str(model.resolve())
        embedder["runtime"] = runtime_for(model)
    if device is not None:
        embedder["device"] = device
    if embedder:
        cams["worker"] = {"embedder": embedder}
    return cams


def _handle(args: argparse.Namespace) -> int:
    from reid_core.config import parse_overrides

    if args.cameras is None:
        args.out.mkdir(parents=True, exist_ok=True)
        args.cameras = args.out / "cams.yaml"
        cams = quick_cams(args.source, args.model, args.detector, args.device)
        args.cameras.write_text(yaml.safe_dump(cams, sort_keys=False))
    elif args.model or args.detector or args.device:
        raise ValueError(
            "--model, --detector and --device go with --source; a cams.yaml names them"
        )
    summary = run_pipeline(
        args.cameras,
        args.out,
        args.max_frames,
        live=not args.no_live,
        resume=args.resume,
        overwrite=args.overwrite,
        overrides=parse_overrides(args.set),
    )
    print(
        f"wrote {args.out}/events.jsonl ({summary['events']} events, {summary['global_ids']} "
        f"global ids) and {args.out}/summary.json"
    )
    return 0
