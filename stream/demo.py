"""`stream demo` (what `make demo` runs): the whole product on the embedded defaults, on CPU.

1. renders a synthetic 3-camera scene and a re-ID crop set (kept under --out, reused);
2. trains a small demo model on the crop set if none is cached (configs/train/demo_cpu.yaml:
   MobileNetV2 with ImageNet weights, a small transformer, 128×64 crops; minutes on 2 cores);
3. exports it to ONNX and calibrates the gallery's match threshold on the crop set's test split;
4. runs `stream run` on the scene (ground-truth boxes, ByteTrack, one onnxruntime worker, an
   embedded Qdrant Edge gallery) and scores the cross-camera result against the ground truth.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"
DEMO_TRAIN_CONFIG = CONFIG_ROOT / "train" / "demo_cpu.yaml"


def calibrate_threshold(result: Any, lam: float = 1.0) -> float:
    """The occlusion-aware distance that best separates same-identity from different-identity
    query–gallery pairs of an evaluation (max of TPR − FPR): the gallery's accept threshold."""
    from reid_core import occlusion_aware_distance

    distances = occlusion_aware_distance(result.query, result.gallery, lam=lam).numpy()
    q = np.array([r.pid for r in result.dataset.query])[:, None]
    g = np.array([r.pid for r in result.dataset.gallery])[None, :]
    valid = np.broadcast_to(g > 0, distances.shape)
    same = (q == g) & valid
    different = (q != g) & valid
    candidates = np.quantile(distances[valid], np.linspace(0.01, 0.99, 197))
    scores = [
        (distances[same] <= t).mean() - (distances[different] <= t).mean() for t in candidates
    ]
    return float(candidates[int(np.argmax(scores))])


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
    scene, crops, model_dir = out / "scene", out / "synth", out / "model"
    if not (scene / "cams.yaml").is_file():
        console.rule("1/4 rendering the demo scene")
        write_videos(VideoConfig(cameras=3, people=8, seconds=20, seed=seed), scene, preview=True)
    if not (crops / "meta.json").is_file():
        console.rule("1/4 rendering the demo crop set")
        write_reid_set(ReidSetConfig(identities=80, cameras=3, seed=seed), crops)
    checkpoint = model_dir / "model_last.safetensors"
    if not checkpoint.is_file():
        console.rule("2/4 training the demo model (cached for the next run)")
        train(DEMO_TRAIN_CONFIG, model_dir, {"data": {"root": str(crops)}, "seed": seed})
    model = load(checkpoint)
    onnx_path = model_dir / "model.onnx"
    if not onnx_path.is_file():
        console.rule("3/4 exporting to ONNX")
        export_onnx(model, onnx_path, on_step=lambda step: console.print(f"  {step}"))
    result = evaluate_model(model, "synthetic", crops)
    threshold = calibrate_threshold(result)
    console.print(
        f"demo model on the synthetic occluded queries: Rank-1 {result.metrics['cmc'][0]:.3f}, "
        f"mAP {result.metrics['mAP']:.3f}; gallery match threshold {threshold:.3f}"
    )
    console.rule("4/4 stream run on the scene")
    run = out / "run"
    if run.exists():
        import shutil

        shutil.rmtree(run)  # a fresh gallery: the demo's ids start at 1 every time
    cams = demo_cams_yaml(scene, onnx_path, threshold, out)
    summary = run_pipeline(cams, run, live=live)
    scores = evaluate_run(run, cams)
    print_table(scores)
    console.print(
        f"[bold]cross-camera IDF1 {scores['IDF1']:.3f}[/] over {len(summary['cameras'])} cameras; "
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
