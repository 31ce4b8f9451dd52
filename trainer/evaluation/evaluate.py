"""`trainer eval` and the evaluation the training engine runs: model → features → metrics.

Features are extracted batch by batch (GPU when present, progress bar), then ranked with the
chunked protocol of `ranking.py` so the Q×G matrix is never held (MSMT17 fits in a few GiB).
For a model with parts the same features also give the part health (`reid_core.part_health`,
SPEC §2), scored against the body-part label maps of records that name one
(``extras["part_map"]``, the synthetic set's manifest field), under ``part_health/<figure>``
keys of the metrics.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from reid_core import ReIDFeatures, global_distance, occlusion_aware_distance
from reid_core.features import embed_flipped
from reid_core.part_health import PartHealthAccumulator
from reid_core.parts import SUPPORTED_PART_COUNTS
from trainer.evaluation.tables import PART_HEALTH_PREFIX

PART_MAP_KEY = "part_map"  # a record's extras key: its label map (the loader makes it absolute)

Distance = Literal["global", "occlusion-aware"]


def distance_function(kind: Distance, lam: float = 1.0):
    """The [q, G] distance between two ReIDFeatures that `kind` names (SPEC §2.7)."""
    if kind == "global":
        return global_distance
    if kind == "occlusion-aware":
        return lambda query, gallery: occlusion_aware_distance(query, gallery, lam=lam)
    raise ValueError(f"unknown distance {kind!r}; valid: global, occlusion-aware")


@torch.no_grad()
def extract_features(
    model: nn.Module,
    records: list,
    transform: Any,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    flip: bool = False,
    num_workers: int = 0,
    description: str = "Features",
) -> ReIDFeatures:
    """ReIDFeatures of every record (trainer.data.ImageRecord), in order, on the CPU."""
    from rich.progress import Progress
    from torch.utils.data import DataLoader

    from trainer.data import ImageDataset

    if not records:
        raise ValueError(f"{description}: no images to embed")
    was_training = model.training
    model.eval()
    loader = DataLoader(
        ImageDataset(records, transform, on_error="raise"),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
    )
    chunks: list[ReIDFeatures] = []
    with Progress(transient=True) as progress:
        task = progress.add_task(description, total=len(records))
        for batch in loader:
            images = batch["image"].to(device, non_blocking=True)
            features = embed_flipped(model, images) if flip else model(images)
            chunks.append(features.cpu())
            progress.update(task, advance=len(images))
    model.train(was_training)
    return ReIDFeatures.cat(chunks)


@dataclass
class EvaluationResult:
    metrics: dict[str, Any]
    query: ReIDFeatures
    gallery: ReIDFeatures
    dataset: Any


def evaluate_model(
    model: nn.Module,
    dataset: str,
    root: str | Path,
    options: dict[str, Any] | None = None,
    transform: Any = None,
    distance: Distance = "occlusion-aware",
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    flip: bool = False,
    rerank: bool = False,
    lam: float = 1.0,
) -> EvaluationResult:
    """CMC / mAP / mINP of `model` on a data set's query and gallery (SPEC §3), with the
    features (for pictures and further analysis)."""
    from trainer.data import TransformConfig, build_dataset, build_transforms
    from trainer.evaluation.ranking import evaluate_features, evaluate_rankings
    from trainer.evaluation.reranking import rerank_features

    data = build_dataset(dataset, root, **(options or {}))
    if transform is None:  # the model's own input size (a checkpoint may not be 256×128)
        height, width = model.config.input_size
        transform = build_transforms(TransformConfig(height=height, width=width), data.joint_names)[
            1
        ]
    query = extract_features(
        model, data.query, transform, batch_size, device, flip, description=f"{dataset} query"
    )
    gallery = extract_features(
        model, data.gallery, transform, batch_size, device, flip, description=f"{dataset} gallery"
    )
    labels = (
        [r.pid for r in data.query],
        [r.pid for r in data.gallery],
        [r.camid for r in data.query],
        [r.camid for r in data.gallery],
    )
    distance_fn = distance_function(distance, lam)
    if rerank:
        metrics = evaluate_rankings(rerank_features(query, gallery, distance_fn), *labels)
    else:
        metrics = evaluate_features(query, gallery, distance_fn, *labels)
    input_size = tuple(getattr(model, "module", model).config.input_size)
    health = measure_part_health(data, query, gallery, input_size, batch_size)
    metrics.update({PART_HEALTH_PREFIX + name: value for name, value in health.items()})
    return EvaluationResult(metrics, query, gallery, data)


def read_part_map(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """A body-part label map PNG (`reid_core.parts.BODY_PARTS` values) resized to (H, W) =
    ``size`` as the transforms resize maps beside their crops (nearest, pixel-centre exact).
    An unreadable map is an `UnreadableImageError` naming it."""
    import cv2

    from trainer.data.image_dataset import read_part_map as read_labels

    height, width = size
    return cv2.resize(
        read_labels(Path(path)), (width, height), interpolation=cv2.INTER_NEAREST_EXACT
    )


def measure_part_health(
    data: Any,
    query: ReIDFeatures,
    gallery: ReIDFeatures,
    input_size: tuple[int, int],
    batch_size: int = 64,
) -> dict[str, Any]:
    """Part-health figures of the query and gallery features of ``data`` (a ReIDDataset), with
    the label-based ones over the records that carry ``extras["part_map"]``; {} for K = 0."""
    accumulator = PartHealthAccumulator()
    scores_labels = query.num_parts in SUPPORTED_PART_COUNTS
    for features, records in ((query, data.query), (gallery, data.gallery)):
        accumulator.add_features(features)
        if not scores_labels:  # no body-part grouping for this K: no label maps to read
            continue
        labelled = [i for i, record in enumerate(records) if PART_MAP_KEY in record.extras]
        for start in range(0, len(labelled), batch_size):
            chosen = labelled[start : start + batch_size]
            maps = np.stack(
                [read_part_map(records[i].extras[PART_MAP_KEY], input_size) for i in chosen]
            )
            accumulator.add_label_maps(features.segmentation[chosen], maps)
    return accumulator.compute()


def synthetic_benchmark(model: nn.Module, data: str | Path) -> dict[str, Any]:
    """The synthetic occluded benchmark of a rendered set's test identities: Rank-1 / mAP with
    both distances on the occluded and the holistic queries (the gallery embedded once), and
    part health on the occluded queries + gallery against the rendered part maps
    (`bench/train_synthetic.py` rows and shipped model cards)."""
    from trainer.data import TransformConfig, build_dataset, build_transforms
    from trainer.evaluation.ranking import evaluate_features

    height, width = model.config.input_size
    transform = build_transforms(TransformConfig(height=height, width=width))[1]
    distances = {"global": global_distance}
    if model.num_parts:
        distances["occlusion-aware"] = occlusion_aware_distance
    row: dict[str, Any] = {}
    gallery = None
    for split in ("occluded_query", "query"):
        dataset = build_dataset("synthetic", data, query_split=split)
        if gallery is None:
            gallery = extract_features(model, dataset.gallery, transform, description="gallery")
        query = extract_features(model, dataset.query, transform, description=split)
        labels = (
            [r.pid for r in dataset.query],
            [r.pid for r in dataset.gallery],
            [r.camid for r in dataset.query],
            [r.camid for r in dataset.gallery],
        )
        for distance, function in distances.items():
            metrics = evaluate_features(query, gallery, function, *labels)
            row[f"{split}/{distance}"] = {"rank1": float(metrics["cmc"][0]), "mAP": metrics["mAP"]}
        if split == "occluded_query":
            row["part_health"] = measure_part_health(dataset, query, gallery, (height, width))
    return row


def _ranked_lists_picture(result: EvaluationResult, distance_fn: Any, out_path: Path) -> None:
    from trainer.evaluation.ranked_lists import draw_ranked_lists, query_distances, select_queries
    from trainer.evaluation.ranking import ProtocolLabels

    data = result.dataset
    labels = ProtocolLabels.from_arrays(
        [r.pid for r in data.query],
        [r.pid for r in data.gallery],
        [r.camid for r in data.query],
        [r.camid for r in data.gallery],
    )
    picks = select_queries(labels.q_pids, count=8)
    rows = query_distances(result.query, result.gallery, distance_fn, picks)
    draw_ranked_lists(
        rows,
        picks,
        [r.path for r in data.query],
        [r.path for r in data.gallery],
        labels,
        out_path,
    )


def run_eval(args: argparse.Namespace) -> dict[str, Any]:
    """`trainer eval`: every (data set, root) pair → metrics.json, table.md, ranked_lists.png."""
    from rich.console import Console

    from reid_core.runtime.onnx_runtime import OnnxModule, load_model_file
    from trainer.evaluation.tables import (
        load_metrics_json,
        metrics_table,
        part_health_figures,
        part_health_tables,
        write_metrics_json,
        write_table,
    )

    if len(args.dataset) != len(args.root):
        raise SystemExit(
            f"trainer eval: give one --root per --dataset ({len(args.dataset)} data sets, "
            f"{len(args.root)} roots)"
        )
    from reid_core.config import parse_overrides

    options = parse_overrides(args.options)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model_file(args.checkpoint, device)
    if isinstance(model, OnnxModule):  # an export: measure what a worker serves
        device = torch.device("cpu")  # its session takes CPU tensors and picks its own device
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    distance_fn = distance_function(args.distance, args.lam)
    results: dict[str, Any] = {}
    for index, (name, root) in enumerate(zip(args.dataset, args.root, strict=True)):
        result = evaluate_model(
            model,
            name,
            root,
            distance=args.distance,
            batch_size=args.batch_size,
            device=device,
            flip=args.flip,
            rerank=args.rerank,
            lam=args.lam,
            options=options,
        )
        results[name] = result.metrics
        if index == 0:
            _ranked_lists_picture(result, distance_fn, out / "ranked_lists.png")
    write_metrics_json(results, out / "metrics.json")
    rows = {args.label or Path(args.checkpoint).stem: metrics_table(results)}
    for other in args.compare:
        rows[Path(other).name] = load_metrics_json(Path(other) / "metrics.json")
    write_table(rows, out / "table.md")
    console = Console()
    console.print((out / "table.md").read_text())
    for name, metrics in results.items():
        for table in part_health_tables(name, part_health_figures(metrics)):
            console.print(table)
    console.print(f"wrote {out / 'metrics.json'}, {out / 'table.md'}, {out / 'ranked_lists.png'}")
    return results


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint on standard data sets (CMC, mAP, mINP)",
        description=(
            "Rank-1/3/5/10, mAP and mINP of a checkpoint under the Market/Duke/MSMT protocol "
            "(and the occluded/partial protocol for the test-only sets). Writes metrics.json, a "
            "Markdown table laid out like the paper's Table 3 (table.md) and ranked_lists.png."
        ),
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="model .safetensors (reid_core.save), or an .onnx export (`trainer export`)",
    )
    parser.add_argument(
        "--dataset",
        action="append",
        required=True,
        help="data set name (repeatable): market1501, dukemtmcreid, msmt17, occluded_duke, "
        "occluded_reid, partial_reid, partial_ilids, synthetic",
    )
    parser.add_argument(
        "--root", action="append", required=True, help="data set folder, one per --dataset"
    )
    parser.add_argument("--out", default="runs/eval", help="output folder (default runs/eval)")
    parser.add_argument(
        "--distance", choices=["global", "occlusion-aware"], default="occlusion-aware"
    )
    parser.add_argument("--lam", type=float, default=1.0, help="λ of the part term (SPEC §2.7)")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
    parser.add_argument("--flip", action="store_true", help="flip test-time augmentation")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--label", help="row name in table.md (default: checkpoint file stem)")
    parser.add_argument(
        "--compare",
        nargs="*",
        default=[],
        metavar="DIR",
        help="earlier `trainer eval --out` folders whose metrics.json become extra table rows",
    )
    parser.add_argument(
        "options",
        nargs="*",
        metavar="key=value",
        help="data set options for every --dataset, e.g. test_fraction=0.3 (folder) or "
        "query_split=query (synthetic)",
    )
    parser.set_defaults(handler=lambda args: run_eval(args) and 0)
