"""Soak: `stream run` on looping synthetic cameras for a long time — does anything grow?

A synthetic scene (`trainer synth video`, rendered once under --out) plays in a loop at real
time on every camera (``source: {loop: true, pace: 1.0}``), with the ground-truth detector and
the worker of cams.yaml (the shipped model by default). Every --every seconds it samples the
resident memory (RSS) of the supervisor, each camera process and each worker, and what they
report: open tracklets and queued crops (worker), queue depth and active tracks (cameras).

    python bench/soak.py --minutes 30 [--out runs/bench/soak] [--cameras 3] [--people 8]

Writes soak.json (samples; per process kind the RSS slope in MB/hour fitted over the second
half of the run, after warm-up, and its residual noise) and soak.png. "Flat" means the fitted
growth over the second half stays within 3× the residual standard deviation (or 5 MB).
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

MB = 1024 * 1024


def soak_cams(scene: Path, out: Path) -> Path:
    """The scene's cams.yaml with looping, real-time sources and the shipped model's worker."""
    cams = yaml.safe_load((scene / "cams.yaml").read_text())
    for camera in cams["cameras"]:
        camera["source"] = {
            "type": "video",
            "path": str(scene / camera["source"]),
            "loop": True,
            "pace": 1.0,
        }
        camera["ground_truth"] = str(scene / camera["ground_truth"])
    cams["outputs"] = {"video": False, "thumbnails": False}
    cams["worker"] = {"stats_interval_s": 2.0, "tracklets": {"idle_timeout_s": 30.0}}
    path = out / "cams.yaml"
    path.write_text(yaml.safe_dump(cams, sort_keys=False))
    return path


def process_kinds(supervisor) -> dict[str, list[int]]:
    """Pids by kind: the supervisor itself, its camera processes, its workers."""
    import os

    return {
        "supervisor": [os.getpid()],
        "cameras": [p.pid for p in supervisor.cameras.values() if p.pid is not None],
        "workers": [w.process.pid for w in supervisor.workers if w.alive],
    }


def rss_mb(pids: list[int]) -> float:
    import psutil  # ultralytics' dependency, present wherever stream runs

    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            continue
    return total / MB


def slope_report(times_s: np.ndarray, values: np.ndarray) -> dict[str, float | bool]:
    """Least-squares slope over the second half (MB/hour), its growth over that half, the
    residual noise, and whether the growth stays within 3× that noise (or 5 MB)."""
    half = times_s >= times_s[-1] / 2
    t, v = times_s[half], values[half]
    if len(t) < 3:
        return {"slope_mb_per_hour": float("nan"), "flat": False}
    slope, intercept = np.polyfit(t, v, 1)
    noise = float(np.std(v - (slope * t + intercept)))
    growth = float(slope * (t[-1] - t[0]))
    return {
        "slope_mb_per_hour": float(slope * 3600),
        "growth_mb_second_half": growth,
        "noise_mb": noise,
        "flat": abs(growth) <= max(3 * noise, 5.0),
    }


def plot(samples: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = np.array([s["t_s"] for s in samples]) / 60
    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    for kind in ("supervisor", "cameras", "workers"):
        axes[0].plot(minutes, [s["rss_mb"][kind] for s in samples], label=kind)
    axes[0].set_ylabel("RSS (MB)")
    axes[0].legend()
    axes[1].plot(minutes, [s["open_tracklets"] for s in samples], label="worker open tracklets")
    axes[1].plot(minutes, [s["tracks_active"] for s in samples], label="camera active tracks")
    axes[1].set_ylabel("tracklets")
    axes[1].legend()
    axes[2].plot(minutes, [s["camera_queue"] for s in samples], label="camera queues (crops)")
    axes[2].plot(minutes, [s["worker_queue"] for s in samples], label="worker queued crops")
    axes[2].set_ylabel("queue depth")
    axes[2].set_xlabel("minutes")
    axes[2].legend()
    fig.suptitle("stream run soak: looping synthetic cameras at real time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ensure_malloc_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--people", type=int, default=8)
    parser.add_argument("--scene-seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench/soak")
    args = parser.parse_args()

    from stream.pipeline import Supervisor, run_pipeline
    from trainer.synth.video import VideoConfig, write_videos

    scene = args.out / "scene"
    if not (scene / "cams.yaml").is_file():
        config = VideoConfig(
            cameras=args.cameras, people=args.people, seconds=args.scene_seconds, seed=3
        )
        write_videos(config, scene, workers=1)
    cams = soak_cams(scene, args.out)
    samples: list[dict] = []
    started = time.monotonic()
    next_sample = [started]

    def sample(supervisor: Supervisor) -> None:
        now = time.monotonic()
        if now >= started + args.minutes * 60:
            supervisor.stop_event.set()
        if now < next_sample[0]:
            return
        next_sample[0] = now + args.every
        state = supervisor.state
        cameras, workers = state.cameras.values(), state.workers.values()
        samples.append(
            {
                "t_s": now - started,
                "rss_mb": {kind: rss_mb(pids) for kind, pids in process_kinds(supervisor).items()},
                "open_tracklets": sum(w.get("open_tracklets", 0) for w in workers),
                "worker_queue": sum(w.get("queued_crops", 0) for w in workers),
                "tracks_active": sum(c.get("tracks_active", 0) for c in cameras),
                "camera_queue": sum(c.get("queue_depth", 0) for c in cameras),
                "frames": sum(c.get("frames", 0) for c in cameras),
            }
        )
        print(json.dumps(samples[-1]), flush=True)

    summary = run_pipeline(cams, args.out / "run", live=False, overwrite=True, on_tick=sample)
    times = np.array([s["t_s"] for s in samples])
    report = {
        kind: slope_report(times, np.array([s["rss_mb"][kind] for s in samples]))
        for kind in ("supervisor", "cameras", "workers")
    }
    for gauge in ("open_tracklets", "worker_queue", "camera_queue"):
        report[gauge] = {"max": max(s[gauge] for s in samples), "last": samples[-1][gauge]}
    result = {
        "minutes": args.minutes,
        "cameras": args.cameras,
        "people": args.people,
        "report": report,
        "worker_restarts": summary["worker_restarts"],
        "messages_lost": summary["messages_lost"],
        "samples": samples,
    }
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(samples, args.out / "soak.png")
    for kind in ("supervisor", "cameras", "workers"):
        r = report[kind]
        print(
            f"{kind:10s} RSS slope {r['slope_mb_per_hour']:+.1f} MB/h over the second half "
            f"(noise {r.get('noise_mb', float('nan')):.1f} MB): {'flat' if r['flat'] else 'GROWS'}"
        )
    print(f"wrote {args.out / 'soak.json'} and {args.out / 'soak.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
