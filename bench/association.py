"""Cross-camera association on rendered scenes, over many arrival orders of the crops.

`stream run`'s identities depend on the order in which the cameras' crops reach the worker (a
tracklet matched before another camera's tracklet of the same person is stored founds its own
identity), and that order changes from run to run. This bench takes it out of the noise: each
scene (`stream demo`'s: 3 cameras, 8 people, 20 s, ground-truth boxes, ByteTrack) is rendered
once, each camera's crop and track-end messages are recorded once per crop policy (the camera
stage itself, in this process), and the messages are replayed into a `stream.worker.Worker`
(the shipped model, an embedded gallery, a simulated clock) in ``--orders`` interleavings: each
camera lags by a random 0-2 s and messages by up to 50 ms. The final ids are scored as
`stream eval` scores a run (cross-camera IDF1 of the final labels).

    python bench/association.py [--seeds 1-8] [--orders 6] [--out runs/bench/association]
        [--detector background_subtraction] [--model M.onnx --threshold T] [--flip] [--defaults-only]

Variants: the crop policy's fallback for tracks no box of which passes the policy
(`CropPolicy.fallback_every_n_frames`) and the gallery's re-match rules (`GalleryConfig.relink`,
``relink_reentry``, ``reentry_max_speed``) on and off (``--defaults-only``: the defaults' row
alone, e.g. to judge another model). Seed 0 is `make demo`'s scene: keep it out of choices (it is
where the demo's target is measured) and report it with ``--seeds 0``. Writes results.json,
table.md and association.png under --out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reid_core.runtime.embedder import ensure_malloc_env  # noqa: E402

DEFAULTS = "fallback + relink (defaults)"
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (cams.yaml crops overrides, gallery overrides)
    "before: no fallback crops, no relink": ({"fallback_every_n_frames": None}, {"relink": False}),
    "fallback crops": ({}, {"relink": False}),
    "relink (other cameras)": ({"fallback_every_n_frames": None}, {}),
    DEFAULTS: ({}, {}),
    "fallback + relink incl. re-entry": ({}, {"relink_reentry": True}),
    "defaults without the re-entry speed check": ({}, {"reentry_max_speed": None}),
}
NO_REID = "no re-ID: every tracklet its own identity"  # `stream eval`'s yardstick
MAX_LAG_S = 2.0  # per camera
JITTER_S = 0.05  # per message


class CachedEmbedder:
    """The embedder with its features kept per crop: every replay embeds the same crops."""

    name = "cached"
    device = "cpu"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.dim, self.num_parts, self.input_size = inner.dim, inner.num_parts, inner.input_size
        self.rows: dict[str, dict[str, Any]] = {}

    def embed(self, crops: list[np.ndarray]) -> Any:
        import torch

        from reid_core.features import ReIDFeatures

        keys = [hashlib.sha1(crop.tobytes()).hexdigest() for crop in crops]
        missing = [i for i, key in enumerate(keys) if key not in self.rows]
        if missing:
            features = self.inner.embed([crops[i] for i in missing])
            for row, i in enumerate(missing):
                self.rows[keys[i]] = {
                    name: getattr(features, name)[row] for name in ReIDFeatures.__dataclass_fields__
                }
        rows = [self.rows[key] for key in keys]
        return ReIDFeatures(**{name: torch.stack([r[name] for r in rows]) for name in rows[0]})


def record(cams_yaml: Path, crops: dict[str, Any], out: Path) -> tuple[dict, Path]:
    """Each camera's messages (multipart frames, in sending order) and its events file."""
    import zmq

    from stream.camera import run_camera
    from stream.config import load_cams_config

    config = load_cams_config(cams_yaml, {"crops": crops, "outputs": {"video": False}})
    out.mkdir(parents=True, exist_ok=True)
    messages: dict[str, list[list[bytes]]] = {}
    events = out / "events.jsonl"
    with open(events, "w") as lines:

        def emit(item: tuple[str, Any]) -> None:
            if item[0] == "events":
                lines.writelines(json.dumps(event) + "\n" for event in item[1])

        for camera in config.cameras:
            context = zmq.Context()
            pull = context.socket(zmq.PULL)
            endpoint = f"ipc://{out}/{camera.id}.crops"
            pull.bind(endpoint)
            received: list[list[bytes]] = []
            done = threading.Event()

            def collect(pull=pull, received=received, done=done) -> None:
                while not done.is_set() or pull.poll(200):
                    if pull.poll(50):
                        received.append(pull.recv_multipart())

            thread = threading.Thread(target=collect)
            thread.start()
            stats = run_camera(
                camera,
                config,
                out / camera.id,
                crop_endpoints=[endpoint],
                assignment_endpoints=[f"ipc://{out}/{camera.id}.none"],
                emit=emit,
                clock_origin=0.0,  # one clock for all cameras, as `stream run` gives them
            )
            done.set()
            thread.join()
            pull.close()
            context.term()
            if len(received) != stats["sent"]:
                raise RuntimeError(f"{camera.id}: sent {stats['sent']}, recorded {len(received)}")
            messages[camera.id] = received
    return messages, events


def replay(
    messages: dict, cams: dict, embedder: CachedEmbedder, gallery: dict, order: int, work: Path
) -> dict[tuple[str, int], int]:
    """The final global id of every (camera, track) after one interleaving of the messages."""
    from stream.wire import decode
    from stream.worker import Worker
    from stream.worker_config import parse_worker_config

    rng = np.random.default_rng(order)
    lag = {camera: rng.uniform(0, MAX_LAG_S) for camera in sorted(messages)}
    arrivals = sorted(
        (decode(frames).t + lag[camera] + rng.uniform(0, JITTER_S), camera, i, frames)
        for camera, sent in sorted(messages.items())
        for i, frames in enumerate(sent)
    )
    settings = {
        **cams["worker"],
        "name": "replay",
        "gallery": {
            **cams["worker"].get("gallery", {}),
            "path": str(work / f"gallery-{order}"),
            **gallery,
        },
    }
    published: list[Any] = []
    worker = Worker.from_config(
        parse_worker_config(settings, "bench/association.py"), published.append, embedder
    )
    now = [0.0]
    worker.clock = lambda: now[0]
    start = arrivals[0][0]
    for arrival, *_, frames in arrivals:
        now[0] = max(now[0], arrival - start)
        worker.handle(frames)
        worker.step()
    worker.drain()
    worker.close()
    return {
        (m.camera, m.track): m.global_id
        for m in published
        if getattr(m, "TYPE", "") == "assignment"
    }


def cross_camera_idf1(predictions: dict, joined: Any, assignments: dict) -> float:
    """`stream eval`'s cross-camera IDF1 of the final labels (``joined``:
    `stream.mtmc.join_ground_truth` of the scene)."""
    from stream.mtmc import label_boxes, score_mot

    labels = label_boxes(predictions, assignments, online=False)
    return score_mot(joined.lines, joined.prediction_lines(predictions, labels))["IDF1"]


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += list(range(int(low), int(high or low) + 1))
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("1-8"))
    parser.add_argument("--orders", type=int, default=6)
    parser.add_argument(
        "--detector",
        default="ground_truth",
        choices=["ground_truth", "background_subtraction"],
        help="the scene's boxes or a detector that needs no weights",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "association")
    parser.add_argument(
        "--model", type=Path, help="the worker's model (ONNX; default: the shipped model)"
    )
    parser.add_argument(
        "--threshold", type=float, help="gallery threshold (default: the shipped model's card)"
    )
    parser.add_argument(
        "--flip", action="store_true", help="flip test-time augmentation in the embedder"
    )
    parser.add_argument(
        "--defaults-only", action="store_true", help=f"only the row {DEFAULTS!r} (and no re-ID)"
    )
    args = parser.parse_args()
    ensure_malloc_env()
    import yaml
    from rich.console import Console
    from rich.progress import track

    from reid_core.runtime.embedder import EmbedderConfig
    from stream.demo import demo_cams_yaml
    from stream.detectors import read_mot_file
    from stream.mtmc import ground_truth_files, join_ground_truth, read_events
    from trainer.synth.video import VideoConfig, write_videos

    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    embedder = None
    variants = {DEFAULTS: VARIANTS[DEFAULTS]} if args.defaults_only else VARIANTS
    results: dict[str, dict[int, list[float]]] = {name: {} for name in [NO_REID, *variants]}
    for seed in args.seeds:
        scene_dir = args.out / f"scene-{seed}"
        scene = scene_dir / "scene"
        if not (scene / "cams.yaml").is_file():
            console.print(f"rendering scene {seed}")
            write_videos(VideoConfig(cameras=3, people=8, seconds=20, seed=seed), scene)
        (scene_dir / args.detector).mkdir(exist_ok=True)
        cams_yaml = demo_cams_yaml(scene, scene_dir / args.detector, detector=args.detector)
        cams = yaml.safe_load(cams_yaml.read_text())
        if args.model is not None:
            cams["worker"]["embedder"]["model"] = str(args.model.resolve())
        if args.threshold is not None:
            cams["worker"]["gallery"] = {"threshold": args.threshold}
        if args.flip:
            cams["worker"]["embedder"]["flip"] = True
        if embedder is None:
            embedder = CachedEmbedder(
                EmbedderConfig(**cams["worker"]["embedder"]).resolved().open()
            )
        recorded: dict[str, tuple[dict, dict, Any]] = {}
        truths: dict[str, Any] = {}
        for name, (crops, gallery) in track(
            variants.items(), description=f"scene {seed}", console=console
        ):
            key = json.dumps(crops, sort_keys=True)
            if key not in recorded:
                recording = scene_dir / args.detector / f"recorded-{len(recorded)}"
                messages, events = record(cams_yaml, crops, recording)
                predictions = {
                    camera: replace(pred, global_id=np.full_like(pred.global_id, -1))
                    for camera, pred in read_events(events).items()
                }
                truths = truths or {
                    camera: read_mot_file(path)
                    for camera, path in ground_truth_files(scene, predictions).items()
                }
                recorded[key] = (messages, predictions, join_ground_truth(truths, predictions))
            messages, predictions, joined = recorded[key]
            with tempfile.TemporaryDirectory() as work:
                results[name][seed] = [
                    cross_camera_idf1(
                        predictions,
                        joined,
                        replay(messages, cams, embedder, gallery, order, Path(work)),
                    )
                    for order in range(args.orders)
                ]
        results[NO_REID][seed] = [cross_camera_idf1(predictions, joined, {})]
    write_outputs(results, args)
    console.print((args.out / "table.md").read_text())


def write_outputs(results: dict[str, dict[int, list[float]]], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = args.seeds
    header = "| variant | mean IDF1 | worst order | " + " | ".join(f"scene {s}" for s in seeds)
    lines = [header + " |", "|---" * (3 + len(seeds)) + "|"]
    summary = {}
    for name, by_seed in results.items():
        means = [float(np.mean(by_seed[s])) for s in seeds]
        worst = min(min(by_seed[s]) for s in seeds)
        summary[name] = {"mean": float(np.mean(means)), "worst": worst, "per_scene": by_seed}
        cells = " | ".join(
            f"{m:.3f}"
            + (f" ({min(by_seed[s]):.3f}-{max(by_seed[s]):.3f})" if np.ptp(by_seed[s]) else "")
            for s, m in zip(seeds, means, strict=True)
        )
        lines.append(f"| {name} | {np.mean(means):.3f} | {worst:.3f} | {cells} |")
    note = (
        f"\n{len(seeds)} scene(s) (seeds {','.join(map(str, seeds))}) × {args.orders} arrival "
        f"orders, {args.detector} boxes; cross-camera IDF1 of the final ids; per scene the mean "
        "and, where orders differ, the range.\n"
    )
    (args.out / "table.md").write_text("\n".join(lines) + "\n" + note)
    (args.out / "results.json").write_text(
        json.dumps({"seeds": seeds, "orders": args.orders, "variants": summary}, indent=2) + "\n"
    )
    figure, axis = plt.subplots(figsize=(8, 3.2))
    names = list(results)
    for row, name in enumerate(names):
        values = [v for s in seeds for v in results[name][s]]
        means = [np.mean(results[name][s]) for s in seeds]
        axis.scatter(values, [row] * len(values), s=10, alpha=0.3, color="tab:blue")
        axis.scatter(means, [row] * len(means), s=28, marker="|", color="black")
        axis.scatter([np.mean(means)], [row], s=60, marker="D", color="tab:red")
    axis.set_yticks(range(len(names)), names)
    axis.invert_yaxis()
    axis.set_xlabel("cross-camera IDF1 (dots: orders; bars: scene means; diamond: mean)")
    figure.tight_layout()
    figure.savefig(args.out / "association.png", dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
