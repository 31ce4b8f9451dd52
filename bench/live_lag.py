"""A live camera faster than the pipeline: does the lag stay flat?

A simulated RTSP camera replays the TUD-Campus video (or any video) at twice the rate the
camera stage's work — the shipped SSDLite detector and ByteTrack on each frame — runs here
(measured first). The stage reads it for ``--seconds`` through `stream.sources.LiveSource`:

- ``sequential``: frames read in the processing loop, as before the live-sources fix: a frame
  waits in the camera's buffer while the stage works, so the lag (now − the frame's capture
  time, when the stage is done with it) grows by half a second every second;
- ``latest_only`` (the default for live sources): `LatestFrameSource` reads on its own thread
  and hands out only the newest frame; the frames in between are dropped and counted.

    python bench/live_lag.py [--video ../shared/data/mot15-TUD-Campus/TUD-Campus.mp4] [--seconds 20]

Writes live_lag.json and live_lag.png under --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "mot15-TUD-Campus" / "TUD-Campus.mp4"


class PacedCapture:
    """A camera: frame k exists from ``start + k / fps`` on (looping the clip), and unread
    frames wait in its buffer in order, as an RTSP client's buffer holds them."""

    def __init__(self, images: list[np.ndarray], fps: float) -> None:
        self.images, self.fps = images, fps
        self.start = time.monotonic()
        self.next_index = 0
        self.lock = threading.Lock()

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        with self.lock:
            index = self.next_index
            self.next_index += 1
        delay = self.start + index / self.fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return True, self.images[index % len(self.images)]

    def capture_time(self, index: int) -> float:
        return self.start + index / self.fps

    def get(self, prop: int) -> float:
        import cv2

        return {
            cv2.CAP_PROP_FPS: self.fps,
            cv2.CAP_PROP_FRAME_WIDTH: self.images[0].shape[1],
            cv2.CAP_PROP_FRAME_HEIGHT: self.images[0].shape[0],
        }.get(prop, 0.0)

    def release(self) -> None:
        pass


def stage_work():
    """The camera stage's per-frame work: the shipped detector and ByteTrack."""
    from stream.config import SsdliteDetectorConfig
    from stream.detectors import SsdliteDetector
    from stream.tracking import build_tracker

    detector = SsdliteDetector(SsdliteDetectorConfig(name="ssdlite"))
    tracker = build_tracker("bytetrack", 25.0)

    def work(image: np.ndarray, index: int, timestamp_s: float) -> None:
        tracker.update(detector.detect(image, index), image, timestamp_s)

    return work


def run_mode(mode: str, images: list[np.ndarray], fps: float, seconds: float) -> dict:
    from stream.config import ReconnectConfig
    from stream.sources import LatestFrameSource, LiveSource

    capture = PacedCapture(images, fps)
    live = LiveSource("sim://camera", ReconnectConfig(), opener=lambda _: capture)
    source = LatestFrameSource(live) if mode == "latest_only" else live
    work = stage_work()
    lags, processed = [], 0
    started = time.monotonic()
    for frame in source.frames():
        work(frame.image, frame.index, frame.timestamp_s)
        now = time.monotonic()
        lags.append((now - started, now - capture.capture_time(frame.index)))
        processed += 1
        if now - started >= seconds:
            break
    source.close()
    t, lag = np.array(lags).T
    return {
        "mode": mode,
        "camera_fps": fps,
        "processed": processed,
        "processed_fps": processed / t[-1],
        "dropped": getattr(source, "stale_dropped", 0),
        "lag_p50_s": float(np.percentile(lag, 50)),
        "lag_p95_s": float(np.percentile(lag, 95)),
        "lag_last_s": float(lag[-1]),
        "lag_slope_s_per_s": float(np.polyfit(t, lag, 1)[0]),
        "series": [[float(a), float(b)] for a, b in lags],
    }


def main() -> int:
    import cv2

    from reid_core.runtime.embedder import ensure_malloc_env

    ensure_malloc_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench/live_lag")
    args = parser.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"no video at {args.video} (see ../shared/data)")
    capture = cv2.VideoCapture(str(args.video))
    images = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        images.append(image)
    work = stage_work()
    started = time.perf_counter()
    for index, image in enumerate(images[:40]):
        work(image, index, index / 25.0)
    stage_fps = 40 / (time.perf_counter() - started)
    camera_fps = 2.0 * stage_fps
    results = [run_mode(m, images, camera_fps, args.seconds) for m in ("sequential", "latest_only")]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "live_lag.json").write_text(
        json.dumps({"stage_fps": stage_fps, "results": results}, indent=2) + "\n"
    )
    plot(results, args.out / "live_lag.png")
    print(f"stage alone {stage_fps:.1f} FPS; camera at {camera_fps:.1f} FPS")
    print("| reading | processed FPS | dropped | lag p50 | lag p95 | lag at the end | lag growth |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['mode']} | {r['processed_fps']:.1f} | {r['dropped']} | {r['lag_p50_s']:.3f} s "
            f"| {r['lag_p95_s']:.3f} s | {r['lag_last_s']:.3f} s | "
            f"{r['lag_slope_s_per_s']:.3f} s/s |"
        )
    return 0


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        t, lag = np.array(r["series"]).T
        ax.plot(t, lag, label=f"{r['mode']} ({r['dropped']} dropped)")
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("lag: processed − captured (s)")
    ax.set_title(f"a camera at 2× the stage's speed ({results[0]['camera_fps']:.0f} FPS)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
