"""The camera stage (stream/camera.py): crops reach a PULL "worker" with valid headers, a worker
that does not read makes the stage drop the oldest crops (bounded, never blocking), a stop event
ends it with its outputs finalised, and assignments published on a PUB relabel its tracks."""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import pytest
import zmq

from stream.camera import (
    AssignmentListener,
    CameraStage,
    CropSender,
    WorkerLink,
    run_camera,
)
from stream.config import CamsConfig, CropPolicy, load_cams_config
from stream.security import CurveConfig
from stream.sources import open_camera_source
from stream.wire import AssignmentMessage, CropMessage, TrackEndMessage, decode

FRAMES = 30
WAIT_MS = 5000  # longest wait for a message that must arrive


@pytest.fixture
def config(scene: Path) -> CamsConfig:
    """The synthetic cams.yaml with a crop policy for its small (8-35 px tall) people."""
    loaded = load_cams_config(scene / "cams.yaml")
    policy = CropPolicy(min_width=4, min_height=12, every_n_frames=3, max_per_track=4)
    workers = loaded.workers.model_copy(update={"flush_timeout_s": 0.2})
    return loaded.model_copy(update={"crops": policy, "workers": workers})


def frame_count(video: Path) -> int:
    capture = cv2.VideoCapture(str(video))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_stage_process_sends_valid_crops(config: CamsConfig, tmp_path: Path) -> None:
    """`run_camera` as a spawned process: crops and track ends arrive over ZeroMQ."""
    workers = config.workers.model_copy(update={"flush_timeout_s": 5.0})  # the worker is alive
    config = config.model_copy(update={"workers": workers})
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    crops_port = pull.bind_to_random_port("tcp://127.0.0.1")
    pub = context.socket(zmq.PUB)
    assignments_port = pub.bind_to_random_port("tcp://127.0.0.1")
    spawn = multiprocessing.get_context("spawn")
    messages, stop = spawn.Queue(), spawn.Event()
    process = spawn.Process(
        target=run_camera,
        args=(config.cameras[0], config, tmp_path),
        kwargs={
            "crop_endpoints": [f"tcp://127.0.0.1:{crops_port}"],
            "assignment_endpoints": [f"tcp://127.0.0.1:{assignments_port}"],
            "stop_event": stop,
            "emit": messages.put,
            "run": "run-1",
            "clock_origin": 1000.0,
            "nice": 3,  # as `stream run` lowers its camera processes' priority
        },
    )
    process.start()
    emitted: list[tuple[str, Any]] = []
    while not (emitted and emitted[-1][0] == "stats" and emitted[-1][1]["finished"]):
        emitted.append(messages.get(timeout=60))
    process.join(timeout=30)
    assert process.exitcode == 0
    received = []
    while pull.poll(500):
        received.append(decode(pull.recv_multipart()))
    context.destroy(linger=0)

    stats = emitted[-1][1]
    assert stats["frames"] == FRAMES and stats["dropped"] == 0 and stats["queue_depth"] == 0
    assert stats["nice"] == os.getpriority(os.PRIO_PROCESS, 0) + 3
    crops = [m for m in received if isinstance(m, CropMessage)]
    ends = [m for m in received if isinstance(m, TrackEndMessage)]
    assert len(crops) == stats["crops_queued"] > 0
    assert stats["sent"] == len(received) == len(crops) + len(ends)
    by_track: dict[int, list[CropMessage]] = defaultdict(list)
    for crop in crops:
        assert crop.camera == "cam1" and crop.track >= 0 and 0.0 <= crop.score <= 1.0
        x1, y1, x2, y2 = crop.box
        assert 2 <= x1 < x2 <= 318 and 2 <= y1 < y2 <= 178  # not cut by the border margin
        assert crop.image.shape[0] >= 12 and crop.image.shape[1] >= 4
        assert crop.t == pytest.approx(1000.0 + crop.frame / 10)  # on the run's clock
        assert crop.run == "run-1"
        by_track[crop.track].append(crop)
    for track, chosen in by_track.items():
        assert len(chosen) <= 4
        frames = [c.frame for c in chosen]
        assert all(b - a >= 3 for a, b in zip(frames, frames[1:], strict=False))
        position = received.index(chosen[-1])
        assert any(isinstance(m, TrackEndMessage) and m.track == track for m in received[position:])

    events = [e for kind, batch in emitted if kind == "events" for e in batch]
    assert {e["track_id"] for e in events} >= set(by_track)
    assert all(e["global_id"] is None for e in events)  # no worker answered
    records = [r for kind, r in emitted if kind == "track_end"]
    assert sorted(r["track_id"] for r in records) == sorted(m.track for m in ends)
    assert all(Path(r["thumbnail"]).is_file() for r in records)
    assert frame_count(tmp_path / "videos" / "cam1.mp4") == FRAMES


def test_worker_link_drops_oldest_crop_and_recovers(tmp_path: Path) -> None:
    context = zmq.Context()
    endpoint = f"ipc://{tmp_path}/worker"
    link = WorkerLink(context, endpoint, queue_size=3, send_hwm=1, curve=CurveConfig())
    for frames, is_crop in (([b"c1"], True), ([b"end"], False), ([b"c2"], True), ([b"c3"], True)):
        link.put(frames, is_crop)
        link.flush()  # nobody there: nothing leaves, nothing blocks
    assert [frames for _, frames in link.queue] == [[b"end"], [b"c2"], [b"c3"]]
    assert (link.dropped, link.sent) == (1, 0)

    pull = context.socket(zmq.PULL)
    pull.bind(endpoint)  # the worker is back
    deadline = time.monotonic() + WAIT_MS / 1000
    while link.queue and time.monotonic() < deadline:  # ZeroMQ reconnects every 100 ms
        link.flush()
        pull.poll(10)
    arrived = [pull.recv() for _ in range(3) if pull.poll(WAIT_MS)]
    assert arrived == [b"end", b"c2", b"c3"] and link.sent == 3
    link.close(0)
    context.destroy(linger=0)


def test_dead_worker_bounds_the_queue_and_counts_drops(config: CamsConfig, tmp_path: Path) -> None:
    workers = config.workers.model_copy(update={"queue_size": 3, "send_hwm": 1})
    config = config.model_copy(update={"workers": workers})
    emitted: list[tuple[str, Any]] = []
    stats = run_camera(
        config.cameras[0],
        config,
        tmp_path,
        crop_endpoints=[f"ipc://{tmp_path}/nobody-crops"],
        assignment_endpoints=[f"ipc://{tmp_path}/nobody-assignments"],
        emit=emitted.append,
    )
    assert stats["frames"] == FRAMES and stats["finished"]
    assert stats["sent"] == 0
    assert stats["queue_depth"] == 3
    assert stats["dropped"] == stats["crops_queued"] + stats["track_ends"] - 3 > 0
    assert frame_count(tmp_path / "videos" / "cam1.mp4") == FRAMES


def test_stop_event_stops_with_outputs_finalised(config: CamsConfig, tmp_path: Path) -> None:
    stop = threading.Event()
    emitted: list[tuple[str, Any]] = []
    event_frames: list[int] = []

    def emit(message: tuple[str, Any]) -> None:
        emitted.append(message)
        if message[0] == "events":
            event_frames.append(message[1][0]["frame"])
            if len(event_frames) == 5:
                stop.set()

    stats = run_camera(
        config.cameras[1],
        config,
        tmp_path,
        crop_endpoints=[f"ipc://{tmp_path}/crops"],
        assignment_endpoints=[f"ipc://{tmp_path}/assignments"],
        stop_event=stop,
        emit=emit,
    )
    assert stats["finished"] and stats["error"] is None
    assert stats["frames"] == event_frames[-1] + 1 < FRAMES
    assert frame_count(tmp_path / "videos" / "cam2.mp4") == stats["frames"]
    ended = {r["track_id"] for kind, r in emitted if kind == "track_end"}
    seen = {e["track_id"] for kind, batch in emitted if kind == "events" for e in batch}
    assert ended == seen  # every open track was closed at the stop
    assert emitted[-1][0] == "stats" and emitted[-1][1]["finished"]


def test_assignments_relabel_the_tracks(config: CamsConfig, tmp_path: Path) -> None:
    camera = config.cameras[0]
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind(f"ipc://{tmp_path}/crops")
    xpub = context.socket(zmq.XPUB)  # tells when the stage's subscription is in place
    xpub.bind(f"ipc://{tmp_path}/assignments")
    curve = CurveConfig()
    sender = CropSender(context, [f"ipc://{tmp_path}/crops"], lambda c, t: 0, 16, 4, curve)
    listener = AssignmentListener(context, camera.id, [f"ipc://{tmp_path}/assignments"], curve)
    assert xpub.poll(WAIT_MS)
    assert xpub.recv() == b"\x01" + AssignmentMessage.subscription(camera.id)
    xpub.send_multipart([AssignmentMessage.subscription(camera.id) + b"garbage"])
    assert listener.socket.poll(WAIT_MS)
    assert listener.poll() == [] and listener.malformed == 1  # counted, skipped
    emitted: list[tuple[str, Any]] = []
    source = open_camera_source(camera)
    stage = CameraStage(camera, config, tmp_path, source, sender, listener, emitted.append, 1.0)
    assigned_at: dict[int, int] = {}  # track → first frame processed after its assignment
    for frame in source.frames():
        stage.process(frame)
        while pull.poll(0):
            message = decode(pull.recv_multipart())
            if isinstance(message, CropMessage) and message.track not in assigned_at:
                answer = AssignmentMessage(
                    camera=camera.id,
                    track=message.track,
                    global_id=100 + message.track,
                    score=0.2,
                    is_new=True,
                    t=message.t,
                )
                other_camera = answer.model_copy(update={"camera": "cam10"})
                xpub.send_multipart(other_camera.encode())  # not subscribed: never delivered
                xpub.send_multipart(answer.encode())
                assert listener.socket.poll(WAIT_MS)  # it arrived; the next frame reads it
                assigned_at[message.track] = frame.index + 1
    stats = stage.finish(frame.timestamp_s, None)
    source.close()
    sender.close(0)
    listener.close()
    context.destroy(linger=0)

    assert assigned_at and stats.assignments == len(assigned_at)
    assert stats.malformed_assignments == 1
    # the frame each answer was read at: the next one, or later when a second answer sent in
    # the same frame was still on its way (poll saw the first) — never before it was sent
    read_at = {a["track_id"]: a["frame"] for kind, a in emitted if kind == "assignment"}
    assert all(read_at[track] >= first for track, first in assigned_at.items())
    events = [e for kind, batch in emitted if kind == "events" for e in batch]
    for event in events:
        first = read_at.get(event["track_id"])
        labelled = first is not None and event["frame"] >= first
        assert event["global_id"] == (100 + event["track_id"] if labelled else None)
    assert any(e["global_id"] is not None for e in events)
    records = {r["track_id"]: r for kind, r in emitted if kind == "track_end"}
    for track in assigned_at:
        assert records[track]["global_id"] == 100 + track
    answers = [a for kind, a in emitted if kind == "assignment"]
    assert sorted(a["track_id"] for a in answers) == sorted(assigned_at)


def test_region_of_interest_keeps_feet_inside(config: CamsConfig, tmp_path: Path) -> None:
    left_half = config.cameras[0].model_copy(
        update={"roi": [(0, 0), (160, 0), (160, 180), (0, 180)]}
    )
    emitted: queue.SimpleQueue = queue.SimpleQueue()
    run_camera(
        left_half,
        config,
        tmp_path,
        crop_endpoints=[f"ipc://{tmp_path}/crops"],
        assignment_endpoints=[f"ipc://{tmp_path}/assignments"],
        emit=emitted.put,
    )
    events = []
    while not emitted.empty():
        kind, payload = emitted.get()
        events += payload if kind == "events" else []
    assert events
    assert all((e["box"][0] + e["box"][2]) / 2 <= 160 for e in events)


def test_a_track_awaiting_its_id_is_not_drawn_in_that_ids_colour() -> None:
    from stream.camera import LABEL_PALETTE, UNLABELLED_COLOUR_BASE

    palette = LABEL_PALETTE
    assert all(
        palette.by_idx(n) != palette.by_idx(UNLABELLED_COLOUR_BASE + n) for n in range(1, 60)
    )
    assert all(palette.by_idx(n) != palette.by_idx(n + 1) for n in range(1, 60))  # neighbours


def run_stage(config: CamsConfig, policy: CropPolicy, tmp_path: Path) -> tuple[list, list, Any]:
    """One camera through `CameraStage` in this process → (crops received, events, stats)."""
    camera = config.cameras[0]
    config = config.model_copy(update={"crops": policy})
    tmp_path.mkdir(parents=True, exist_ok=True)
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind(f"ipc://{tmp_path}/crops")
    curve = CurveConfig()
    sender = CropSender(context, [f"ipc://{tmp_path}/crops"], lambda c, t: 0, 1024, 1024, curve)
    listener = AssignmentListener(context, camera.id, [f"ipc://{tmp_path}/assignments"], curve)
    emitted: list[tuple[str, Any]] = []
    source = open_camera_source(camera)
    stage = CameraStage(camera, config, tmp_path, source, sender, listener, emitted.append, 1.0)
    for frame in source.frames():
        stage.process(frame)
    stats = stage.finish(frame.timestamp_s, None)
    source.close()
    received = []
    while pull.poll(WAIT_MS if len(received) < stats.sent else 0):
        received.append(decode(pull.recv_multipart()))
    sender.close(0)
    listener.close()
    context.destroy(linger=0)
    crops = [m for m in received if isinstance(m, CropMessage)]
    events = [e for kind, batch in emitted if kind == "events" for e in batch]
    return crops, events, stats


def test_a_track_whose_boxes_all_fail_the_policy_sends_its_best_box_per_stretch(
    config: CamsConfig, tmp_path: Path
) -> None:
    """A far-away person (every box below min_height here) still reaches the worker: the best
    box of every 10 processed frames, and of the rest at the track's end; None sends nothing."""
    refuse_all = CropPolicy(min_height=1000, fallback_every_n_frames=10, max_per_track=16)
    crops, events, stats = run_stage(config, refuse_all, tmp_path / "on")
    frames_of: dict[int, list[int]] = defaultdict(list)
    boxes_of: dict[int, list[tuple]] = defaultdict(list)
    for event in events:
        frames_of[event["track_id"]].append(event["frame"])
        boxes_of[event["track_id"]].append(tuple(event["box"]))
    by_track: dict[int, list[CropMessage]] = defaultdict(list)
    for crop in crops:
        by_track[crop.track].append(crop)
    assert stats.fallback_crops == stats.crops_queued == len(crops) > 0
    assert set(by_track) == set(frames_of)  # every track reached the worker
    for track, chosen in by_track.items():
        frames = frames_of[track]
        assert len(chosen) == -(-len(frames) // 10)  # a crop per started stretch of 10
        for crop in chosen:  # a real box of the track, from its own stretch
            assert tuple(round(v, 2) for v in crop.box) in boxes_of[track]
            stretch = frames.index(crop.frame) // 10
            assert chosen.index(crop) == stretch
            area = (crop.box[2] - crop.box[0]) * (crop.box[3] - crop.box[1])
            assert crop.image.shape[0] * crop.image.shape[1] >= 0.5 * area

    without = refuse_all.model_copy(update={"fallback_every_n_frames": None})
    crops, _, stats = run_stage(config, without, tmp_path / "off")
    assert crops == [] and stats.fallback_crops == 0


def test_a_track_with_passing_boxes_sends_no_fallback(config: CamsConfig, tmp_path: Path) -> None:
    crops, _, stats = run_stage(config, config.crops, tmp_path)
    passing = {c.track for c in crops if c.box[3] - c.box[1] >= config.crops.min_height}
    assert crops and stats.fallback_crops < stats.crops_queued
    for crop in crops:  # a track that sent a passing crop sent no refused one before it
        if crop.track in passing:
            assert crop.box[3] - crop.box[1] >= config.crops.min_height
