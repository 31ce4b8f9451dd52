"""`stream demo` (what `make demo` runs): the whole product on the embedded defaults, on CPU.

1. renders a synthetic 3-camera scene and a re-ID crop set (kept under --out, reused);
2. trains a small demo model on the crop set if none is cached (configs/train/demo_cpu.yaml:
   MobileNetV2 with ImageNet weights, a small transformer, 128×64 crops; minutes on 2 cores);
3. exports it to ONNX and calibrates the gallery's match threshold on the crop set's test split
   (its images pooled into per-camera tracklets, the matcher replayed: `calibrate_threshold`);
4. runs `stream run` on the scene (ground-truth boxes, ByteTrack, one onnxruntime worker, an
   embedded Qdrant Edge gallery) and scores the cross-camera result against the ground truth.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"
DEMO_TRAIN_CONFIG = CONFIG_ROOT / "train" / "demo_cpu.yaml"
DEMO_IDENTITIES = 200  # half train, half test (calibration); 17 s to render on 2 cores


def training_key(config: Path, overrides: dict[str, Any]) -> str:
    """A digest of the resolved training and model configs: a cached demo model is reused only
    when it was trained by the same recipe on the same data."""
    from reid_core.config import load_model_config
    from trainer.config import load_train_config

    train_config = load_train_config(config, overrides)
    resolved = (
        train_config.model_dump_json() + load_model_config(train_config.model).model_dump_json()
    )
    return hashlib.sha256(resolved.encode()).hexdigest()[:16]


def pseudo_tracklets(result: Any) -> tuple[list, np.ndarray, np.ndarray]:
    """An evaluation's images grouped by (identity, camera), each group pooled as the worker
    pools a tracklet's crops: (appearances, identities, cameras). Junk and distractors
    (identity ≤ 0) are left out."""
    from stream.gallery.pooling import RunningAppearance
    from stream.worker_config import TrackletConfig

    pools: dict[tuple[int, int], RunningAppearance] = {}
    for features, records in (
        (result.query, result.dataset.query),
        (result.gallery, result.dataset.gallery),
    ):
        global_features = features.global_features.numpy()
        part_features = features.part_features.numpy()
        visibility = features.visibility.numpy()
        for i, record in enumerate(records):
            if record.pid <= 0:
                continue
            pool = pools.get((record.pid, record.camid))
            if pool is None:
                pool = pools[(record.pid, record.camid)] = RunningAppearance(
                    global_features.shape[1],
                    part_features.shape[1],
                    TrackletConfig().outlier_distance,
                )
            pool.add(global_features[i], part_features[i], visibility[i], 1.0)
    keys = sorted(pools)
    return (
        [pools[key].appearance() for key in keys],
        np.array([pid for pid, _ in keys]),
        np.array([camid for _, camid in keys]),
    )


def calibrate_threshold(
    appearances: list,
    identities: np.ndarray,
    cameras: np.ndarray,
    lam: float = 1.0,
    orders: int = 50,
    seed: int = 0,
) -> float:
    """The gallery's accept threshold: the occlusion-aware distance under which the matcher's
    decisions on these tracklets are most often right.

    The matcher is replayed: tracklets arrive in random orders (``orders`` of them); each is
    compared with the earlier tracklets of other cameras and joins the nearest one's identity
    when it lies within the threshold, else starts a new identity. A decision is right when it
    joins its own identity, or starts a new one while no earlier tracklet of it exists in another
    camera. Per-pair criteria (e.g. max TPR − FPR over all pairs) pick looser thresholds: the
    nearest of many strangers is much closer than a typical one.
    """
    from reid_core import occlusion_aware_distance
    from stream.gallery.records import as_features

    features = as_features(appearances)
    distances = occlusion_aware_distance(features, features, lam=lam).numpy()
    rng = np.random.default_rng(seed)
    nearest, nearest_is_own, own_exists = [], [], []
    for _ in range(orders):
        order = rng.permutation(len(appearances))
        for n, i in enumerate(order):
            earlier = order[:n][cameras[order[:n]] != cameras[i]]
            if len(earlier) == 0:
                continue
            j = earlier[np.argmin(distances[i, earlier])]
            nearest.append(distances[i, j])
            nearest_is_own.append(identities[j] == identities[i])
            own_exists.append(bool((identities[earlier] == identities[i]).any()))
    nearest_d, right_if_joined = np.array(nearest), np.array(nearest_is_own)
    right_if_new = ~np.array(own_exists)
    distinct = np.unique(nearest_d)  # thresholds between them, and below / above them all
    margin = 1e-3 * max(float(distinct[-1] - distinct[0]), 1e-3)
    thresholds = np.concatenate(
        [[distinct[0] - margin], (distinct[:-1] + distinct[1:]) / 2, [distinct[-1] + margin]]
    )
    # right decisions at each threshold: joins right among the nearest ≤ t, new ids right above
    order = np.argsort(nearest_d, kind="stable")
    joined_right = np.concatenate([[0], np.cumsum(right_if_joined[order])])
    new_right = np.concatenate([[0], np.cumsum(right_if_new[order])])
    within = np.searchsorted(nearest_d[order], thresholds, side="right")
    right = joined_right[within] + new_right[-1] - new_right[within]
    return max(float(thresholds[int(np.argmax(right))]), 1e-6)  # the gallery needs > 0


def demo_cams_yaml(scene: Path, onnx_path: Path, threshold: float, out: Path) -> Path:
    """The scene's own cams.yaml plus the demo worker (onnxruntime) and gallery settings."""
    import yaml

    cams = yaml.safe_load((scene / "cams.yaml").read_text())
    for camera in cams["cameras"]:
        camera["source"] = str((scene / camera["source"]).resolve())
        camera["ground_truth"] = str((scene / camera["ground_truth"]).resolve())
    cams["worker"] = {
        "embedder": {"runtime": "onnxruntime", "model": str(onnx_path.resolve())},
        "tracklets": {"min_crops": 4, "rematch_every": 8},
        "gallery": {"threshold": round(threshold, 4)},
    }
    path = out / "cams.yaml"
    path.write_text("# written by `stream demo`\n" + yaml.safe_dump(cams, sort_keys=False))
    return path


def run_demo(out: Path, seed: int = 0, live: bool = True) -> dict[str, Any]:
    from rich.console import Console

    from reid_core import load
    from reid_core.runtime.export import export_onnx
    from stream.mtmc import evaluate_run, print_table
    from stream.pipeline import run_pipeline
    from trainer.engine import train
    from trainer.evaluation.evaluate import evaluate_model
    from trainer.synth.reid_set import ReidSetConfig, write_reid_set
    from trainer.synth.video import VideoConfig, write_videos

    console = Console()
    scene, model_dir = out / "scene", out / "model"
    crops = out / f"synth-{DEMO_IDENTITIES}ids-seed{seed}"
    if not (scene / "cams.yaml").is_file():
        console.rule("1/4 rendering the demo scene")
        write_videos(VideoConfig(cameras=3, people=8, seconds=20, seed=seed), scene, preview=True)
    if not (crops / "meta.json").is_file():
        console.rule("1/4 rendering the demo crop set")
        write_reid_set(ReidSetConfig(identities=DEMO_IDENTITIES, cameras=3, seed=seed), crops)
    checkpoint = model_dir / "model_last.safetensors"
    overrides = {"data": {"root": str(crops.resolve())}, "seed": seed}
    key = training_key(DEMO_TRAIN_CONFIG, overrides)
    key_file = model_dir / "training_key.txt"
    if not checkpoint.is_file() or not key_file.is_file() or key_file.read_text() != key:
        console.rule("2/4 training the demo model (cached for the next run)")
        if model_dir.exists():
            shutil.rmtree(model_dir)  # another recipe's model (or an interrupted run)
        train(DEMO_TRAIN_CONFIG, model_dir, overrides)
        key_file.write_text(key)
    model = load(checkpoint)
    onnx_path = model_dir / "model.onnx"
    if not onnx_path.is_file():
        console.rule("3/4 exporting to ONNX")
        export_onnx(model, onnx_path, on_step=lambda step: console.print(f"  {step}"))
    result = evaluate_model(model, "synthetic", crops)
    threshold = calibrate_threshold(*pseudo_tracklets(result))
    console.print(
        f"demo model on the synthetic occluded queries: Rank-1 {result.metrics['cmc'][0]:.3f}, "
        f"mAP {result.metrics['mAP']:.3f}; gallery match threshold {threshold:.3f}"
    )
    console.rule("4/4 stream run on the scene")
    run = out / "run"
    if run.exists():
        shutil.rmtree(run)  # a fresh gallery: the demo's ids start at 1 every time
    cams = demo_cams_yaml(scene, onnx_path, threshold, out)
    summary = run_pipeline(cams, run, live=live)
    scores = evaluate_run(run, cams)
    print_table(scores)
    console.print(
        f"[bold]cross-camera IDF1 {scores['IDF1']:.3f}[/] over {len(summary['cameras'])} cameras "
        f"({scores['IDF1_without_reid']:.3f} without re-ID); "
        f"per-camera FPS "
        + ", ".join(f"{c} {s['fps']:.1f}" for c, s in sorted(summary["cameras"].items()))
        + f"; outputs in {run}"
    )
    return {"summary": summary, "scores": scores, "threshold": threshold}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on a synthetic scene (what `make demo` runs)",
        description="Render a synthetic 3-camera scene and crop set, train and export a small "
        "demo model (cached), run `stream run` on the scene with the embedded defaults and print "
        "the cross-camera result against the ground truth.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="demo folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-live", action="store_true", help="no live table")
    parser.set_defaults(handler=lambda args: run_demo(args.out, args.seed, not args.no_live) and 0)
