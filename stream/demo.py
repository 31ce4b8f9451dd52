"""`stream demo` (what `make demo` runs): the whole product on the embedded defaults, on CPU.

1. renders a synthetic 3-camera scene (kept under --out, reused);
2. takes the shipped model (`reid_core.zoo`: digest-checked, exported to ONNX once into the
   cache) with the gallery threshold calibrated for it (its card); with ``--train`` it instead
   renders a crop set, trains the small demo model (configs/train/demo_cpu.yaml, cached by
   recipe and data), exports it and calibrates its threshold (`stream.calibration`);
3. runs `stream run` on the scene, its three videos played in real time like three cameras
   (ground-truth boxes, ByteTrack, one onnxruntime worker, an embedded Qdrant Edge gallery), and
   scores the cross-camera result against the ground truth.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path
from typing import Any

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


def demo_cams_yaml(
    scene: Path,
    out: Path,
    onnx_path: Path | None = None,
    threshold: float | None = None,
    detector: str = "ground_truth",
    pace: float | None = None,
) -> Path:
    """The scene's own cams.yaml plus the demo worker (onnxruntime) and gallery settings; no
    model and threshold: the shipped model with its card's threshold (the worker's default).
    ``detector`` replaces the scene's ground-truth boxes (e.g. background_subtraction);
    ``pace`` plays the videos like cameras (1.0: real time), None as fast as they are read."""
    import yaml

    cams = yaml.safe_load((scene / "cams.yaml").read_text())
    for camera in cams["cameras"]:
        video = str((scene / camera["source"]).resolve())
        camera["source"] = video if pace is None else {"type": "video", "path": video, "pace": pace}
        camera["ground_truth"] = str((scene / camera["ground_truth"]).resolve())
    embedder: dict[str, Any] = {"runtime": "onnxruntime"}
    if onnx_path is not None:
        embedder["model"] = str(onnx_path.resolve())
    cams["detector"] = {"name": detector}
    cams["worker"] = {
        "embedder": embedder,
        "tracklets": {"min_crops": 4, "rematch_every": 8},
    }
    if threshold is not None:
        cams["worker"]["gallery"] = {"threshold": round(threshold, 4)}
    path = out / "cams.yaml"
    path.write_text("# written by `stream demo`\n" + yaml.safe_dump(cams, sort_keys=False))
    return path


def train_demo_model(
    out: Path,
    seed: int,
    console: Any,
    identities: int = DEMO_IDENTITIES,
    train_overrides: dict[str, Any] | None = None,
) -> tuple[Path, float]:
    """`--train`: render a crop set, train the small demo model on it (cached by recipe and
    data; ``train_overrides`` change the recipe, e.g. a tiny step budget), export it to ONNX
    and calibrate its threshold → (ONNX path, threshold)."""
    from reid_core import load
    from reid_core.runtime.export import export_onnx
    from stream.calibration import calibrate_threshold, pseudo_tracklets
    from trainer.engine import train
    from trainer.evaluation.evaluate import evaluate_model
    from trainer.synth.reid_set import ReidSetConfig, write_reid_set

    model_dir = out / "model"
    crops = out / f"synth-{identities}ids-seed{seed}"
    if not (crops / "meta.json").is_file():
        console.rule("rendering the demo crop set")
        write_reid_set(ReidSetConfig(identities=identities, cameras=3, seed=seed), crops)
    checkpoint = model_dir / "model_last.safetensors"
    overrides = {**(train_overrides or {}), "data": {"root": str(crops.resolve())}, "seed": seed}
    key = training_key(DEMO_TRAIN_CONFIG, overrides)
    key_file = model_dir / "training_key.txt"
    if not checkpoint.is_file() or not key_file.is_file() or key_file.read_text() != key:
        console.rule("training the demo model (cached for the next run)")
        if model_dir.exists():
            shutil.rmtree(model_dir)  # another recipe's model (or an interrupted run)
        train(DEMO_TRAIN_CONFIG, model_dir, overrides)
        key_file.write_text(key)
    model = load(checkpoint)
    onnx_path = model_dir / "model.onnx"
    if not onnx_path.is_file():
        console.rule("exporting to ONNX")
        export_onnx(model, onnx_path, on_step=lambda step: console.print(f"  {step}"))
    result = evaluate_model(model, "synthetic", crops)
    threshold = calibrate_threshold(*pseudo_tracklets(result))
    console.print(
        f"demo model on the synthetic occluded queries: Rank-1 {result.metrics['cmc'][0]:.3f}, "
        f"mAP {result.metrics['mAP']:.3f}; gallery match threshold {threshold:.3f}"
    )
    return onnx_path, threshold


def run_demo(
    out: Path,
    seed: int = 0,
    live: bool = True,
    train_model: bool = False,
    scene_config: Any = None,
    detector: str = "ground_truth",
    pace: float | None = 1.0,
    **train_options: Any,
) -> dict[str, Any]:
    """The demo; ``scene_config`` (a VideoConfig) replaces the 3-camera, 8-person, 20 s scene
    and ``train_options`` go to `train_demo_model` (tests run both on a tiny budget).

    ``pace`` 1.0 plays the three videos in real time, as three cameras of a site deliver them:
    at full file speed (None) the camera processes race, one camera's whole scene can reach the
    worker before another's has begun, and the identities vary from run to run with that order
    (bench/README.md "Cross-camera association")."""
    from rich.console import Console

    from reid_core.zoo import DEFAULT_MODEL, read_card
    from stream.mtmc import evaluate_run, print_table
    from stream.pipeline import run_pipeline
    from trainer.synth.video import VideoConfig, write_videos

    console = Console()
    scene = out / "scene"
    if not (scene / "cams.yaml").is_file():
        console.rule("rendering the demo scene")
        scene_config = scene_config or VideoConfig(cameras=3, people=8, seconds=20, seed=seed)
        write_videos(scene_config, scene, preview=True)
    if train_model:
        onnx_path, threshold = train_demo_model(out, seed, console, **train_options)
        model_name = str(onnx_path)
    else:
        card = read_card(DEFAULT_MODEL)  # `stream run` checks its digest and exports it once
        console.rule(f"the shipped model {card.name}")
        onnx_path, threshold, model_name = None, card.threshold, card.name
        console.print(f"{card.name}: {card.steps} steps; calibrated threshold {threshold:.3f}")
    console.rule("stream run on the scene")
    run = out / "run"
    if run.exists():
        shutil.rmtree(run)  # a fresh gallery: the demo's ids start at 1 every time
    cams = demo_cams_yaml(
        scene, out, onnx_path, None if onnx_path is None else threshold, detector, pace
    )
    summary = run_pipeline(cams, run, live=live)
    scores = evaluate_run(run, cams)
    print_table(scores)
    console.print(
        f"[bold]cross-camera IDF1 {scores['IDF1']:.3f}[/] over {len(summary['cameras'])} cameras "
        f"({scores['IDF1_without_reid']:.3f} without re-ID; model {model_name}, detector "
        f"{detector}); "
        f"per-camera FPS "
        + ", ".join(f"{c} {s['fps']:.1f}" for c, s in sorted(summary["cameras"].items()))
        + f"; outputs in {run}"
    )
    return {
        "summary": summary,
        "scores": scores,
        "threshold": threshold,
        "model": model_name,
        "detector": detector,
    }


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
    parser.add_argument(
        "--train",
        action="store_true",
        help="train the small demo model from scratch (minutes) instead of the shipped model",
    )
    parser.add_argument(
        "--detector",
        default="ground_truth",
        choices=["ground_truth", "background_subtraction"],
        help="the scene's ground-truth boxes (default) or a detector that needs no weights",
    )
    parser.add_argument(
        "--full-speed",
        action="store_true",
        help="play the scene's videos as fast as the cameras go instead of in real time (the "
        "cameras then race and the identities vary more from run to run)",
    )
    parser.set_defaults(
        handler=lambda args: (
            run_demo(
                args.out,
                args.seed,
                not args.no_live,
                args.train,
                detector=args.detector,
                pace=None if args.full_speed else 1.0,
            )
            and 0
        )
    )
