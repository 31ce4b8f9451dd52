"""Frame sources of a camera stage (SPEC §5): video files, RTSP/HTTP streams, webcams, image
folders (MOTChallenge sequences included) and `trainer synth video` cameras.

Every source yields `Frame(index, timestamp_s, image)`: ``index`` counts the frames the source
delivered from 0 (for files: the video frame number, which is MOTChallenge frame ``index + 1``),
``timestamp_s`` is the frame's time (``index / fps`` for files, seconds since opening for live
sources) and ``image`` is BGR uint8. An fps cap (`FpsCappedSource`) drops frames by timestamp,
so indices keep their meaning. Live sources reconnect with exponential back-off and count it,
and by default are read on a thread that keeps only the newest frame (`LatestFrameSource`), so
a stage slower than its camera drops frames instead of falling ever further behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import cv2
import numpy as np
from pydantic import BaseModel, TypeAdapter, ValidationError

from stream.config import (
    CameraConfig,
    ImagesSourceConfig,
    ReconnectConfig,
    SourceConfig,
    StreamSourceConfig,
    SyntheticSourceConfig,
    VideoSourceConfig,
    WebcamSourceConfig,
    read_seqinfo,
)

LIVE_SOURCES = (StreamSourceConfig, WebcamSourceConfig)  # read once: no index to return to
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Live streams often report no frame rate (0) or the RTP clock (90000); then this nominal rate
# (the PAL/ONVIF default) sizes the tracker's motion model until real timestamps take over.
NOMINAL_LIVE_FPS = 25.0
MAX_PLAUSIBLE_FPS = 240.0


class SourceError(RuntimeError):
    """A source that cannot be opened or read; the message names it."""


class Frame(NamedTuple):
    index: int
    timestamp_s: float
    image: np.ndarray


@runtime_checkable
class FrameSource(Protocol):
    """What a camera stage reads from."""

    name: str
    fps: float
    size: tuple[int, int]  # width, height
    reconnects: int

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


class Capture(Protocol):
    """The part of `cv2.VideoCapture` a live source uses (tests pass a fake)."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


def _capture_size(capture: Capture) -> tuple[int, int]:
    return (
        int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )


class VideoFileSource:
    """A video file read with OpenCV; timestamps are ``index / fps`` (deterministic)."""

    reconnects = 0

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        if not Path(path).is_file():
            raise SourceError(f"video file not found: {path}")
        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise SourceError(f"OpenCV cannot open the video {path}")
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS))
        if not 0 < self.fps <= MAX_PLAUSIBLE_FPS:
            self._capture.release()
            raise SourceError(f"video {path} reports no usable frame rate ({self.fps})")
        self.size = _capture_size(self._capture)

    def frames(self) -> Iterator[Frame]:
        index = 0
        while True:
            ok, image = self._capture.read()
            if not ok or image is None:
                return
            yield Frame(index, index / self.fps, image)
            index += 1

    def close(self) -> None:
        self._capture.release()


class ImageFolderSource:
    """Images of a folder in name order, or a MOTChallenge sequence folder: ``seqinfo.ini``
    names the image folder (``imDir``), extension and frame rate."""

    reconnects = 0

    def __init__(self, path: Path, fps: float | None = None) -> None:
        self.name = str(path)
        path = Path(path)
        if not path.is_dir():
            raise SourceError(f"image folder not found: {path}")
        try:
            seqinfo = read_seqinfo(path)
        except ValueError as error:
            raise SourceError(str(error)) from None
        folder, suffixes = path, IMAGE_SUFFIXES
        if seqinfo is not None:
            folder = path / seqinfo.get("imdir", "img1")
            suffixes = (seqinfo.get("imext", ".jpg").lower(),)
            fps = fps or float(seqinfo.get("framerate", 0) or 0) or None
        if fps is None or fps <= 0:
            raise SourceError(f"image folder {path}: frame rate unknown (no seqinfo.ini frameRate)")
        self.fps = float(fps)
        if not folder.is_dir():
            raise SourceError(f"image folder not found: {folder} (named by {path}/seqinfo.ini)")
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes)
        if not self.files:
            raise SourceError(f"no images ({', '.join(suffixes)}) in {folder}")
        first = self._read(self.files[0])
        self.size = (first.shape[1], first.shape[0])

    @staticmethod
    def _read(file: Path) -> np.ndarray:
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"unreadable image {file}")
        return image

    def frames(self) -> Iterator[Frame]:
        for index, file in enumerate(self.files):
            yield Frame(index, index / self.fps, self._read(file))

    def close(self) -> None:
        """Nothing stays open between frames."""


def open_capture(target: str | int) -> Capture:
    """OpenCV capture for a stream URL (FFmpeg backend) or a webcam index."""
    if isinstance(target, int):
        return cv2.VideoCapture(target)
    return cv2.VideoCapture(target, cv2.CAP_FFMPEG)


class LiveSource:
    """An RTSP/HTTP stream or a webcam. A failed open or read closes the capture and reopens
    it after ``initial_backoff_s``, doubling up to ``max_backoff_s``; ``reconnects`` counts the
    successful reopenings, ``reconnect_attempts`` every try. ``wait(seconds) -> bool`` sleeps
    and answers True when the caller wants to stop (a stage passes its stop event's ``wait``)."""

    def __init__(
        self,
        target: str | int,
        reconnect: ReconnectConfig,
        opener: Callable[[str | int], Capture] = open_capture,
        wait: Callable[[float], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = str(target)
        self.target = target
        self.policy = reconnect
        self._opener = opener
        self._closed = threading.Event()
        self._wait = wait or self._closed.wait
        self._clock = clock
        self.reconnects = 0
        self.reconnect_attempts = 0
        self._capture: Capture | None = opener(target)
        if not self._capture.isOpened() and self._reopen() != "open":
            raise SourceError(
                f"cannot open live source {target} ({self.reconnect_attempts} reconnect attempts)"
            )
        reported = float(self._capture.get(cv2.CAP_PROP_FPS))
        self.fps = reported if 0 < reported <= MAX_PLAUSIBLE_FPS else NOMINAL_LIVE_FPS
        self.size = _capture_size(self._capture)

    def _reopen(self) -> str:
        """Back off and reopen until it works ("open"), the attempts run out ("gave up"), or
        the caller asks to stop ("stopped")."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        attempt = 0
        while self.policy.max_attempts is None or attempt < self.policy.max_attempts:
            delay = min(self.policy.initial_backoff_s * 2**attempt, self.policy.max_backoff_s)
            if self._wait(delay):
                return "stopped"
            attempt += 1
            self.reconnect_attempts += 1
            capture = self._opener(self.target)
            if capture.isOpened():
                self._capture = capture
                self.reconnects += 1
                return "open"
            capture.release()
        return "gave up"

    def frames(self) -> Iterator[Frame]:
        start = self._clock()
        index = 0
        while self._capture is not None and not self._closed.is_set():
            ok, image = self._capture.read()
            if ok and image is not None:
                yield Frame(index, self._clock() - start, image)
                index += 1
                continue
            outcome = self._reopen()
            if outcome == "gave up":
                raise SourceError(
                    f"live source {self.target} lost; gave up after "
                    f"{self.policy.max_attempts} reconnect attempts in a row"
                )
            if outcome == "stopped":
                return

    def stop(self) -> None:
        """Make `frames` return at its next read (thread-safe; the capture stays open)."""
        self._closed.set()

    def close(self) -> None:
        self._closed.set()
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class LatestFrameSource:
    """A live source read on its own thread, handing out only the newest frame: when the stage
    processes slower than the camera delivers, the frames in between are dropped and counted
    (``stale_dropped``) instead of queueing up in the capture as ever-growing lag. Frames keep
    the reader's indices and timestamps (their capture times), so the tracker sees the gaps."""

    def __init__(self, source: LiveSource) -> None:
        self.source = source
        self.name, self.fps, self.size = source.name, source.fps, source.size
        self.stale_dropped = 0
        self._changed = threading.Condition()
        self._latest: Frame | None = None
        self._finished = False
        self._error: BaseException | None = None
        self._reader: threading.Thread | None = None

    @property
    def reconnects(self) -> int:
        return self.source.reconnects

    def _read(self) -> None:
        try:
            for frame in self.source.frames():
                with self._changed:
                    if self._latest is not None:
                        self.stale_dropped += 1
                    self._latest = frame
                    self._changed.notify()
        except BaseException as error:  # handed to the consumer's thread
            self._error = error
        finally:
            with self._changed:
                self._finished = True
                self._changed.notify()

    def frames(self) -> Iterator[Frame]:
        """Starts reading now (not at the first ``next``): the camera does not wait."""
        self._reader = threading.Thread(target=self._read, name=f"read {self.name}", daemon=True)
        self._reader.start()
        return self._newest()

    def _newest(self) -> Iterator[Frame]:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._latest is not None or self._finished)
                frame, self._latest = self._latest, None
            if frame is None:
                if self._error is not None:
                    raise self._error
                return
            yield frame

    def close(self) -> None:
        """Stop the reader before releasing the capture (OpenCV must not release a capture
        another thread is reading)."""
        self.source.stop()
        if self._reader is not None:
            self._reader.join(timeout=10.0)
        self.source.close()


class FpsCappedSource:
    """Keeps at most ``max_fps`` frames per second of source time: a frame passes when its
    timestamp reaches the next slot; slots advance by 1/max_fps so the rate does not drift."""

    def __init__(self, source: FrameSource, max_fps: float) -> None:
        self.source = source
        self.name = source.name
        self.max_fps = max_fps
        self.fps = min(source.fps, max_fps)
        self.size = source.size

    @property
    def reconnects(self) -> int:
        return self.source.reconnects

    def frames(self) -> Iterator[Frame]:
        period = 1.0 / self.max_fps
        tolerance = 1e-6
        next_slot: float | None = None
        for frame in self.source.frames():
            if next_slot is not None and frame.timestamp_s + tolerance < next_slot:
                continue
            next_slot = (
                frame.timestamp_s + period
                if next_slot is None or frame.timestamp_s >= next_slot + period
                else next_slot + period
            )
            yield frame

    def close(self) -> None:
        self.source.close()


class ReplayedSource:
    """A file source played like a camera (`stream.config.ReplayOptions`): with ``pace`` a
    frame waits for its timestamp (÷ pace) on the wall clock; with ``loop`` the file plays
    again when it ends, indices restarting and timestamps running on by one pass's length.
    ``wait(seconds) -> bool`` sleeps and answers True when the caller wants to stop."""

    reconnects = 0

    def __init__(
        self,
        open_file: Callable[[], FrameSource],
        loop: bool,
        pace: float | None,
        wait: Callable[[float], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open_file = open_file
        self._source = open_file()
        self.name, self.fps, self.size = self._source.name, self._source.fps, self._source.size
        self.loop, self.pace = loop, pace
        self._closed = threading.Event()
        self._wait = wait or self._closed.wait
        self._clock = clock
        self.passes = 0

    def frames(self) -> Iterator[Frame]:
        start, offset_s = self._clock(), 0.0
        while not self._closed.is_set():
            last_s = None
            for frame in self._source.frames():
                last_s = offset_s + frame.timestamp_s
                if self.pace is not None:
                    delay = start + last_s / self.pace - self._clock()
                    if delay > 0 and self._wait(delay):
                        return
                yield Frame(frame.index, last_s, frame.image)
            self.passes += 1
            if not self.loop or last_s is None:  # an empty file would loop forever
                return
            offset_s = last_s + 1.0 / self.fps
            self._source.close()
            self._source = self._open_file()

    def close(self) -> None:
        self._closed.set()
        self._source.close()


def _replayed(
    config: VideoSourceConfig | SyntheticSourceConfig | ImagesSourceConfig,
    open_file: Callable[[], FrameSource],
    wait: Callable[[float], bool] | None,
) -> FrameSource:
    if not config.loop and config.pace is None:
        return open_file()
    return ReplayedSource(open_file, config.loop, config.pace, wait)


def _open_video(
    config: VideoSourceConfig | SyntheticSourceConfig,
    wait: Callable[[float], bool] | None = None,
    **_: Any,
) -> FrameSource:
    return _replayed(config, lambda: VideoFileSource(config.path), wait)


def _open_images(
    config: ImagesSourceConfig, wait: Callable[[float], bool] | None = None, **_: Any
) -> FrameSource:
    return _replayed(config, lambda: ImageFolderSource(config.path, config.fps), wait)


def _open_live(config: StreamSourceConfig | WebcamSourceConfig, **live: Any) -> FrameSource:
    target = config.url if isinstance(config, StreamSourceConfig) else config.index
    source = LiveSource(target, config.reconnect, **live)
    return LatestFrameSource(source) if config.latest_only else source


SOURCE_TYPES: dict[str, Callable[..., FrameSource]] = {
    "video": _open_video,
    "synthetic": _open_video,
    "rtsp": _open_live,
    "webcam": _open_live,
    "images": _open_images,
}
_SOURCE_ADAPTER: TypeAdapter[Any] = TypeAdapter(SourceConfig)


def parse_source(spec: Any, base_dir: Path | None = None) -> SourceConfig:
    """A source from its cams.yaml form (a path, URL, webcam index or typed mapping)."""
    try:
        return _SOURCE_ADAPTER.validate_python(spec, context={"base_dir": base_dir})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'source'}: {e['msg']}" for e in error.errors()
        )
        raise SourceError(f"invalid source {spec!r}: {problems}") from None


def open_source(
    spec: Any,
    max_fps: float | None = None,
    *,
    opener: Callable[[str | int], Capture] | None = None,
    wait: Callable[[float], bool] | None = None,
) -> FrameSource:
    """Open a source by its type name (`SOURCE_TYPES`); ``max_fps`` caps its frame rate.
    ``opener``/``wait`` reach live sources only (a fake capture in tests, a stage's stop)."""
    config = spec if isinstance(spec, BaseModel) else parse_source(spec)
    factory = SOURCE_TYPES[config.type]
    live = {"wait": wait} | ({"opener": opener} if opener is not None else {})
    source = factory(config, **live)
    if max_fps is not None and max_fps < source.fps:
        return FpsCappedSource(source, max_fps)
    return source


def open_camera_source(
    camera: CameraConfig, wait: Callable[[float], bool] | None = None
) -> FrameSource:
    """The source of a cams.yaml camera, with its fps cap."""
    return open_source(camera.source, camera.fps, wait=wait)


def reread_reason(camera: CameraConfig) -> str | None:
    """Why a camera's frames cannot be read again after a run to match its events (None when
    they can): a live source is gone, a looping one numbers its frames anew on every pass."""
    if isinstance(camera.source, LIVE_SOURCES):
        return f"its source is live ({camera.source.type}) and cannot be read a second time"
    if getattr(camera.source, "loop", False):
        return "its source loops, so a frame index stands for a frame of every pass"
    return None


def open_recorded_source(camera: CameraConfig) -> FrameSource:
    """A file camera's frames once more, as the run indexed them (its fps cap kept), at full
    speed: post-run passes (final-id videos, `stream harvest`) do not wait for a pace."""
    reason = reread_reason(camera)
    if reason is not None:
        raise SourceError(f"camera {camera.id}: {reason}")
    return open_source(camera.source.model_copy(update={"pace": None}), camera.fps)
