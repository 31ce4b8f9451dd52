"""Per-camera FPS of `stream run` end to end (detector + tracker + crop selection + ZeroMQ +
worker + gallery, annotated video written), measured in one run on the same footage beside:

- the detector + tracker alone (the ceiling);
- the SPEC §7 yardstick: a tracker that embeds every box of every frame (as BoxMOT's BoT-SORT
  with a re-ID model does), here the same detector and tracker plus the same embedder as the
  worker (cams.yaml's ``worker.embedder``) called on all tracked boxes of each frame, in one
  process. Target: `stream run` ≥ 2× its FPS (embed per tracklet, batch in the worker).

    python bench/stream_speed.py --cams configs/cams/tud_campus.yaml \
        --model runs/demo/model/model.onnx [--detector background_subtraction]
        [--out runs/bench/stream_speed]

--set KEY=VALUE overrides a cams.yaml value as `stream run --set` does (e.g. camera_nice=0,
worker.gallery.durability=flush); --latency-only runs `stream run` at full file speed alone and
reports the worker's crop → assignment latency (bench/README.md "Worker latency under load").

--cams is any cams.yaml; --model sets its worker's embedder model (e.g. the one `stream demo`
trains), else cams.yaml's worker must name one; --detector overrides its detector
(ground_truth, background_subtraction, yolo ...). With several cameras `stream run` shares
the CPU among its camera processes while the other two measure one camera at a time, so the
fair figure is the total (frames of all cameras per second), printed below the table.
`stream run` writes events and thumbnails but, unless --video, no annotated video (the
yardstick writes none).
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


def tracking_fps(config, work_dir: Path, embedder=None) -> dict[str, tuple[int, float]]:
    """(frames, seconds) per camera of source → detector → tracker, and with an ``embedder``
    every tracked box of every frame embedded too (the yardstick)."""
    from stream.camera import crop_of
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
            tracked = tracker.update(
                detector.detect(frame.image, frame.index), frame.image, frame.timestamp_s
            ).tracked
            if embedder is not None:
                crops = [crop_of(frame.image, box) for box in tracked.xyxy]
                crops = [crop for crop in crops if crop is not None]
                if crops:
                    embedder.embed(crops)
            frames += 1
        results[camera.id] = (frames, time.perf_counter() - start)
        source.close()
    return results


def paced_latency(cams: dict, out: Path, pace: float) -> dict:
    """`stream run` with every file camera delivering frames at ``pace`` × real time: the
    worker's latency p50/p95, crops/s and the cameras' FPS."""
    from stream.pipeline import run_pipeline

    paced = json.loads(json.dumps(cams))
    for camera in paced["cameras"]:
        source = camera["source"]
        if isinstance(source, str) and "://" not in source:
            camera["source"] = {"type": "video", "path": source, "pace": pace}
    path = out / "cams_paced.yaml"
    path.write_text(yaml.safe_dump(paced))
    run_dir = out / "run_paced"
    summary = run_pipeline(path, run_dir, live=False, overwrite=True)
    worker = next(iter(summary["workers"].values()), {})
    result = {
        "pace": pace,
        "camera_fps": {c: s["fps"] for c, s in summary["cameras"].items()},
        **{k: worker.get(k) for k in ("latency_p50_ms", "latency_p95_ms", "embedded", "batches")},
    }
    print(
        f"paced at {pace:g}× real time: crop→assignment latency p50/p95 "
        f"{result['latency_p50_ms']:.0f}/{result['latency_p95_ms']:.0f} ms over "
        f"{result['embedded']} crops in {result['batches']} batches (target p95 ≤ 100 ms)"
    )
    return result


def latency_only(cams_path: Path, out: Path) -> int:
    """`stream run` at full file speed alone: the worker's latency, embed and match times and
    the cameras' FPS, printed and written to OUT/stream_speed.json."""
    from stream.pipeline import run_pipeline

    summary = run_pipeline(cams_path, out / "run", live=False, overwrite=True)
    worker = next(iter(summary["workers"].values()), {})
    keys = ("latency_p50_ms", "latency_p95_ms", "embed_p50_ms", "match_p95_ms", "batches")
    result = {
        "worker": {k: worker.get(k) for k in (*keys, "embedded")},
        "pipeline_fps": sum(s["fps"] for s in summary["cameras"].values()),
    }
    (out / "stream_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        "full file speed: crop→assignment latency p50/p95 "
        f"{worker.get('latency_p50_ms', 0):.0f}/{worker.get('latency_p95_ms', 0):.0f} ms, embed "
        f"batch p50 {worker.get('embed_p50_ms', 0):.0f} ms, match p95 "
        f"{worker.get('match_p95_ms', 0):.0f} ms, {worker.get('batches', 0)} batches; cameras "
        f"{result['pipeline_fps']:.0f} FPS together (target p95 ≤ 100 ms)"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cams", type=Path, required=True)
    parser.add_argument(
        "--model", type=Path, help="the worker's embedder model (.onnx/.safetensors)"
    )
    parser.add_argument("--detector", help="override the cams.yaml detector by name")
    parser.add_argument(
        "--video", action="store_true", help="let stream run write its annotated videos"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench/stream_speed")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="cams.yaml override"
    )
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="only `stream run` at full file speed: the worker's latency and the cameras' FPS",
    )
    parser.add_argument(
        "--pace",
        type=float,
        help="also run every file camera at this multiple of real time (1: live cameras) and "
        "report the worker's crop → assignment latency there (at full file speed the cameras "
        "outrun one worker on a small CPU and the latency measures its queue)",
    )
    args = parser.parse_args()
    ensure_malloc_env()

    from rich.console import Console
    from rich.table import Table

    from reid_core.config import deep_merge, parse_overrides
    from reid_core.runtime.embedder import EmbedderConfig
    from stream.config import load_cams_config
    from stream.pipeline import run_pipeline

    args.out.mkdir(parents=True, exist_ok=True)
    cams = yaml.safe_load(args.cams.read_text())
    for camera in cams["cameras"]:  # the copy lives under --out: paths become absolute
        for key in ("source", "ground_truth"):
            if isinstance(camera.get(key), str) and "://" not in camera[key]:
                camera[key] = str((args.cams.parent / camera[key]).resolve())
    if args.detector:
        cams["detector"] = {"name": args.detector}
    if not args.video:  # the yardstick writes no video either
        cams["outputs"] = {**cams.get("outputs", {}), "video": False}
    worker = cams.setdefault("worker", {})
    if args.model:
        worker["embedder"] = {**worker.get("embedder", {}), "model": str(args.model.resolve())}
    if "model" not in worker.get("embedder", {}):
        parser.error(f"{args.cams} names no worker.embedder.model: give --model")
    cams = deep_merge(cams, parse_overrides(args.set))
    cams_path = args.out / "cams.yaml"
    cams_path.write_text(yaml.safe_dump(cams))
    config = load_cams_config(cams_path)
    if args.latency_only:
        return latency_only(cams_path, args.out)

    alone = tracking_fps(config, args.out)
    embedder = EmbedderConfig.model_validate(config.worker["embedder"]).open()
    every_box = tracking_fps(config, args.out, embedder)
    del embedder
    run_dir = args.out / "run"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    summary = run_pipeline(cams_path, run_dir, live=False)

    table = Table(title=f"per-camera FPS, detector {config.detector.name}")
    for column in (
        "camera",
        "detector+tracker alone",
        "embed every box (yardstick)",
        "stream run (re-ID per tracklet)",
        "stream run ÷ yardstick",
    ):
        table.add_column(column, justify="right")
    results = {}
    for camera, (frames, seconds) in alone.items():
        fps_alone = frames / seconds
        fps_every = every_box[camera][0] / every_box[camera][1]
        fps_run = summary["cameras"][camera]["fps"]
        results[camera] = {
            "alone_fps": fps_alone,
            "embed_every_box_fps": fps_every,
            "pipeline_fps": fps_run,
        }
        table.add_row(
            camera,
            f"{fps_alone:.1f}",
            f"{fps_every:.1f}",
            f"{fps_run:.1f}",
            f"{fps_run / fps_every:.2f}",
        )
    totals = {
        "alone_fps": sum(f for f, _ in alone.values()) / sum(s for _, s in alone.values()),
        "embed_every_box_fps": sum(f for f, _ in every_box.values())
        / sum(s for _, s in every_box.values()),
        "pipeline_fps": sum(r["pipeline_fps"] for r in results.values()),
    }
    ratio = totals["pipeline_fps"] / totals["embed_every_box_fps"]
    table.add_row(
        "all cameras",
        f"{totals['alone_fps']:.1f}",
        f"{totals['embed_every_box_fps']:.1f}",
        f"{totals['pipeline_fps']:.1f}",
        f"{ratio:.2f}",
    )
    Console().print(table)
    worker_stats = next(iter(summary["workers"].values()), {})
    print(
        f"worker: {worker_stats.get('embedded', 0)} crops embedded in "
        f"{worker_stats.get('batches', 0)} batches; crop→assignment latency p95 "
        f"{worker_stats.get('latency_p95_ms', 0):.0f} ms; target stream run ≥ 2× the yardstick: "
        + ("met" if ratio >= 2.0 else f"missed ({ratio:.2f}×)")
    )
    paced = paced_latency(cams, args.out, args.pace) if args.pace else None
    (args.out / "stream_speed.json").write_text(
        json.dumps(
            {
                "cameras": results,
                "total": totals,
                "ratio": ratio,
                "worker": worker_stats,
                "paced": paced,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
