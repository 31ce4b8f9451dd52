"""`stream worker`: the feature worker (SPEC §4) — crops in over ZeroMQ, global ids out.

Flow: PULL (crop / track_end messages, `stream.wire`) → dynamic batch (a full batch —
``max_batch`` crops, fewer under load: ``max_batch_ms`` — or ``max_wait_ms`` for the oldest)
→ embedder (`reid_core.runtime`, torch | onnxruntime) → one running appearance per tracklet
(camera, track) → when a tracklet is due, `Gallery.match_batch` for all due tracklets at once
→ an ``assignment`` per tracklet on PUB, plus periodic ``stats``.

When a tracklet is matched: first when it has ``min_crops`` embedded crops, then every
``rematch_every`` new crops (the gallery refreshes its features and keeps its global id, or
for a tracklet still alone in its identity may join another camera's: ``relink``), and
at its end (a track_end message, ``idle_timeout_s`` without crops, or the worker's shutdown) if
crops came since the last match. A tracklet that ends before ``min_crops`` is matched with what
it has, so every tracklet with a valid crop gets an identity. A track_end also marks the stored
tracklet ended (``t_end``), which makes it a re-entry candidate on its camera — also when the
worker no longer holds it (finished idle, or matched before this worker restarted).

A tracklet is (run, camera, track): track ids restart in every `stream run`.

Pooling a tracklet's crops: `stream.gallery.pooling.RunningAppearance`.

Counters: received (messages), embedded (crops), dropped_malformed, batches, tracklets
(started), track_ends, late_track_ends (ended a stored tracklet the worker was not holding),
tracklets_evicted (finished early: more than ``tracklets.max_open`` open), assignments.
Gauges: latency p50/p95 (ms from the receipt of the message that made a tracklet due — its
last crop or its end — to the assignment being published: queue + batch wait + embed +
match), embed p50/p95 (ms per batch), match p50/p95 (ms per gallery match_batch),
crops_per_s, open_tracklets, queued_crops, match_threshold (the gallery's, as resolved:
`stream harvest` reads it from summary.json), batch_limit (crops in a full batch now).
Logged and published as a ``stats`` message every ``stats_interval_s`` (windows
of the last 1,024 samples, so memory stays flat).

SIGTERM / SIGINT: stop polling, take what ZeroMQ already queued, embed every waiting crop,
match every open tracklet with unmatched crops, publish, close the gallery (flushed), exit 0.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import cv2
import numpy as np
import zmq

from reid_core.runtime.embedder import Embedder
from stream.gallery import Gallery, GalleryConfig, Tracklet, write_manifest
from stream.gallery.pooling import RunningAppearance
from stream.gallery.records import Box
from stream.security import open_endpoint, stop_authenticator
from stream.wire import (
    MAX_MESSAGE_BYTES,
    AssignmentMessage,
    CropMessage,
    StatsMessage,
    TrackEndMessage,
    WireError,
    WireMessage,
    decode,
)
from stream.worker_config import TrackletConfig, WorkerConfig

log = logging.getLogger(__name__)

SAMPLE_WINDOW = 1024  # latency samples kept for the percentiles
CROP_COST_SMOOTHING = 0.2  # weight of the newest batch in the running ms-per-crop estimate
POLL_CAP_S = 0.1  # longest poll, so stop() is noticed within this
IDLE_CHECK_S = 1.0
MALFORMED_LOG_INTERVAL_S = 1.0
COUNTER_NAMES = (
    "received",
    "embedded",
    "dropped_malformed",
    "batches",
    "tracklets",
    "track_ends",
    "late_track_ends",
    "tracklets_evicted",
    "assignments",
)

TrackletKey = tuple[str, str, int]  # (run, camera, track)


@dataclass
class TrackletState:
    """A tracklet the worker is pooling: its crops so far and where it stands."""

    run: str
    camera: str
    track: int
    pool: RunningAppearance
    last_seen: float  # worker clock (time.monotonic) of the last crop received
    t_first: float = float("inf")  # stream time of the first / last embedded crop
    t_last: float = float("-inf")
    box_first: Box | None = None  # boxes of the crops at t_first / t_last
    box_last: Box | None = None
    queued: int = 0  # received, not embedded yet
    since_match: int = 0  # embedded since the last match
    global_id: int | None = None
    ended: bool = False
    t_end: float | None = None  # stream time of its track_end
    end_stored: bool = False  # the gallery holds t_end
    trigger_at: float = 0.0  # receipt (worker clock) of the message that made it due
    best_weight: float = -1.0
    best_crop: np.ndarray | None = field(default=None, repr=False)

    def due(self, rules: TrackletConfig) -> bool:
        """Matched now: first at min_crops, then every rematch_every new crops (its end is
        handled by `Worker._finish`)."""
        if self.since_match == 0:
            return False
        if self.global_id is None:
            return self.pool.count >= rules.min_crops
        return 0 < rules.rematch_every <= self.since_match


@dataclass
class PendingCrop:
    message: CropMessage
    received_at: float


def fit_gallery_config(config: GalleryConfig, embedder: Embedder) -> GalleryConfig:
    """The gallery config with vector_size / num_parts taken from the model; a value the file
    states that the model contradicts is an error naming the field."""
    model = {"vector_size": embedder.dim, "num_parts": embedder.num_parts}
    for name, value in model.items():
        if name in config.model_fields_set and getattr(config, name) != value:
            raise ValueError(
                f"gallery.{name} is {getattr(config, name)} but the model makes {value} "
                f"(leave gallery.{name} out to take it from the model)"
            )
    return config.model_copy(update=model)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


class Worker:
    """The feature worker. `run` serves the configured sockets until `stop` (or SIGTERM /
    SIGINT in the main thread); `handle` + `step` + `drain` drive it without sockets.

    ``publish`` receives every outgoing message (assignments and stats); `run` sends them on
    the PUB socket when none was given. The worker closes ``gallery`` in `close`.
    """

    def __init__(
        self,
        config: WorkerConfig,
        embedder: Embedder,
        gallery: Gallery,
        publish: Callable[[WireMessage], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.embedder = embedder
        self.gallery = gallery
        self.publish = publish
        self.clock = clock
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        self.pending: deque[PendingCrop] = deque()
        self.tracklets: dict[TrackletKey, TrackletState] = {}
        self.latency_ms: deque[float] = deque(maxlen=SAMPLE_WINDOW)
        self.embed_ms: deque[float] = deque(maxlen=SAMPLE_WINDOW)
        self.match_ms: deque[float] = deque(maxlen=SAMPLE_WINDOW)
        self.ms_per_crop: float | None = None  # running mean of embed time per crop
        self._stop = threading.Event()
        now = clock()
        self._next_stats = now + config.stats_interval_s
        self._next_idle_check = now + IDLE_CHECK_S
        self._rate_mark = (now, 0)  # (time, embedded) at the last stats, for crops_per_s
        self._malformed_log = (float("-inf"), 0)  # (time of the last line, unlogged since)

    @classmethod
    def from_config(
        cls,
        config: WorkerConfig,
        publish: Callable[[WireMessage], None] | None = None,
        embedder: Embedder | None = None,
    ) -> Worker:
        """Open the configured gallery (sized to the model, ids partitioned among the workers;
        an embedded one gets its manifest) and embedder, unless an open ``embedder`` is given.
        With no model named the worker runs the shipped default model and, unless the config
        sets one, the gallery threshold calibrated for it (its card)."""
        embedder_config = config.embedder if embedder else config.embedder.resolved()
        embedder = embedder or embedder_config.open()
        update = {"id_offset": config.worker_index, "id_stride": config.num_workers}
        if config.embedder.model is None and "threshold" not in config.gallery.model_fields_set:
            from reid_core.zoo import read_card

            update["threshold"] = read_card().threshold
        gallery_config = fit_gallery_config(config.gallery, embedder).model_copy(update=update)
        gallery = Gallery.open(gallery_config)
        if gallery_config.path is not None:  # `stream search` embeds with the same model
            write_manifest(gallery_config.path, gallery_config, embedder_config)
        return cls(config, embedder, gallery, publish)

    # ---- messages in ----------------------------------------------------------------------

    def _drop_malformed(self, now: float, reason: str) -> None:
        """Count a malformed message; log at most one line per MALFORMED_LOG_INTERVAL_S (a
        flood of bad messages must not become a flood of log lines)."""
        self.counters["dropped_malformed"] += 1
        last, unlogged = self._malformed_log
        if now - last < MALFORMED_LOG_INTERVAL_S:
            self._malformed_log = (last, unlogged + 1)
            return
        more = f" ({unlogged} more since the last line)" if unlogged else ""
        log.warning("%s: dropped a malformed message: %.300s%s", self.config.name, reason, more)
        self._malformed_log = (now, 0)

    def handle(self, frames: Sequence[bytes]) -> None:
        """Take one multipart message; a malformed one is counted, logged and dropped."""
        now = self.clock()
        self.counters["received"] += 1
        try:
            message = decode(frames)
            if not isinstance(message, CropMessage | TrackEndMessage):
                raise WireError(f"a {message.TYPE!r} message does not belong on the crop socket")
        except Exception as error:  # no input may kill the worker: counted, dropped
            self._drop_malformed(now, getattr(error, "reason", f"{type(error).__name__}: {error}"))
            return
        key = (message.run, message.camera, message.track)
        if isinstance(message, TrackEndMessage):
            self._end(key, message.t, now)
            return
        state = self.tracklets.get(key)
        if state is None:
            pool = RunningAppearance(
                self.embedder.dim, self.embedder.num_parts, self.config.tracklets.outlier_distance
            )
            state = self.tracklets[key] = TrackletState(*key, pool=pool, last_seen=now)
            self.counters["tracklets"] += 1
            if len(self.tracklets) > self.config.tracklets.max_open:
                self._evict_oldest()
        state.queued += 1
        state.last_seen = now
        self.pending.append(PendingCrop(message, now))

    def _evict_oldest(self) -> None:
        """Finish the tracklet seen longest ago whose crops are all embedded (bounded memory)."""
        idle = (s for s in self.tracklets.values() if not s.queued)
        oldest = min(idle, key=lambda s: s.last_seen, default=None)
        if oldest is not None:
            self.counters["tracklets_evicted"] += 1
            self._finish([oldest])

    def _end(self, key: TrackletKey, t_end: float, now: float) -> None:
        self.counters["track_ends"] += 1
        state = self.tracklets.get(key)
        if state is None:  # finished already (idle, before a restart) or no valid crop came
            run, camera, track = key
            if self.gallery.end(camera, track, t_end, run) is not None:
                self.counters["late_track_ends"] += 1
            return
        state.ended, state.t_end = True, t_end
        state.trigger_at = now
        if state.queued == 0:
            self._finish([state])

    # ---- batching, pooling, matching ------------------------------------------------------

    def step(self) -> None:
        """Embed the batches that are due, finish idle tracklets, publish stats when due."""
        now = self.clock()
        max_batch = self.batch_limit()
        waited_s = now - self.pending[0].received_at if self.pending else 0.0
        if waited_s * 1000 >= self.config.batching.max_wait_ms:
            while self.pending:
                self._embed_batch(max_batch)
        while len(self.pending) >= max_batch:
            self._embed_batch(max_batch)
        if now >= self._next_idle_check:
            self._next_idle_check = now + IDLE_CHECK_S
            timeout = self.config.tracklets.idle_timeout_s
            idle = [
                s for s in self.tracklets.values() if not s.queued and now - s.last_seen > timeout
            ]
            self._finish(idle)
        if now >= self._next_stats:
            self._next_stats = now + self.config.stats_interval_s
            self.publish_stats()

    def batch_limit(self) -> int:
        """Crops in a full batch now: ``max_batch``, cut under load to what the embedder is
        expected to finish within ``max_batch_ms`` (`BatchingConfig`); at least one."""
        batching = self.config.batching
        if batching.max_batch_ms is None or self.ms_per_crop is None:
            return batching.max_batch
        fits = int(batching.max_batch_ms / max(self.ms_per_crop, 1e-6) + 1e-6)  # 2.9999… is 3
        return max(1, min(batching.max_batch, fits))

    def _embed_batch(self, max_batch: int) -> None:
        batch = [self.pending.popleft() for _ in range(min(max_batch, len(self.pending)))]
        started = self.clock()
        features = self.embedder.embed([crop.message.image for crop in batch])
        elapsed_ms = (self.clock() - started) * 1000
        self.embed_ms.append(elapsed_ms)
        per_crop = elapsed_ms / len(batch)
        self.ms_per_crop = (
            per_crop
            if self.ms_per_crop is None
            else (1 - CROP_COST_SMOOTHING) * self.ms_per_crop + CROP_COST_SMOOTHING * per_crop
        )
        self.counters["batches"] += 1
        self.counters["embedded"] += len(batch)
        global_features = features.global_features.numpy()
        part_features = features.part_features.numpy()
        visibility = features.visibility.numpy()
        touched: dict[TrackletKey, TrackletState] = {}
        for row, crop in enumerate(batch):
            message = crop.message
            key = (message.run, message.camera, message.track)
            state = self.tracklets[key]
            weight = state.pool.add(
                global_features[row], part_features[row], visibility[row], message.score
            )
            state.queued -= 1
            state.since_match += 1
            if message.t < state.t_first:
                state.t_first, state.box_first = message.t, tuple(message.box)
            if message.t > state.t_last:
                state.t_last, state.box_last = message.t, tuple(message.box)
            state.trigger_at = max(state.trigger_at, crop.received_at)
            if weight > state.best_weight:
                state.best_weight, state.best_crop = weight, message.image
            touched[key] = state
        rules = self.config.tracklets
        self._match([s for s in touched.values() if s.due(rules)])
        self._finish([s for s in touched.values() if s.ended and not s.queued])

    def _finish(self, states: list[TrackletState]) -> None:
        """Match what is unmatched in finished tracklets (storing the end of ended ones) and
        forget them."""
        self._match([s for s in states if s.since_match])
        for state in states:
            if state.t_end is not None and not state.end_stored and state.global_id is not None:
                self.gallery.end(state.camera, state.track, state.t_end, state.run)
            self.tracklets.pop((state.run, state.camera, state.track), None)

    def _match(self, states: list[TrackletState]) -> None:
        if not states:
            return
        tracklets = [
            Tracklet(
                camera=s.camera,
                track=s.track,
                run=s.run,
                t_first=s.t_first,
                t_last=s.t_last,
                t_end=s.t_end,
                box_first=s.box_first,
                box_last=s.box_last,
                appearance=s.pool.appearance(),
                thumbnail=self._write_thumbnail(s),
            )
            for s in states
        ]
        started = self.clock()
        matches = self.gallery.match_batch(tracklets)
        published_at = self.clock()
        self.match_ms.append((published_at - started) * 1000)
        for state, match in zip(states, matches, strict=True):
            state.global_id = match.global_id
            state.since_match = 0
            state.end_stored = state.t_end is not None
            self._publish(
                AssignmentMessage(
                    camera=state.camera,
                    track=state.track,
                    global_id=match.global_id,
                    score=match.score,
                    is_new=match.is_new,
                    t=state.t_last,
                    run=state.run,
                )
            )
            self.counters["assignments"] += 1
            self.latency_ms.append((published_at - state.trigger_at) * 1000)

    def _write_thumbnail(self, state: TrackletState) -> str:
        folder = self.config.tracklets.thumbnails
        if folder is None or state.best_crop is None:
            return ""
        name = f"{_safe_name(state.run)}-{state.track}" if state.run else str(state.track)
        path = Path(folder) / _safe_name(state.camera) / f"{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), state.best_crop):
            log.warning("%s: could not write thumbnail %s", self.config.name, path)
            return ""
        return str(path)

    def drain(self) -> None:
        """Embed every waiting crop and match every open tracklet that has unmatched crops."""
        while self.pending:
            self._embed_batch(self.config.batching.max_batch)
        self._finish(list(self.tracklets.values()))
        self.publish_stats()

    # ---- stats ----------------------------------------------------------------------------

    def stats(self) -> StatsMessage:
        """The counters and gauges now (percentiles over the last samples)."""
        now = self.clock()
        mark_time, mark_embedded = self._rate_mark
        self._rate_mark = (now, self.counters["embedded"])
        gauges = {
            "open_tracklets": float(len(self.tracklets)),
            "queued_crops": float(len(self.pending)),
            "crops_per_s": (self.counters["embedded"] - mark_embedded) / max(now - mark_time, 1e-9),
            "match_threshold": float(self.gallery.config.threshold),
            "batch_limit": float(self.batch_limit()),
        }
        for name, samples in (
            ("latency", self.latency_ms),
            ("embed", self.embed_ms),
            ("match", self.match_ms),
        ):
            if samples:
                p50, p95 = np.percentile(np.fromiter(samples, float), [50, 95])
                gauges[f"{name}_p50_ms"], gauges[f"{name}_p95_ms"] = float(p50), float(p95)
        return StatsMessage(
            worker=self.config.name, t=time.time(), counters=dict(self.counters), gauges=gauges
        )

    def publish_stats(self) -> StatsMessage:
        message = self.stats()
        c, g = message.counters, message.gauges
        log.info(
            "%s: %d received, %d embedded in %d batches, %d malformed dropped, %d tracklets "
            "(%d open), %d assignments; %.1f crops/s; latency p50/p95 %s ms; embed p50/p95 %s ms; "
            "match p50/p95 %s ms",
            message.worker,
            c["received"],
            c["embedded"],
            c["batches"],
            c["dropped_malformed"],
            c["tracklets"],
            len(self.tracklets),
            c["assignments"],
            g["crops_per_s"],
            _pair(g, "latency"),
            _pair(g, "embed"),
            _pair(g, "match"),
        )
        self._publish(message)
        return message

    def _publish(self, message: WireMessage) -> None:
        if self.publish is not None:
            self.publish(message)

    # ---- serving --------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask `run` to drain and return (thread- and signal-safe)."""
        self._stop.set()

    def _poll_timeout_ms(self) -> int:
        now = self.clock()
        deadlines = [self._next_stats, now + POLL_CAP_S]
        if self.pending:
            deadlines.append(self.pending[0].received_at + self.config.batching.max_wait_ms / 1000)
        return max(0, int((min(deadlines) - now) * 1000))

    def run(self) -> int:
        """Serve until stopped, then drain, close the gallery and return 0 (the exit code)."""
        sockets = self.config.sockets
        context = zmq.Context()
        pull = context.socket(zmq.PULL)
        pull.setsockopt(zmq.RCVHWM, sockets.receive_hwm)
        pull.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)  # a bigger one drops its connection
        pub = context.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, sockets.linger_ms)
        for socket, where in ((pull, sockets.crops), (pub, sockets.assignments)):
            open_endpoint(socket, where.endpoint, sockets.curve, bind=where.bind)
        if self.publish is None:
            self.publish = lambda message: pub.send_multipart(message.encode())
        previous = self._install_signal_handlers()
        log.info(
            "%s ready: crops PULL %s %s, assignments PUB %s %s; %r; gallery %s (%d tracklets, "
            "next new id %d)",
            self.config.name,
            "bind" if sockets.crops.bind else "connect",
            sockets.crops.endpoint,
            "bind" if sockets.assignments.bind else "connect",
            sockets.assignments.endpoint,
            self.embedder,
            self.gallery.config.location,
            len(self.gallery),
            self.gallery.next_global_id,
        )
        try:
            while not self._stop.is_set():
                if pull.poll(self._poll_timeout_ms()):
                    self._receive(pull, self.config.batching.max_batch)
                self.step()
            log.info("%s: stopping — draining what is queued", self.config.name)
            self._receive(pull, sockets.receive_hwm)
            self.drain()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            pull.close(linger=0)
            pub.close()
            stop_authenticator(context)
            context.term()
            self.close()
        log.info("%s: stopped; gallery closed", self.config.name)
        return 0

    def _receive(self, pull: zmq.Socket, limit: int) -> None:
        """Take up to ``limit`` messages already queued on ``pull`` without waiting."""
        for _ in range(limit):
            try:
                frames = pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.handle(frames)

    def _install_signal_handlers(self) -> dict[int, object]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: self.stop())
        return previous

    def close(self) -> None:
        """Close the gallery (which flushes it)."""
        self.gallery.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _pair(gauges: dict[str, float], name: str) -> str:
    if f"{name}_p50_ms" not in gauges:
        return "-"
    return f"{gauges[f'{name}_p50_ms']:.0f}/{gauges[f'{name}_p95_ms']:.0f}"
