"""The feature worker: malformed messages counted and dropped, tracklet pooling, cross-camera
identities, two workers sharing a stream, id partitions, configs, and SIGTERM draining."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import zmq
from test_model import tiny_model_config

from reid_core import ReIDFeatures, build_model, save
from reid_core.config import deep_merge
from reid_core.runtime import MALLOC_ENV
from stream import worker as worker_module
from stream.camera import CropSender
from stream.cli import main as stream_main
from stream.gallery import Gallery, GalleryConfig
from stream.gallery.pooling import RunningAppearance
from stream.routing import worker_for
from stream.security import CurveConfig
from stream.wire import (
    AssignmentMessage,
    CropMessage,
    StatsMessage,
    TrackEndMessage,
    WireMessage,
    decode,
)
from stream.worker import Worker, fit_gallery_config
from stream.worker_config import WorkerConfig, load_worker_config, parse_worker_config

ROOT = Path(__file__).resolve().parents[1]
SMALL_INPUT = [64, 32]
# two people: (shirt, trousers) in BGR; far apart in colour
PERSON_A = ((40, 40, 200), (180, 60, 40))
PERSON_B = ((50, 180, 50), (40, 200, 220))


def person_crop(person: tuple, rng: np.random.Generator, brightness: int = 0) -> np.ndarray:
    """A 96×40 crop: the shirt colour above, the trousers colour below, camera noise."""
    crop = np.empty((96, 40, 3), np.float64)
    crop[:48], crop[48:] = person
    crop += brightness + rng.normal(0.0, 6.0, crop.shape)
    return np.clip(crop, 0, 255).astype(np.uint8)


def crop_message(
    camera: str, track: int, frame: int, image: np.ndarray, run: str = ""
) -> CropMessage:
    height, width = image.shape[:2]
    return CropMessage(
        camera=camera,
        track=track,
        frame=frame,
        t=frame / 10,
        box=[0.0, 0.0, float(width), float(height)],
        score=0.9,
        image=image,
        run=run,
    )


def crop_frames(
    camera: str, track: int, frame: int, image: np.ndarray, run: str = ""
) -> list[bytes]:
    return crop_message(camera, track, frame, image, run).encode()


def end_frames(camera: str, track: int, t: float = 9.0, run: str = "") -> list[bytes]:
    return TrackEndMessage(camera=camera, track=track, t=t, run=run).encode()


class ColourEmbedder:
    """An `Embedder` whose features are the mean colours of a crop's upper and lower halves
    (part 1 = shirt, part 2 = trousers), so which crops show the same person is known."""

    name, device = "colour", "cpu"
    dim, num_parts, input_size = 6, 2, (96, 40)

    def embed(self, crops: Sequence[np.ndarray]) -> ReIDFeatures:
        halves = [
            [c[: len(c) // 2].reshape(-1, 3).mean(0), c[len(c) // 2 :].reshape(-1, 3).mean(0)]
            for c in crops
        ]
        colours = (torch.tensor(np.array(halves), dtype=torch.float32) - 128) / 128  # [B, 2, 3]
        batch = len(crops)
        parts = torch.zeros(batch, 2, 6)
        parts[:, 0, :3], parts[:, 1, 3:] = colours[:, 0], colours[:, 1]
        return ReIDFeatures(
            global_features=colours.flatten(1),
            part_features=parts,
            visibility=torch.ones(batch, 2),
            keypoints=torch.zeros(batch, 2, 2),
            jacobians=torch.eye(2).expand(batch, 2, 2, 2).clone(),
            segmentation=torch.zeros(batch, 3, 1, 1),
        )


def worker_config(tmp_path: Path, model: Path | None = None, **overrides: Any) -> WorkerConfig:
    base = {
        "embedder": {"runtime": "torch", "model": str(model or tmp_path / "unused.safetensors")},
        "gallery": {"path": str(tmp_path / "gallery"), "threshold": 0.3},
        "sockets": {
            "crops": {"endpoint": f"ipc://{tmp_path}/crops"},
            "assignments": {"endpoint": f"ipc://{tmp_path}/out"},
        },
        "stats_interval_s": 0.05,
    }
    return parse_worker_config(deep_merge(base, overrides))


def assignments(messages: list[WireMessage]) -> list[AssignmentMessage]:
    return [m for m in messages if isinstance(m, AssignmentMessage)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model(tiny_model_config(input_size=SMALL_INPUT))
    return save(model, tmp_path_factory.mktemp("worker") / "tiny.safetensors")


def test_malformed_messages_are_counted_and_dropped_and_every_valid_crop_embedded(
    tmp_path: Path,
    checkpoint: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_module, "MALFORMED_LOG_INTERVAL_S", 0.0)  # a line for each
    config = worker_config(
        tmp_path,
        checkpoint,
        embedder={"device": "cpu", "threads": 1},
        batching={"max_batch": 4, "max_wait_ms": 1000, "max_batch_ms": None},  # batches by count
    )
    published: list[WireMessage] = []
    worker = Worker.from_config(config, publish=published.append)
    rng = np.random.default_rng(0)
    valid = [crop_frames("cam1", 1, f, person_crop(PERSON_A, rng)) for f in range(4)]
    valid += [crop_frames("cam2", 2, f, person_crop(PERSON_B, rng)) for f in range(3)]
    header, jpeg = valid[0]
    fields = json.loads(header)
    malformed = {
        "bad JSON": [b'{"v": 1, "type": "crop", ', jpeg],
        "truncated JPEG": [header, jpeg[: len(jpeg) // 2]],
        "wrong version": [json.dumps({**fields, "v": 2}).encode(), jpeg],
        "empty crop": [json.dumps({**fields, "width": 0, "height": 0}).encode(), jpeg],
        "wrong frame count": [header],
        "wrong message type": AssignmentMessage(
            camera="cam1", track=1, global_id=1, score=None, is_new=True, t=0.0
        ).encode(),
    }
    stream = [*valid[:2], *malformed.values(), *valid[2:], end_frames("cam1", 1)]
    with caplog.at_level(logging.WARNING, logger="stream.worker"):
        for frames in stream:
            worker.handle(frames)
            worker.step()
        worker.drain()
    worker.close()
    counters = worker.counters
    assert counters["received"] == len(stream)
    assert counters["dropped_malformed"] == len(malformed)
    assert counters["embedded"] == len(valid)
    assert counters["tracklets"] == 2 and counters["track_ends"] == 1
    assert counters["batches"] == 2  # 4 crops by max_batch, then the 3 left when drained
    assert {(a.camera, a.track) for a in assignments(published)} == {("cam1", 1), ("cam2", 2)}
    assert len(caplog.records) == len(malformed)
    for reason in ("not a JSON header", "truncated", "unsupported wire version", "empty"):
        assert reason in caplog.text
    final = published[-1]
    assert isinstance(final, StatsMessage) and final.counters == counters
    assert {"latency_p50_ms", "latency_p95_ms", "embed_p50_ms", "embed_p95_ms"} <= set(final.gauges)


def test_pooling_down_weights_a_wrong_crop_and_skips_hidden_parts() -> None:
    rng = np.random.default_rng(0)
    person, stranger = np.eye(8)[0], np.eye(8)[1]
    parts = np.stack([np.eye(8)[2], np.eye(8)[3]])
    pool = RunningAppearance(dim=8, num_parts=2, outlier_distance=0.3)
    crops = [person + 0.02 * rng.normal(size=8) for _ in range(5)]
    crops.insert(3, stranger)  # a tracker swap for one frame
    weights = [pool.add(g, parts, np.array([1.0, 0.0]), score=1.0) for g in crops]
    assert weights[3] < 0.1 * min(weights[:3] + weights[4:])
    pooled = pool.appearance()
    plain = np.mean([c / np.linalg.norm(c) for c in crops], axis=0)
    cosine = pooled.global_vector @ person / np.linalg.norm(pooled.global_vector)
    assert cosine > 0.999 > plain @ person / np.linalg.norm(plain)
    np.testing.assert_allclose(pooled.visibility, [1.0, 0.0])
    np.testing.assert_allclose(pooled.part_vectors, [parts[0], np.zeros(8)], atol=1e-12)


def test_the_same_person_on_two_cameras_gets_one_global_id_and_a_stranger_a_new_one(
    tmp_path: Path,
) -> None:
    config = worker_config(
        tmp_path,
        batching={"max_wait_ms": 0},
        tracklets={"min_crops": 3, "rematch_every": 2, "thumbnails": str(tmp_path / "thumbs")},
    )
    published: list[WireMessage] = []
    worker = Worker.from_config(config, publish=published.append, embedder=ColourEmbedder())
    rng = np.random.default_rng(1)
    sightings = [("cam1", 1, PERSON_A, 0), ("cam2", 7, PERSON_A, -30), ("cam2", 8, PERSON_B, 0)]
    for camera, track, person, brightness in sightings:
        for frame in range(5):
            worker.handle(crop_frames(camera, track, frame, person_crop(person, rng, brightness)))
            worker.step()
        worker.handle(end_frames(camera, track))
    worker.drain()
    worker.close()
    ids: dict[tuple[str, int], set[int]] = {}
    for a in assignments(published):
        ids.setdefault((a.camera, a.track), set()).add(a.global_id)
    assert all(len(found) == 1 for found in ids.values()), ids  # an id, once given, stays
    assert ids[("cam1", 1)] == ids[("cam2", 7)] != ids[("cam2", 8)]
    first = {(a.camera, a.track): a for a in reversed(assignments(published))}
    assert first[("cam1", 1)].is_new and not first[("cam2", 7)].is_new
    assert first[("cam2", 8)].is_new and first[("cam2", 8)].score > config.gallery.threshold
    with Gallery.open(fit_gallery_config(config.gallery, ColourEmbedder())) as gallery:
        records = gallery.records_of(next(iter(ids[("cam1", 1)])))
    assert [(r.camera, r.track) for r in records] == [("cam1", 1), ("cam2", 7)]
    assert all(Path(r.thumbnail).is_file() for r in records)


def test_re_entry_late_track_ends_and_runs(tmp_path: Path) -> None:
    """A person back in the same view gets their id once the first tracklet ended — also when
    the track_end reaches a restarted worker — and another run's track 1 is someone new."""
    config = worker_config(tmp_path, batching={"max_wait_ms": 0}, tracklets={"min_crops": 2})
    rng = np.random.default_rng(2)

    def feed(worker: Worker, track: int, person: tuple, frames: range, run: str = "r1") -> None:
        for frame in frames:
            worker.handle(crop_frames("cam1", track, frame, person_crop(person, rng), run))
            worker.step()

    published: list[WireMessage] = []
    first = Worker.from_config(config, publish=published.append, embedder=ColourEmbedder())
    feed(first, 1, PERSON_A, range(0, 4))  # t 0.0-0.3, then the worker dies: no track_end
    feed(first, 2, PERSON_B, range(0, 4))
    first.handle(end_frames("cam1", 2, t=0.5, run="r1"))
    first.close()  # what a killed worker leaves: matched, not ended

    restarted = Worker.from_config(config, publish=published.append, embedder=ColourEmbedder())
    restarted.handle(end_frames("cam1", 1, t=0.5, run="r1"))  # late: the old worker held it
    feed(restarted, 3, PERSON_A, range(10, 14))  # A walks back in at t=1.0
    feed(restarted, 1, PERSON_B, range(10, 14), run="r2")  # a new run's track 1: B, not A
    restarted.handle(end_frames("cam1", 99, run="r1"))  # never had a crop: nothing to end
    restarted.drain()
    counters = dict(restarted.counters)
    restarted.close()
    ids = {(a.run, a.track): a.global_id for a in assignments(published)}
    assert counters["late_track_ends"] == 1 and counters["track_ends"] == 2
    assert ids[("r1", 3)] == ids[("r1", 1)] != ids[("r1", 2)]
    assert ids[("r2", 1)] == ids[("r1", 2)]  # B again (ended at 0.5), not run r1's track 1
    with Gallery.open(fit_gallery_config(config.gallery, ColourEmbedder())) as gallery:
        assert gallery.get("cam1", 1, "r1").t_end == 0.5
        assert gallery.get("cam1", 1, "r2").global_id == ids[("r1", 2)]
        assert len(gallery) == 4


def test_open_tracklets_are_capped_by_finishing_the_one_seen_longest_ago(tmp_path: Path) -> None:
    now = [0.0]
    config = worker_config(
        tmp_path, batching={"max_wait_ms": 0}, tracklets={"min_crops": 5, "max_open": 3}
    )
    published: list[WireMessage] = []
    worker = Worker(
        config,
        ColourEmbedder(),
        Gallery.open(fit_gallery_config(config.gallery, ColourEmbedder())),
        published.append,
        clock=lambda: now[0],
    )
    rng = np.random.default_rng(3)
    for track in range(1, 11):  # ten tracks of one crop each: none reaches min_crops
        now[0] += 1.0
        worker.handle(crop_frames("cam1", track, track, person_crop(PERSON_A, rng)))
        worker.step()
        assert len(worker.tracklets) <= 3
    assert worker.counters["tracklets_evicted"] == 7
    assert {key[2] for key in worker.tracklets} == {8, 9, 10}  # the newest stay open
    evicted = [a.track for a in assignments(published)]
    assert evicted == list(range(1, 8))  # finished oldest first, each with an identity
    worker.close()


class CostlyEmbedder(ColourEmbedder):
    """A `ColourEmbedder` whose batches take ``ms_per_crop`` per crop on a fake clock."""

    def __init__(self, now: list[float], ms_per_crop: float) -> None:
        self.now, self.ms_per_crop = now, ms_per_crop
        self.batches: list[int] = []

    def embed(self, crops: Sequence[np.ndarray]) -> ReIDFeatures:
        self.batches.append(len(crops))
        self.now[0] += len(crops) * self.ms_per_crop / 1000
        return super().embed(crops)


@pytest.mark.parametrize(
    ("ms_per_crop", "max_batch_ms", "batches"),
    [
        (10.0, 30.0, [32, 3, 3, 2]),  # a loaded CPU: batches cut to what fits in 30 ms
        (0.5, 30.0, [32, 8]),  # a GPU-like embedder: full batches (60 would fit)
        (10.0, None, [32, 8]),  # no budget: max_batch always
    ],
)
def test_batches_shrink_to_the_time_budget_when_crops_are_costly(
    tmp_path: Path, ms_per_crop: float, max_batch_ms: float | None, batches: list[int]
) -> None:
    now = [0.0]
    config = worker_config(
        tmp_path,
        batching={"max_batch": 32, "max_wait_ms": 20, "max_batch_ms": max_batch_ms},
        tracklets={"min_crops": 100},  # pooling only: no gallery work in between
    )
    embedder = CostlyEmbedder(now, ms_per_crop)
    worker = Worker(
        config,
        embedder,
        Gallery.open(fit_gallery_config(config.gallery, embedder)),
        clock=lambda: now[0],
    )
    rng = np.random.default_rng(5)
    for index in range(40):  # a burst: 40 crops at once
        worker.handle(crop_frames("cam1", index % 4 + 1, index, person_crop(PERSON_A, rng)))
    worker.step()  # a full batch at once (no cost known yet) ...
    now[0] += 0.05
    worker.step()  # ... and the rest once the oldest waited max_wait_ms
    assert embedder.batches == batches
    assert worker.counters["embedded"] == 40 and not worker.pending
    expected_limit = 32 if max_batch_ms is None else min(32, int(max_batch_ms / ms_per_crop))
    assert worker.stats().gauges["batch_limit"] == expected_limit
    assert list(worker.embed_ms) == pytest.approx([n * ms_per_crop for n in batches])
    worker.close()


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")
@pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning")
def test_two_workers_share_a_stream_without_losing_or_duplicating_a_crop(
    tmp_path: Path,
) -> None:
    tracks = [(f"cam{t % 3}", t) for t in range(12)]
    crops_per_track = 5
    owner = {key: worker_for(*key, 2) for key in tracks}
    expected = [crops_per_track * list(owner.values()).count(i) for i in range(2)]
    assert all(expected), "both workers must own some tracklets for this test to mean much"
    published: list[tuple[int, WireMessage]] = []
    received: dict[int, int] = {}
    everything_arrived = threading.Event()

    def collect(index: int, message: WireMessage) -> None:
        published.append((index, message))
        if isinstance(message, StatsMessage):
            # crops + track ends that reached each worker
            received[index] = message.counters["received"]
            if all(received.get(i) == expected[i] + expected[i] // crops_per_track for i in (0, 1)):
                everything_arrived.set()

    workers = []
    for index in range(2):
        config = worker_config(
            tmp_path,
            name=f"worker-{index}",
            worker_index=index,
            num_workers=2,
            gallery={"path": None, "url": ":memory:"},
            sockets={
                "crops": {"endpoint": f"ipc://{tmp_path}/crops{index}"},
                "assignments": {"endpoint": f"ipc://{tmp_path}/out{index}"},
            },
            batching={"max_batch": 8, "max_wait_ms": 5},
            tracklets={"min_crops": 3, "rematch_every": 0},
        )
        worker = Worker.from_config(config, partial(collect, index), ColourEmbedder())
        workers.append(worker)
    threads = [threading.Thread(target=w.run) for w in workers]
    for thread in threads:
        thread.start()
    rng = np.random.default_rng(2)
    context = zmq.Context()
    endpoints = [f"ipc://{tmp_path}/crops{i}" for i in range(2)]
    # the camera stage's own sender, routing by worker_for; queues large enough to drop nothing
    route = partial(worker_for, num_workers=2)
    sender = CropSender(context, endpoints, route, 1000, 1000, CurveConfig())
    for frame in range(crops_per_track):
        for camera, track in tracks:
            image = person_crop(PERSON_A if track % 2 else PERSON_B, rng)
            sender.send(crop_message(camera, track, frame, image), jpeg_quality=90)
    for camera, track in tracks:
        sender.send(TrackEndMessage(camera=camera, track=track, t=9.0), jpeg_quality=90)
    sender.drain(timeout_s=30)
    arrived = everything_arrived.wait(timeout=60)
    sender.close(linger_s=1)
    context.term()
    for worker in workers:
        worker.stop()
    for thread in threads:
        thread.join(timeout=60)
    assert arrived, f"received {received}, expected {expected} crops + track ends"
    assert [w.counters["embedded"] for w in workers] == expected
    assert sum(w.counters["embedded"] for w in workers) == crops_per_track * len(tracks)
    assert [w.counters["dropped_malformed"] for w in workers] == [0, 0]
    assigned = {
        (index, m.camera, m.track) for index, m in published if isinstance(m, AssignmentMessage)
    }
    assert assigned == {(owner[key], *key) for key in tracks}  # every tracklet, by its owner only
    new_ids = [
        (index, m.global_id)
        for index, m in published
        if isinstance(m, AssignmentMessage) and m.is_new
    ]
    assert all(global_id % 2 == index for index, global_id in new_ids)  # ≡ worker index
    assert len({global_id for _, global_id in new_ids}) == len(new_ids)


def test_worker_for_is_stable_across_processes_and_spreads_tracklets() -> None:
    keys = [(f"cam{i % 4}", i * 7) for i in range(20)]
    script = (
        f"from stream.routing import worker_for;print([worker_for(c, t, 5) for c, t in {keys!r}])"
    )
    other_process = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert other_process.stdout.strip() == str([worker_for(c, t, 5) for c, t in keys])
    shares = Counter(worker_for("cam1", track, 4) for track in range(2000))
    assert sorted(shares) == [0, 1, 2, 3] and min(shares.values()) > 400
    with pytest.raises(ValueError, match="num_workers must be ≥ 1"):
        worker_for("cam1", 1, 0)


def test_a_bad_worker_config_names_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for name in ("default", "pair_0", "pair_1"):
        assert load_worker_config(ROOT / "configs" / "worker" / f"{name}.yaml").name
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"_base_: {ROOT / 'configs/worker/default.yaml'}\nbatching:\n  max_batchh: 8\n")
    with pytest.raises(
        ValueError, match=r"bad.yaml: invalid worker config:\n  batching.max_batchh"
    ):
        load_worker_config(bad)
    for env_key, value in MALLOC_ENV.items():  # the CLI would re-execute pytest otherwise
        monkeypatch.setenv(env_key, value)
    assert stream_main(["worker", "--config", str(bad)]) == 2
    assert "batching.max_batchh" in capsys.readouterr().err
    with pytest.raises(ValueError, match="needs a shared gallery server"):
        worker_config(tmp_path, num_workers=2, worker_index=1)
    with pytest.raises(ValueError, match="embedder.runtime"):
        worker_config(tmp_path, embedder={"runtime": "tensorflow"})
    with pytest.raises(ValueError, match="gallery.vector_size is 5 but the model makes 6"):
        fit_gallery_config(GalleryConfig(path=tmp_path, vector_size=5), ColourEmbedder())


def _next(
    sub: zmq.Socket, process: subprocess.Popen, until: Callable[[WireMessage], bool]
) -> list[WireMessage]:
    """Messages from ``sub`` up to and including the first one ``until`` accepts."""
    seen = []
    while True:
        if not sub.poll(60_000):
            raise AssertionError(f"no message from the worker (exit code {process.poll()})")
        seen.append(decode(sub.recv_multipart()))
        if until(seen[-1]):
            return seen


def test_sigterm_drains_the_queue_flushes_the_gallery_and_exits_zero(
    tmp_path: Path, checkpoint: Path
) -> None:
    config = {
        "embedder": {"runtime": "torch", "model": str(checkpoint), "device": "cpu", "threads": 1},
        "gallery": {"path": "gallery"},
        "sockets": {
            "crops": {"endpoint": f"ipc://{tmp_path}/crops"},
            "assignments": {"endpoint": f"ipc://{tmp_path}/out"},
        },
        # nothing is embedded before the signal: the drain has to do all of it
        "batching": {"max_batch": 64, "max_wait_ms": 600_000},
        "tracklets": {"min_crops": 100},
        "stats_interval_s": 0.2,
    }
    (tmp_path / "worker.yaml").write_text(json.dumps(config))  # JSON is YAML
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}  # exercise the re-exec
    command = [sys.executable, "-m", "stream", "worker", "--config", str(tmp_path / "worker.yaml")]
    context = zmq.Context()
    sub, push = context.socket(zmq.SUB), context.socket(zmq.PUSH)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"ipc://{tmp_path}/out")
    push.connect(f"ipc://{tmp_path}/crops")
    with (tmp_path / "log.txt").open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            _next(sub, process, lambda m: isinstance(m, StatsMessage))  # it is serving
            rng = np.random.default_rng(3)
            for camera, track, count in (("cam1", 1, 5), ("cam2", 2, 3)):
                for frame in range(count):
                    push.send_multipart(
                        crop_frames(camera, track, frame, person_crop(PERSON_A, rng))
                    )
            _next(
                sub, process, lambda m: isinstance(m, StatsMessage) and m.counters["received"] == 8
            )
            process.send_signal(signal.SIGTERM)
            tail = _next(
                sub, process, lambda m: isinstance(m, StatsMessage) and m.counters["embedded"] == 8
            )
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
            context.destroy(linger=0)
    assert code == 0, (tmp_path / "log.txt").read_text()
    assert {(a.camera, a.track) for a in assignments(tail)} == {("cam1", 1), ("cam2", 2)}
    assert tail[-1].counters["assignments"] == 2
    with Gallery.open(GalleryConfig(path=tmp_path / "gallery", vector_size=64)) as gallery:
        assert len(gallery) == 2  # flushed before exit
    assert "stopped; gallery closed" in (tmp_path / "log.txt").read_text()
