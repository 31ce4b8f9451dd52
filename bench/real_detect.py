"""Person detectors on real footage: recall, precision and FPS, then tracking through `stream run`.

On MOT15 TUD-Campus (../shared/data, 71 frames of 640×480, 8 people; not part of the
repository), in one run on this machine:

1. each detector alone — the shipped ``ssdlite`` and ``background_subtraction`` — against the
   ground truth: recall and precision at IoU 0.5 (one-to-one matching per frame) and frames
   per second of ``detect`` (the frame decoded beforehand, one thread);
2. `stream run` with each (and ``ground_truth`` boxes as the ceiling), scored by `stream eval`:
   the camera's HOTA, IDF1, MOTA and identity switches of its track ids.

    python bench/real_detect.py [--data ../shared/data/mot15-TUD-Campus] [--out runs/bench/real_detect]

Writes real_detect.json and real_detect.png. TUD-Campus is a check, not a tuning set.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reid_core.runtime.embedder import ensure_malloc_env  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mot15-TUD-Campus"
DETECTORS = {
    "ssdlite": {"name": "ssdlite"},
    "background_subtraction": {"name": "background_subtraction"},
}


def detection_scores(data: Path, detector_config: dict) -> dict[str, float]:
    """Recall, precision (IoU 0.5, one-to-one per frame) and detect-only FPS."""
    from pydantic import TypeAdapter

    from stream.config import CameraConfig, DetectorConfig
    from stream.detectors import build_detector, matched_boxes, read_mot_file
    from stream.sources import VideoFileSource

    config = TypeAdapter(DetectorConfig).validate_python(detector_config)
    camera = CameraConfig(id="tud", source=str(data / "TUD-Campus.mp4"))
    detector = build_detector(config, camera, Path("/tmp/occlureid-real-detect"))
    frames = list(VideoFileSource(data / "TUD-Campus.mp4").frames())
    gt = read_mot_file(data / "gt" / "gt.txt")
    hits = truths = found = 0
    seconds = 0.0
    for frame in frames:
        start = time.perf_counter()
        detections = detector.detect(frame.image, frame.index)
        seconds += time.perf_counter() - start
        truth = gt.xyxy[gt.frame == frame.index + 1]
        hits += matched_boxes(truth, detections.xyxy)
        truths += len(truth)
        found += len(detections)
    return {
        "recall": hits / max(truths, 1),
        "precision": hits / max(found, 1),
        "fps": len(frames) / seconds,
        "frames": len(frames),
    }


def tracking_scores(data: Path, detector_config: dict, out: Path) -> dict[str, float]:
    """`stream run` on the video with this detector (defaults otherwise), then `stream eval`."""
    from stream.mtmc import evaluate_run
    from stream.pipeline import run_pipeline

    out.mkdir(parents=True, exist_ok=True)
    cams = {
        "cameras": [
            {
                "id": "tud-campus",
                "source": str(data / "TUD-Campus.mp4"),
                "ground_truth": str(data / "gt" / "gt.txt"),
            }
        ],
        "detector": detector_config,
        "outputs": {"video": False},
    }
    path = out / "cams.yaml"
    path.write_text(yaml.safe_dump(cams, sort_keys=False))
    run_pipeline(path, out / "run", live=False, overwrite=True)
    scores = evaluate_run(out / "run", path)
    row = scores["cameras"]["tud-campus"]
    return {name: float(row[name]) for name in ("HOTA", "IDF1", "MOTA", "IDSW")}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    metrics = ["recall", "precision", "IDF1", "MOTA"]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [results[name].get(m, np.nan) for m in metrics]
        ax.bar(np.arange(len(metrics)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(metrics)) + width * (len(names) - 1) / 2, metrics)
    ax.set_ylim(0, 1)
    ax.set_title("TUD-Campus: detection (IoU 0.5) and tracking through stream run")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ensure_malloc_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench/real_detect")
    args = parser.parse_args()
    if not (args.data / "gt" / "gt.txt").is_file():
        raise SystemExit(f"no TUD-Campus at {args.data} (see ../shared/data)")
    results: dict[str, dict] = {}
    for name, config in DETECTORS.items():
        results[name] = detection_scores(args.data, config)
        results[name].update(tracking_scores(args.data, config, args.out / name))
    results["ground_truth"] = tracking_scores(
        args.data, {"name": "ground_truth"}, args.out / "ground_truth"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "real_detect.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out / "real_detect.png")
    print("| detector | recall | precision | detect FPS | HOTA | IDF1 | MOTA | IDSW |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        detect = (
            f"{r['recall']:.2f} | {r['precision']:.2f} | {r['fps']:.0f}"
            if "recall" in r
            else "(boxes given) | | "
        )
        print(
            f"| {name} | {detect} | {r['HOTA']:.3f} | {r['IDF1']:.3f} | {r['MOTA']:.3f} | "
            f"{r['IDSW']:.0f} |"
        )
    print(f"wrote {args.out / 'real_detect.json'} and {args.out / 'real_detect.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
