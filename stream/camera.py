"""The per-camera stage of `stream run` (SPEC §1, §5; issue 7 item 5), one process per camera:

    source → detector → tracker → crop selection → ZeroMQ PUSH to the feature worker(s)
                                 ↖ ZeroMQ SUB: assignments (global ids) label the tracks

Crops are chosen per tracklet (SPEC §7: embed per tracklet, not every box of every frame): a
tracked box becomes a crop when it is large enough, not cut by the frame border, confidently
detected, not reported mostly hidden (ground truth's visibility), at least ``every_n_frames``
processed frames after its track's previous crop, and its track has sent fewer than
``max_per_track``. Each worker link has an application-level queue of ``queue_size`` messages
and a ZeroMQ PUSH socket with a small send high-water mark and non-blocking sends: when a
worker is slow or gone, the queue fills and the OLDEST crop is dropped and counted, so the
camera never blocks and memory stays bounded. A track's ``track_end`` is only dropped when the
queue holds nothing else.

Outputs (all optional, `OutputsConfig`): an annotated video ``OUT/videos/CAMERA.mp4`` (boxes
labelled ``G<global id>``, or ``t<track id>`` until the worker assigns one), one JPEG thumbnail
per tracklet ``OUT/thumbnails/CAMERA/track_NNNNNN.jpg`` (its best box: not cut, largest ×
score), and messages to ``emit((kind, payload))`` — a callable such as a multiprocessing
queue's ``put``:

- ``("events", [TrackEvent dict, ...])`` once per processed frame with tracks: ``camera``,
  ``frame`` (0-based source frame index = MOTChallenge frame − 1), ``time`` (s, the frame's
  timestamp), ``track_id``, ``global_id`` (null until assigned), ``box`` [x1, y1, x2, y2]
  (0-based px), ``score``, ``run`` (the `stream run` id);
- ``("track_end", TrackRecord dict)`` when the tracker drops a track (thumbnail path included);
- ``("assignment", dict)`` for every assignment received, also for tracks that already ended
  (the final identity of a tracklet, for offline scoring);
- ``("stats", StageStats dict)`` every ``stats_interval_s`` and once more at the end
  (``finished: true``).

Messages to the workers carry the run id (track ids restart in every run) and times on the
run's clock, ``clock_origin`` + the frame's timestamp: the supervisor's start (Unix time) for
file sources, so its cameras share one clock, and the source's opening for live ones, so their
times are wall-clock. Assignments of another run are ignored.

`run_camera` stops at the end of the source, when ``stop_event`` is set, or on Ctrl-C; it then
ends every open track, drains the queues for up to ``flush_timeout_s``, finalises the video
and writes the thumbnails.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import supervision as sv
import zmq
from pydantic import BaseModel, ConfigDict

from stream.config import (
    CameraConfig,
    CamsConfig,
    CropPolicy,
    OutputsConfig,
)
from stream.detectors import VISIBILITY, build_detector
from stream.mtmc import assignment_record
from stream.routing import worker_for
from stream.security import CurveConfig, open_endpoint
from stream.sources import LIVE_SOURCES, Frame, FrameSource, open_camera_source
from stream.tracking import Tracker, build_tracker
from stream.wire import AssignmentMessage, CropMessage, TrackEndMessage, WireError

Route = Callable[[str, int], int]
Emit = Callable[[tuple[str, Any]], None]
DRAIN_POLL_S = 0.01
UNLABELLED_COLOUR_BASE = 1_000_003  # colour keys of t<track> boxes, apart from G<id> ones
# matplotlib's tab10: neighbouring ids get clearly different colours (supervision's default
# palette runs through shades, so G3 and G4 were both orange)
LABEL_PALETTE = sv.ColorPalette.from_hex(
    [
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#d62728",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
        "#bcbd22",
        "#17becf",
    ]
)


class StopEvent(Protocol):
    """`threading.Event` or `multiprocessing.Event`."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class TrackEvent(BaseModel):
    """One tracked box: a line of the run's ``events.jsonl``."""

    model_config = ConfigDict(extra="forbid")

    camera: str
    frame: int
    time: float
    track_id: int
    global_id: int | None
    box: tuple[float, float, float, float]
    score: float
    run: str = ""


@dataclass
class TrackRecord:
    """What a camera knows about one of its tracklets when it ends; ``t_first``/``t_last``
    are on the run's clock (as the gallery stores them)."""

    camera: str
    track_id: int
    global_id: int | None
    first_frame: int
    last_frame: int
    t_first: float = 0.0
    t_last: float = 0.0
    frames: int = 0
    crops_sent: int = 0
    thumbnail: str | None = None


@dataclass
class StageStats:
    """A camera stage's counters: ``crops_queued`` crops were chosen, ``sent`` messages (crops
    and track ends) left for a worker, ``dropped`` were pushed out of a full queue (the oldest
    first), ``queue_depth`` wait now; ``fps`` is the processing rate of the last interval (over
    the whole run in the final report)."""

    camera: str
    frames: int = 0
    fps: float = 0.0
    tracks_active: int = 0
    tracks_total: int = 0
    queue_depth: int = 0
    crops_queued: int = 0
    fallback_crops: int = 0  # of crops_queued: stand-ins for tracks none of whose boxes passed
    sent: int = 0
    dropped: int = 0
    track_ends: int = 0
    assignments: int = 0
    malformed_assignments: int = 0
    reconnects: int = 0
    stale_frames: int = 0  # live frames dropped while the stage was busy (no lag builds up)
    nice: int = 0  # the stage process's niceness (CamsConfig.camera_nice in `stream run`)
    elapsed_s: float = 0.0
    finished: bool = False
    error: str | None = None


# --- sending ---------------------------------------------------------------------------------


class WorkerLink:
    """One worker's PUSH socket behind a bounded drop-oldest queue of encoded messages."""

    def __init__(
        self,
        context: zmq.Context,
        endpoint: str,
        queue_size: int,
        send_hwm: int,
        curve: CurveConfig,
    ) -> None:
        self.endpoint = endpoint
        self.queue_size = queue_size
        self.queue: deque[tuple[bool, list[bytes]]] = deque()  # (is_crop, frames)
        self.sent = 0
        self.dropped = 0
        self.socket = context.socket(zmq.PUSH)
        self.socket.setsockopt(zmq.SNDHWM, send_hwm)
        self.socket.setsockopt(zmq.IMMEDIATE, 1)  # no peer yet: keep messages in our queue
        self.socket.setsockopt(zmq.LINGER, 0)
        open_endpoint(self.socket, endpoint, curve, bind=False)

    def put(self, frames: list[bytes], is_crop: bool) -> None:
        if len(self.queue) >= self.queue_size:
            self._drop_oldest()
        self.queue.append((is_crop, frames))

    def _drop_oldest(self) -> None:
        for position, (is_crop, _) in enumerate(self.queue):
            if is_crop:
                del self.queue[position]
                break
        else:
            self.queue.popleft()
        self.dropped += 1

    def flush(self) -> None:
        """Send what the socket takes now, in order; never blocks."""
        while self.queue:
            try:
                self.socket.send_multipart(self.queue[0][1], flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            self.queue.popleft()
            self.sent += 1

    def close(self, linger_s: float) -> None:
        self.socket.close(linger=int(linger_s * 1000))


class CropSender:
    """Routes a camera's crops and track ends to the worker owning each tracklet."""

    def __init__(
        self,
        context: zmq.Context,
        endpoints: Sequence[str],
        route: Route,
        queue_size: int,
        send_hwm: int,
        curve: CurveConfig,
    ) -> None:
        if not endpoints:
            raise ValueError("a camera stage needs at least one worker crop endpoint")
        self.route = route
        self.links = [
            WorkerLink(context, endpoint, queue_size, send_hwm, curve) for endpoint in endpoints
        ]

    def _link(self, camera: str, track: int) -> WorkerLink:
        index = self.route(camera, track)
        if not 0 <= index < len(self.links):
            raise ValueError(
                f"route({camera!r}, {track}) = {index}, outside the {len(self.links)} workers"
            )
        return self.links[index]

    def send(self, message: CropMessage | TrackEndMessage, jpeg_quality: int) -> None:
        is_crop = isinstance(message, CropMessage)
        frames = message.encode(jpeg_quality) if is_crop else message.encode()
        link = self._link(message.camera, message.track)
        link.put(frames, is_crop)
        link.flush()

    def flush(self) -> None:
        for link in self.links:
            link.flush()

    def drain(self, timeout_s: float) -> None:
        """At the end: keep flushing until the queues are empty or ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        self.flush()
        while self.depth and time.monotonic() < deadline:
            time.sleep(DRAIN_POLL_S)
            self.flush()

    @property
    def depth(self) -> int:
        return sum(len(link.queue) for link in self.links)

    def close(self, linger_s: float) -> None:
        for link in self.links:
            link.close(linger_s)


class AssignmentListener:
    """SUB to the workers' assignment PUBs, filtered to this camera's messages."""

    def __init__(
        self, context: zmq.Context, camera: str, endpoints: Sequence[str], curve: CurveConfig
    ) -> None:
        self.socket = context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SUBSCRIBE, AssignmentMessage.subscription(camera))
        for endpoint in endpoints:
            open_endpoint(self.socket, endpoint, curve, bind=False)
        self.malformed = 0

    def poll(self) -> list[AssignmentMessage]:
        """Every assignment waiting now; malformed messages are counted and skipped."""
        received = []
        while True:
            try:
                frames = self.socket.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return received
            try:
                received.append(AssignmentMessage.decode(frames))
            except WireError:
                self.malformed += 1

    def close(self) -> None:
        self.socket.close()


# --- crop choice and per-track state ---------------------------------------------------------


def is_cut_by_border(box: np.ndarray, size: tuple[int, int], margin: int) -> bool:
    """A box within ``margin`` px of the frame edge shows only part of the person."""
    width, height = size
    x1, y1, x2, y2 = box
    return x1 < margin or y1 < margin or x2 > width - margin or y2 > height - margin


@dataclass
class TrackState:
    record: TrackRecord
    last_crop_frame: int | None = None  # processed-frame counter of the last crop
    best_quality: float = -1.0
    best_crop: np.ndarray | None = field(default=None, repr=False)
    passed: bool = False  # a box of this track passed the crop policy (was sent)
    fallback: CropMessage | None = field(default=None, repr=False)  # best box of this stretch
    fallback_quality: float = -1.0
    stretch_start: int = 0  # record.frames when the current fallback stretch began


class CropSelector:
    """The crop policy (`CropPolicy`) applied to one tracked box of one track."""

    def __init__(self, policy: CropPolicy, frame_size: tuple[int, int]) -> None:
        self.policy = policy
        self.frame_size = frame_size

    def wants(
        self, state: TrackState, box: np.ndarray, score: float, visibility: float, step: int
    ) -> bool:
        policy = self.policy
        width, height = box[2] - box[0], box[3] - box[1]
        if width < policy.min_width or height < policy.min_height or score < policy.min_score:
            return False
        if visibility < policy.min_visibility:
            return False
        if is_cut_by_border(box, self.frame_size, policy.border_margin):
            return False
        if state.record.crops_sent >= policy.max_per_track:
            return False
        return state.last_crop_frame is None or step - state.last_crop_frame >= (
            policy.every_n_frames
        )

    def fallback_candidate(self, state: TrackState, score: float) -> bool:
        """Whether a box the policy refused may stand in for the track (`CropPolicy.
        fallback_every_n_frames`): none of the track's boxes passed yet, the detector is
        confident enough and the track has crops left."""
        policy = self.policy
        return (
            policy.fallback_every_n_frames is not None
            and not state.passed
            and score >= policy.min_score
            and state.record.crops_sent < policy.max_per_track
        )

    def quality(self, box: np.ndarray, score: float) -> float:
        """Thumbnail and fallback preference: uncut boxes first, then area × score."""
        area = float((box[2] - box[0]) * (box[3] - box[1]))
        cut = is_cut_by_border(box, self.frame_size, self.policy.border_margin)
        return area * score * (0.25 if cut else 1.0)


def crop_of(image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """The pixels of ``box`` (clipped to the image), or None when nothing is left."""
    height, width = image.shape[:2]
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    if x2 <= x1 or y2 <= y1:
        return None
    return np.ascontiguousarray(image[y1:y2, x1:x2])


def inside_roi(detections: sv.Detections, roi: list[tuple[float, float]] | None) -> np.ndarray:
    """Which detections have their feet (bottom centre) inside the region of interest."""
    if roi is None or len(detections) == 0:
        return np.ones(len(detections), dtype=bool)
    polygon = np.asarray(roi, dtype=np.float32).reshape(-1, 1, 2)
    feet = np.stack(
        [(detections.xyxy[:, 0] + detections.xyxy[:, 2]) / 2, detections.xyxy[:, 3]], axis=1
    )
    return np.array(
        [cv2.pointPolygonTest(polygon, (float(x), float(y)), False) >= 0 for x, y in feet]
    )


# --- outputs -----------------------------------------------------------------------------------


class AnnotatedVideo:
    """The camera's video with its tracks drawn (supervision's annotators): a colour per label,
    and with ``trail_s`` > 0 where each label's box bottom was over the last seconds."""

    def __init__(
        self, path: Path, fps: float, size: tuple[int, int], fourcc: str, trail_s: float = 0.0
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not self.writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write a {fourcc} video to {path}")
        self.boxes = sv.BoxAnnotator(
            color=LABEL_PALETTE, thickness=2, color_lookup=sv.ColorLookup.CLASS
        )
        self.labels = sv.LabelAnnotator(
            color=LABEL_PALETTE, text_scale=0.4, text_padding=3, color_lookup=sv.ColorLookup.CLASS
        )
        self.trails = (
            sv.TraceAnnotator(
                color=LABEL_PALETTE,
                thickness=2,
                trace_length=max(2, round(trail_s * fps)),
                position=sv.Position.BOTTOM_CENTER,
                color_lookup=sv.ColorLookup.CLASS,
            )
            if trail_s > 0
            else None
        )

    def write(self, frame: Frame, tracked: sv.Detections, labels: list[int | None]) -> None:
        """Draw ``tracked`` labelled by global id (``G7``), or track id (``t3``) until then."""
        image = frame.image.copy()
        if len(tracked):
            keys = [  # colours by label: a track awaiting its id does not wear G<track>'s
                (global_id, f"G{global_id}")
                if global_id is not None
                else (UNLABELLED_COLOUR_BASE + track, f"t{track}")
                for global_id, track in zip(labels, tracked.tracker_id.tolist(), strict=True)
            ]
            colour_keys = np.array([k for k, _ in keys])
            # trails follow a label (tracker_id = its colour key), not the camera's track
            shown = sv.Detections(xyxy=tracked.xyxy, class_id=colour_keys, tracker_id=colour_keys)
            if self.trails is not None:
                image = self.trails.annotate(image, shown)
            image = self.boxes.annotate(image, shown)
            image = self.labels.annotate(image, shown, labels=[text for _, text in keys])
        cv2.putText(
            image,
            f"frame {frame.index}",
            (6, 16),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        self.writer.write(image)

    def close(self) -> None:
        self.writer.release()


def write_thumbnail(crop: np.ndarray, path: Path, height: int, quality: int) -> Path:
    scale = height / crop.shape[0]
    size = (max(1, round(crop.shape[1] * scale)), height)
    path.parent.mkdir(parents=True, exist_ok=True)
    thumbnail = cv2.resize(
        crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    )
    if not cv2.imwrite(str(path), thumbnail, [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise RuntimeError(f"cannot write the thumbnail {path}")
    return path


# --- the stage ---------------------------------------------------------------------------------


class CameraStage:
    """One camera's loop; `run_camera` is the process entry point around it."""

    def __init__(
        self,
        camera: CameraConfig,
        config: CamsConfig,
        out_dir: Path,
        source: FrameSource,
        sender: CropSender,
        listener: AssignmentListener,
        emit: Emit | None,
        stats_interval_s: float,
        *,
        run: str = "",
        clock_origin: float = 0.0,
        track_offset: int = 0,
    ) -> None:
        self.camera = camera
        self.run = run
        self.clock_origin = clock_origin
        self.track_offset = track_offset
        self.config = config
        self.out_dir = Path(out_dir)
        self.source = source
        self.sender = sender
        self.listener = listener
        self.emit = emit or (lambda message: None)
        self.stats_interval_s = stats_interval_s
        self.detector = build_detector(config.detector, camera, self.out_dir / "work")
        self.tracker: Tracker = build_tracker(config.tracker, source.fps)
        self.selector = CropSelector(config.crops, source.size)
        self.tracks: dict[int, TrackState] = {}
        self.stats = StageStats(camera=camera.id, nice=os.getpriority(os.PRIO_PROCESS, 0))
        outputs: OutputsConfig = config.outputs
        self.video = (
            AnnotatedVideo(
                self.out_dir / "videos" / f"{camera.id}.mp4",
                source.fps,
                source.size,
                outputs.video_fourcc,
            )
            if outputs.video
            else None
        )
        self.thumbnail_dir = self.out_dir / "thumbnails" / camera.id if outputs.thumbnails else None
        self._started = time.monotonic()
        self._window = (self._started, 0)  # (time, frames) at the last stats report

    def _receive_assignments(self, frame: Frame) -> None:
        for message in self.listener.poll():
            if message.run != self.run:  # a worker shared with another run answers it too
                continue
            state = self.tracks.get(message.track)
            if state is not None:  # a late answer for an ended track is only passed on
                state.record.global_id = message.global_id
            self.stats.assignments += 1
            self.emit(
                (
                    "assignment",
                    assignment_record(message, frame=frame.index, time=frame.timestamp_s),
                )
            )

    def process(self, frame: Frame) -> None:
        """Detect, track, choose crops, label and record one frame."""
        self._receive_assignments(frame)
        detections = self.detector.detect(frame.image, frame.index)
        detections = detections[inside_roi(detections, self.camera.roi)]
        update = self.tracker.update(detections, frame.image, frame.timestamp_s)
        tracked = update.tracked
        if self.track_offset and len(tracked):
            tracked.tracker_id = tracked.tracker_id + self.track_offset
        ones = np.ones(len(tracked))
        scores = tracked.confidence if tracked.confidence is not None else ones
        visibility = tracked.data.get(VISIBILITY, ones)
        events, labels = [], []
        for box, track, score, seen in zip(
            tracked.xyxy, tracked.tracker_id, scores, visibility, strict=True
        ):
            track, score = int(track), float(score)
            state = self._track_state(track, frame)
            state.record.last_frame = frame.index
            state.record.t_last = self.clock_origin + frame.timestamp_s
            state.record.frames += 1
            self._offer(state, frame, box, score, float(seen))
            global_id = state.record.global_id
            labels.append(global_id)
            events.append(
                TrackEvent(
                    camera=self.camera.id,
                    frame=frame.index,
                    time=frame.timestamp_s,
                    track_id=track,
                    global_id=global_id,
                    box=tuple(round(float(v), 2) for v in box),
                    score=round(score, 4),
                    run=self.run,
                ).model_dump()
            )
        for track in update.ended:
            self._end_track(track + self.track_offset, frame.timestamp_s)
        if events:
            self.emit(("events", events))
        if self.video is not None:
            self.video.write(frame, tracked, labels)
        self.sender.flush()
        self.stats.frames += 1
        self._report_if_due()

    def _track_state(self, track: int, frame: Frame) -> TrackState:
        state = self.tracks.get(track)
        if state is None:
            t = self.clock_origin + frame.timestamp_s
            record = TrackRecord(self.camera.id, track, None, frame.index, frame.index, t, t)
            state = self.tracks[track] = TrackState(record)
            self.stats.tracks_total += 1
        return state

    def _offer(
        self, state: TrackState, frame: Frame, box: np.ndarray, score: float, visibility: float
    ) -> None:
        """Send the box as a crop when the policy wants it, else keep it as the track's fallback
        when it is the best of this stretch (sent at the stretch's end); keep it when it is the
        track's best thumbnail so far."""
        wanted = self.selector.wants(state, box, score, visibility, self.stats.frames)
        quality = self.selector.quality(box, score * visibility)
        thumbnail = self.thumbnail_dir is not None and quality > state.best_quality
        fallback = (
            not wanted
            and quality > state.fallback_quality
            and self.selector.fallback_candidate(state, score)
        )
        crop = crop_of(frame.image, box) if wanted or thumbnail or fallback else None
        if crop is not None:
            message = CropMessage(
                camera=self.camera.id,
                track=state.record.track_id,
                frame=frame.index,
                t=self.clock_origin + frame.timestamp_s,
                box=[float(v) for v in box],
                score=score,
                image=crop,
                run=self.run,
            )
            if wanted:
                state.passed, state.fallback = True, None
                self._send_crop(state, message)
            elif fallback:
                state.fallback, state.fallback_quality = message, quality
            if thumbnail:
                state.best_quality, state.best_crop = quality, crop
        every = self.config.crops.fallback_every_n_frames
        if every is not None and state.record.frames - state.stretch_start >= every:
            self._send_fallback(state)

    def _send_crop(self, state: TrackState, message: CropMessage) -> None:
        self.sender.send(message, self.config.crops.jpeg_quality)
        state.record.crops_sent += 1
        state.last_crop_frame = self.stats.frames
        self.stats.crops_queued += 1

    def _send_fallback(self, state: TrackState) -> None:
        """Send the stretch's best refused box, if any, and start the next stretch."""
        if state.fallback is not None and not state.passed:
            self._send_crop(state, state.fallback)
            self.stats.fallback_crops += 1
        state.fallback, state.fallback_quality = None, -1.0
        state.stretch_start = state.record.frames

    def _end_track(self, track: int, timestamp_s: float) -> None:
        state = self.tracks.pop(track, None)
        if state is not None:
            self._send_fallback(state)
        end = TrackEndMessage(
            camera=self.camera.id, track=track, t=self.clock_origin + timestamp_s, run=self.run
        )
        self.sender.send(end, 0)
        self.stats.track_ends += 1
        if state is None:
            return
        record = state.record
        if self.thumbnail_dir is not None and state.best_crop is not None:
            path = self.thumbnail_dir / f"track_{track:06d}.jpg"
            policy = self.config.crops
            write_thumbnail(
                state.best_crop, path, policy.thumbnail_height, policy.thumbnail_quality
            )
            record.thumbnail = str(path)
        self.emit(("track_end", asdict(record)))

    def snapshot(self) -> StageStats:
        stats = self.stats
        links = self.sender.links
        now = time.monotonic()
        since, frames_then = self._window
        stats.elapsed_s = now - self._started
        stats.fps = (stats.frames - frames_then) / max(now - since, 1e-9)
        stats.tracks_active = len(self.tracker.alive)
        stats.queue_depth = self.sender.depth
        stats.sent = sum(link.sent for link in links)
        stats.dropped = sum(link.dropped for link in links)
        stats.malformed_assignments = self.listener.malformed
        stats.reconnects = self.source.reconnects
        stats.stale_frames = _stale_frames(self.source)
        self._window = (now, stats.frames)
        return stats

    def _report_if_due(self) -> None:
        if time.monotonic() - self._window[0] >= self.stats_interval_s:
            self.emit(("stats", asdict(self.snapshot())))

    def finish(self, timestamp_s: float, error: str | None) -> StageStats:
        """End every open track, drain the queues, finalise the outputs. The final ``fps`` is
        over the frames' processing (the drain waits for the worker, not the camera)."""
        processing_s = time.monotonic() - self._started
        for track in self.tracker.finish():
            self._end_track(track + self.track_offset, timestamp_s)
        self.sender.drain(self.config.workers.flush_timeout_s)
        if self.video is not None:
            self.video.close()
        stats = self.snapshot()
        stats.fps = stats.frames / max(processing_s, 1e-9)
        stats.finished, stats.error = True, error
        self.emit(("stats", asdict(stats)))
        return stats


def _stale_frames(source: Any) -> int:
    """Frames a live source dropped because the stage was busy (`LatestFrameSource`), through
    any wrappers (an fps cap)."""
    while source is not None:
        if hasattr(source, "stale_dropped"):
            return source.stale_dropped
        source = getattr(source, "source", None)
    return 0


def run_camera(
    camera: CameraConfig,
    config: CamsConfig,
    out_dir: str | Path,
    *,
    crop_endpoints: Sequence[str] | None = None,
    assignment_endpoints: Sequence[str] | None = None,
    route: Route | None = None,
    stop_event: StopEvent | None = None,
    emit: Emit | None = None,
    stats_interval_s: float = 1.0,
    max_frames: int | None = None,
    run: str = "",
    clock_origin: float | None = None,
    start_frame: int = 0,
    track_offset: int = 0,
    supervisor_pid: int | None = None,
    nice: int = 0,
) -> dict[str, Any]:
    """Run one camera until its source ends, ``stop_event`` is set or Ctrl-C; returns the final
    `StageStats` as a dict (also emitted). Usable as a `multiprocessing.Process` target: every
    argument pickles (``emit`` may be a multiprocessing queue's ``put``).

    Endpoints default to ``config.workers``' external ones; ``route(camera, track)`` picks the
    worker index (default: `stream.routing.worker_for` over the crop endpoints). ``run`` and
    ``clock_origin`` (Unix time; default: when the source opened) set the run's identity and
    clock; a live source always counts from its own opening (its frames' wall-clock times).
    A resumed run starts a file source at ``start_frame`` and numbers tracks from
    ``track_offset`` + 1 on. With ``supervisor_pid`` the process ends when that one dies.
    ``nice`` is added to the calling process's niceness (`CamsConfig.camera_nice`): give it
    only where the camera runs in a process of its own.
    """
    if nice:
        os.nice(nice)
    if supervisor_pid is not None:
        from stream.lifecycle import die_with_parent

        die_with_parent(supervisor_pid)
    crop_endpoints = list(crop_endpoints or config.workers.crop_endpoints)
    assignment_endpoints = list(assignment_endpoints or config.workers.assignment_endpoints)
    route = route or partial(_route_by_hash, workers=len(crop_endpoints))
    workers = config.workers
    with ExitStack() as resources:
        context = zmq.Context()
        resources.callback(context.term)
        sender = CropSender(
            context, crop_endpoints, route, workers.queue_size, workers.send_hwm, workers.curve
        )
        resources.callback(sender.close, workers.flush_timeout_s)
        listener = AssignmentListener(context, camera.id, assignment_endpoints, workers.curve)
        resources.callback(listener.close)
        source = open_camera_source(camera, wait=stop_event.wait if stop_event else None)
        resources.callback(source.close)
        if clock_origin is None or isinstance(camera.source, LIVE_SOURCES):
            clock_origin = time.time()
        stage = CameraStage(
            camera,
            config,
            Path(out_dir),
            source,
            sender,
            listener,
            emit,
            stats_interval_s,
            run=run,
            clock_origin=clock_origin,
            track_offset=track_offset,
        )
        last_time, error = 0.0, None
        try:
            for frame in source.frames():
                if stop_event is not None and stop_event.is_set():
                    break
                if frame.index < start_frame:  # processed by the run this one resumes
                    continue
                start_frame = 0  # a looping source starts its next pass from its start
                stage.process(frame)
                last_time = frame.timestamp_s
                if max_frames is not None and stage.stats.frames >= max_frames:
                    break
        except KeyboardInterrupt:
            pass  # Ctrl-C is a stop, not a failure
        except Exception as failure:
            error = f"{type(failure).__name__}: {failure}"
            raise
        finally:
            stats = stage.finish(last_time, error)
    return asdict(stats)


def _route_by_hash(camera: str, track: int, workers: int) -> int:
    return worker_for(camera, track, workers)
