"""Frame sources (stream/sources.py): video files, image folders, MOTChallenge sequence folders,
the fps cap, and live-stream reconnection with back-off (a fake capture, no network)."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from stream.config import ImagesSourceConfig, ReconnectConfig
from stream.sources import (
    FpsCappedSource,
    FrameSource,
    ImageFolderSource,
    LatestFrameSource,
    LiveSource,
    ReplayedSource,
    SourceError,
    open_source,
)
from trainer.synth.video import VideoConfig, write_videos

FRAMES = 30


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny synthetic cameras with their img1/ frames (a MOTChallenge sequence folder each)."""
    out = tmp_path_factory.mktemp("sources") / "synth"
    write_videos(
        VideoConfig(cameras=2, people=3, seconds=3, size=(320, 180), write_frames=True),
        out,
        workers=1,
        show_progress=False,
    )
    return out


def test_video_file_frames_indices_and_times(scene: Path) -> None:
    source = open_source(str(scene / "cam1" / "video.mp4"))
    assert isinstance(source, FrameSource)
    assert (source.fps, source.size, source.reconnects) == (10.0, (320, 180), 0)
    frames = list(source.frames())
    source.close()
    assert [f.index for f in frames] == list(range(FRAMES))
    assert [f.timestamp_s for f in frames] == pytest.approx([i / 10 for i in range(FRAMES)])
    assert frames[0].image.shape == (180, 320, 3) and frames[0].image.dtype == np.uint8


def test_fps_cap_drops_frames_by_time_and_keeps_indices(scene: Path) -> None:
    source = open_source({"type": "synthetic", "path": str(scene / "cam1" / "video.mp4")}, 4.0)
    assert isinstance(source, FpsCappedSource) and source.fps == 4.0
    kept = [f.index for f in source.frames()]
    assert len(kept) == 12  # 3 s at 4 frames/s
    gaps = np.diff([i / 10 for i in kept])
    assert gaps.min() >= 0.2 - 1e-9 and gaps.mean() == pytest.approx(0.25, abs=0.01)
    assert open_source(str(scene / "cam1" / "video.mp4"), 25.0).fps == 10.0  # no cap above


def test_mot_sequence_folder_reads_seqinfo(scene: Path) -> None:
    sequence = scene / "cam2"
    source = open_source({"type": "images", "path": str(sequence)})
    assert isinstance(source, ImageFolderSource)
    assert (source.fps, source.size) == (10.0, (320, 180))
    frames = list(source.frames())
    assert [f.index for f in frames] == list(range(FRAMES))
    expected = cv2.imread(str(sequence / "img1" / "000011.jpg"))
    assert np.array_equal(frames[10].image, expected)


def test_plain_image_folder_needs_a_rate_and_names_unreadable_images(
    scene: Path, tmp_path: Path
) -> None:
    for number, file in enumerate(sorted((scene / "cam1" / "img1").glob("*.jpg"))[:5]):
        (tmp_path / f"shot_{number:02d}.jpg").write_bytes(file.read_bytes())
    with pytest.raises(SourceError, match="frame rate"):
        open_source({"type": "images", "path": str(tmp_path)})
    source = open_source({"type": "images", "path": str(tmp_path), "fps": 5})
    assert [round(f.timestamp_s, 2) for f in source.frames()] == [0.0, 0.2, 0.4, 0.6, 0.8]
    (tmp_path / "shot_03.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SourceError, match="unreadable image .*shot_03.jpg"):
        list(open_source({"type": "images", "path": str(tmp_path), "fps": 5}).frames())


def test_wrong_source_type_lists_the_valid_ones() -> None:
    with pytest.raises(SourceError) as caught:
        open_source({"type": "kinect", "index": 0})
    for name in ("video", "synthetic", "rtsp", "webcam", "images"):
        assert f"'{name}'" in str(caught.value)
    with pytest.raises(SourceError, match="file not found"):
        open_source("/nonexistent/video.mp4")


class FakeCapture:
    """A capture that opens or not, then delivers ``frames`` frames and fails."""

    def __init__(self, opened: bool, frames: int) -> None:
        self.opened, self.frames, self.released = opened, frames, False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.opened or self.frames == 0:
            return False, None
        self.frames -= 1
        return True, np.zeros((4, 6, 3), np.uint8)

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FPS: 0.0, cv2.CAP_PROP_FRAME_WIDTH: 6, cv2.CAP_PROP_FRAME_HEIGHT: 4}[
            prop
        ]

    def release(self) -> None:
        self.released = True


class FakeNetwork:
    """Hands out captures from a script; records the back-off waits instead of sleeping."""

    def __init__(self, script: list[tuple[bool, int]]) -> None:
        self.script = list(script)
        self.opened: list[FakeCapture] = []
        self.waits: list[float] = []

    def open(self, target: str | int) -> FakeCapture:
        opened, frames = self.script.pop(0) if self.script else (False, 0)
        self.opened.append(FakeCapture(opened, frames))
        return self.opened[-1]

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return False


def test_rtsp_reconnects_with_exponential_back_off_and_counts() -> None:
    # 3 frames; the stream drops; 2 failed reopenings; back with 2 frames; drops; never again.
    network = FakeNetwork([(True, 3), (False, 0), (False, 0), (True, 2)])
    policy = ReconnectConfig(initial_backoff_s=0.5, max_backoff_s=1.5, max_attempts=4)
    config = {"type": "rtsp", "url": "rtsp://camera.local/stream", "latest_only": False}
    source = open_source(
        {**config, "reconnect": policy.model_dump()}, opener=network.open, wait=network.wait
    )
    assert isinstance(source, LiveSource)
    assert source.fps == 25.0 and source.size == (6, 4)  # 0 fps reported: the nominal rate
    frames = []
    with pytest.raises(SourceError, match="gave up after 4 reconnect attempts"):
        frames.extend(source.frames())
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert source.reconnects == 1
    assert source.reconnect_attempts == 3 + 4
    assert network.waits == [0.5, 1.0, 1.5, 0.5, 1.0, 1.5, 1.5]
    assert all(capture.released for capture in network.opened)


def test_live_source_stops_when_the_caller_asks() -> None:
    network = FakeNetwork([(True, 1)])
    stops = iter([False, True])
    source = LiveSource(
        "rtsp://camera.local/stream",
        ReconnectConfig(max_attempts=None),
        opener=network.open,
        wait=lambda seconds: next(stops),
    )
    assert [f.index for f in source.frames()] == [0]  # ends quietly, no exception
    assert source.reconnect_attempts == 1
    source.close()


def test_webcam_index_is_a_live_source() -> None:
    network = FakeNetwork([(True, 2)])
    source = open_source(0, opener=network.open, wait=network.wait)
    assert isinstance(source, LatestFrameSource)  # live sources: the newest frame by default
    assert isinstance(source.source, LiveSource) and source.source.target == 0
    source.close()
    assert list(source.frames()) == []  # closed: nothing more


class PacedCapture(FakeCapture):
    """Delivers a frame each time the test releases one (a camera's clock, without sleeps)."""

    def __init__(self, frames: int) -> None:
        super().__init__(True, frames)
        self.released_frames = threading.Semaphore(0)
        self.delivered = 0
        self.delivery = threading.Condition()

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.frames == 0:
            return False, None
        self.released_frames.acquire()
        ok, image = super().read()
        with self.delivery:
            self.delivered += 1
            self.delivery.notify_all()
        return ok, image

    def deliver(self, count: int) -> None:
        target = self.delivered + count
        for _ in range(count):
            self.released_frames.release()
        with self.delivery:
            self.delivery.wait_for(lambda: self.delivered >= target, timeout=10)


def test_a_slow_stage_gets_the_newest_live_frame_and_the_stale_ones_are_counted() -> None:
    capture = PacedCapture(frames=8)
    source = open_source(
        {"type": "rtsp", "url": "rtsp://camera.local/stream"},
        opener=lambda target: capture,
        wait=lambda seconds: True,  # asked to stop when the stream drops: ends quietly
    )
    frames = source.frames()
    capture.deliver(1)
    assert next(frames).index == 0
    capture.deliver(4)  # the camera delivers 4 frames while the stage is busy
    assert next(frames).index == 4  # the newest, not the oldest waiting one
    assert source.stale_dropped == 3
    capture.deliver(3)
    assert [f.index for f in frames] == [7]  # then the stream drops and the source ends
    assert source.stale_dropped == 5
    source.close()


def test_a_replayed_file_loops_with_running_timestamps_at_its_pace(tmp_path: Path) -> None:
    """loop: indices restart with each pass, timestamps run on; pace: a frame waits for its
    time (a fake clock records the waits)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        cv2.imwrite(str(folder / f"{index:03d}.png"), np.full((8, 8, 3), index, np.uint8))
    now = [0.0]
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(round(seconds, 6))
        now[0] += seconds
        return False

    config = ImagesSourceConfig(type="images", path=folder, fps=10.0, loop=True, pace=2.0)
    source = ReplayedSource(
        lambda: ImageFolderSource(config.path, config.fps), True, 2.0, wait, lambda: now[0]
    )
    frames = list(itertools.islice(source.frames(), 7))
    assert [f.index for f in frames] == [0, 1, 2, 0, 1, 2, 0]
    assert [round(f.timestamp_s, 6) for f in frames] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert waits == [0.05] * 6  # 0.1 s of video per frame at twice real time
    assert source.passes == 2
    once = open_source({"type": "images", "path": str(folder), "fps": 10.0, "pace": 1000.0})
    assert [f.index for f in once.frames()] == [0, 1, 2]


def test_after_a_run_a_file_camera_is_read_again_at_full_speed_as_it_was_indexed(
    tmp_path: Path,
) -> None:
    """`open_recorded_source` (final-id videos, `stream harvest`): no pace, the fps cap kept;
    a looping or live camera cannot be matched to its events again, and says why."""
    from stream.config import CameraConfig
    from stream.sources import open_recorded_source, reread_reason

    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(6):
        cv2.imwrite(str(folder / f"{index:03d}.png"), np.full((8, 8, 3), index, np.uint8))
    paced = {"type": "images", "path": str(folder), "fps": 10.0, "pace": 0.001}
    camera = CameraConfig(id="a", source=paced, fps=5.0)  # a pace of 1000 s a frame, capped
    assert reread_reason(camera) is None
    assert [f.index for f in open_recorded_source(camera).frames()] == [0, 2, 4]
    looping = CameraConfig(id="b", source={**paced, "loop": True})
    assert "loops" in reread_reason(looping)
    with pytest.raises(SourceError, match="camera b: its source loops"):
        open_recorded_source(looping)
    live = CameraConfig(id="c", source="rtsp://camera/stream")
    assert "live" in reread_reason(live)
