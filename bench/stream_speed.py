"""Per-camera FPS of `stream run` end to end (detector + tracker + crop selection + ZeroMQ +
worker + gallery, annotated video written) next to the detector + tracker alone, measured in
one run on the same scene (SPEC §7 "stream": embed per tracklet, batch in the worker).

    python bench/stream_speed.py --cams runs/demo/cams.yaml [--detector background_subtraction]
        [--out runs/bench/stream_speed]

--cams is any cams.yaml whose worker names a model (e.g. the one `stream demo` writes);
--detector overrides its detector (ground_truth, background_subtraction, yolo ...).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reid_core.runtime.embedder import ensure_malloc_env  # noqa: E402


def detector_and_tracker_fps(config, work_dir: Path) -> dict[str, float]:
    """Frames/s of source → detector → tracker alone, per camera."""
    from stream.detectors import build_detector
    from stream.sources import open_camera_source
    from stream.tracking import build_tracker

    results = {}
    for camera in config.cameras:
        source = open_camera_source(camera)
        detector = build_detector(config.detector, camera, work_dir)
        tracker = build_tracker(config.tracker, camera.fps or 10.0)
        frames, start = 0, time.perf_counter()
        for frame in source.frames():
            tracker.update(
                detector.detect(frame.image, frame.index), frame.image, frame.timestamp_s
            )
            frames += 1
        results[camera.id] = frames / (time.perf_counter() - start)
        source.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cams", type=Path, required=True)
    parser.add_argument("--detector", help="override the cams.yaml detector by name")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench/stream_speed")
    args = parser.parse_args()
    ensure_malloc_env()

    from rich.console import Console
    from rich.table import Table

    from stream.config import load_cams_config
    from stream.pipeline import run_pipeline

    args.out.mkdir(parents=True, exist_ok=True)
    cams_path = args.cams
    if args.detector:
        cams = yaml.safe_load(args.cams.read_text())
        cams["detector"] = {"name": args.detector}
        for camera in cams["cameras"]:
            for key in ("source", "ground_truth"):
                if isinstance(camera.get(key), str):
                    camera[key] = str((args.cams.parent / camera[key]).resolve())
        cams_path = args.out / "cams.yaml"
        cams_path.write_text(yaml.safe_dump(cams))
    config = load_cams_config(cams_path)
    alone = detector_and_tracker_fps(config, args.out)
    run_dir = args.out / "run"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    summary = run_pipeline(cams_path, run_dir, live=False)
    table = Table(title=f"per-camera FPS, detector {config.detector.name}")
    for column in ("camera", "detector+tracker alone", "stream run (with re-ID)", "ratio"):
        table.add_column(column)
    results = {}
    for camera, fps_alone in alone.items():
        fps_run = summary["cameras"][camera]["fps"]
        results[camera] = {"alone_fps": fps_alone, "pipeline_fps": fps_run}
        table.add_row(camera, f"{fps_alone:.1f}", f"{fps_run:.1f}", f"{fps_run / fps_alone:.2f}")
    Console().print(table)
    worker = next(iter(summary["workers"].values()), {})
    print(
        f"worker: {worker.get('embedded', 0)} crops embedded in {worker.get('batches', 0)} "
        f"batches; crop→assignment latency p95 {worker.get('latency_p95_ms', 0):.0f} ms"
    )
    (args.out / "stream_speed.json").write_text(
        json.dumps({"cameras": results, "worker": worker}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
