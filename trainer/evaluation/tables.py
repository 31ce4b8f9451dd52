"""`metrics.json` and the Markdown results table of `trainer eval` (SPEC §3, §8).

metrics.json: {DATASET: {"rank1", "rank3", "rank5", "rank10", "mAP", "mINP",
"num_valid_queries"}}, rates as fractions in [0, 1], plus "part_health" (the
`reid_core.part_health` figures, {name: float or per-part list}) for a model with parts.
`evaluate_model` returns those figures flat, as ``part_health/<name>`` keys of its metrics.
table.md: the layout of the paper's Table 3 — one row per method/checkpoint, per data set two
columns (Rank-1 and mAP; Rank-1 and Rank-3 for the partial sets, which report CMC only),
percentages with one decimal, "-" where a method was not evaluated on a data set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PART_HEALTH_PREFIX = "part_health/"

# Table 3 order first, then the other data sets `trainer eval` knows (SPEC §8).
DATASET_TITLES = {
    "occluded_duke": "Occluded-Duke",
    "occluded_reid": "Occluded-REID",
    "partial_reid": "Partial-REID",
    "partial_ilids": "Partial-iLIDS",
    "market1501": "Market-1501",
    "dukemtmcreid": "DukeMTMC-reID",
    "msmt17": "MSMT17",
    "synthetic": "Synthetic",
}
PARTIAL_DATASETS = frozenset({"partial_reid", "partial_ilids"})
COLUMN_TITLES = {"rank1": "Rank-1", "rank3": "Rank-3", "mAP": "mAP"}
CMC_RANKS = (1, 3, 5, 10)


class DatasetMetrics(BaseModel):
    """One data set's entry of metrics.json."""

    model_config = ConfigDict(extra="forbid")

    rank1: float = Field(ge=0.0, le=1.0)
    rank3: float = Field(ge=0.0, le=1.0)
    rank5: float = Field(ge=0.0, le=1.0)
    rank10: float = Field(ge=0.0, le=1.0)
    mAP: float = Field(ge=0.0, le=1.0)
    mINP: float = Field(ge=0.0, le=1.0)
    num_valid_queries: int = Field(ge=1)
    part_health: dict[str, float | list[float] | list[str]] | None = None

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> DatasetMetrics:
        """From an `evaluate_rankings` result (its CMC must reach rank 10), with the
        ``part_health/...`` figures of an `evaluate_model` result when it has them."""
        cmc = result["cmc"]
        if len(cmc) < max(CMC_RANKS):
            raise ValueError(
                f"metrics.json needs CMC up to rank {max(CMC_RANKS)}, the result has "
                f"{len(cmc)} ranks: evaluate with max_rank >= {max(CMC_RANKS)}"
            )
        return cls(
            **{f"rank{r}": float(cmc[r - 1]) for r in CMC_RANKS},
            mAP=result["mAP"],
            mINP=result["mINP"],
            num_valid_queries=result["num_valid_queries"],
            part_health=part_health_figures(result) or None,
        )


def part_health_figures(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The ``part_health/<name>`` entries of flat evaluation metrics, as {name: value}."""
    return {
        key[len(PART_HEALTH_PREFIX) :]: value
        for key, value in metrics.items()
        if key.startswith(PART_HEALTH_PREFIX)
    }


def metrics_table(results: Mapping[str, Mapping[str, Any]]) -> dict[str, DatasetMetrics]:
    """{dataset: evaluate_rankings result or DatasetMetrics} -> {dataset: DatasetMetrics}."""
    return {
        name: value if isinstance(value, DatasetMetrics) else DatasetMetrics.from_result(value)
        for name, value in results.items()
    }


def write_metrics_json(results: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """Write metrics.json from {dataset name: evaluate_rankings result}."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = {
        name: entry.model_dump(exclude_none=True) for name, entry in metrics_table(results).items()
    }
    path.write_text(json.dumps(table, indent=2) + "\n")
    return path


def load_metrics_json(path: str | Path) -> dict[str, DatasetMetrics]:
    """Read and validate a metrics.json, naming the file and the bad field on error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(raw, dict):
        raise ValueError(
            f"{path}: expected an object {{dataset: metrics}}, got {type(raw).__name__}"
        )
    table = {}
    for name, entry in raw.items():
        try:
            table[name] = DatasetMetrics.model_validate(entry)
        except ValidationError as error:
            raise ValueError(f"{path}: data set {name!r}: {error}") from error
    return table


def _columns(dataset: str) -> tuple[str, str]:
    return ("rank1", "rank3") if dataset in PARTIAL_DATASETS else ("rank1", "mAP")


def markdown_table(rows: Mapping[str, Mapping[str, DatasetMetrics]]) -> str:
    """Paper Table 3 layout: {method or checkpoint: {dataset: metrics}} -> Markdown."""
    if not rows:
        raise ValueError("markdown_table needs at least one method/checkpoint row")
    present = {name for entries in rows.values() for name in entries}
    datasets = [name for name in DATASET_TITLES if name in present]
    datasets += sorted(present - set(datasets))
    header = ["Method"]
    for name in datasets:
        title = DATASET_TITLES.get(name, name)
        header += [f"{title} {COLUMN_TITLES[column]}" for column in _columns(name)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
    for method, entries in rows.items():
        cells = [method]
        for name in datasets:
            entry = entries.get(name)
            cells += [
                "-" if entry is None else f"{100 * getattr(entry, column):.1f}"
                for column in _columns(name)
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(rows: Mapping[str, Mapping[str, DatasetMetrics]], path: str | Path) -> Path:
    """Write table.md (see `markdown_table`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown_table(rows))
    return path


# Rows of the part-health summary printed by `trainer eval`: (figure, label), in this order.
PART_HEALTH_ROWS = (
    ("largest_part_share", "largest part's share of the person"),
    ("background_fraction", "background fraction"),
    ("spatial_entropy_max", "spatial entropy, most spread part"),
    ("spatial_entropy_mean", "spatial entropy, mean of parts"),
    ("mass_entropy", "entropy of the part shares"),
    ("part_miou", "mIoU with rendered body parts"),
    ("part_purity", "purity of the parts"),
    ("background_iou", "background IoU"),
    ("keypoint_spread", "keypoint spread"),
    ("visibility_mean", "mean visibility"),
    ("confidence", "mean per-cell max probability"),
    ("part_global_cosine", "cos(part, global feature)"),
    ("part_part_cosine", "cos(part, other part)"),
)


def part_health_tables(dataset: str, figures: Mapping[str, Any]) -> list[Any]:
    """Rich tables of one data set's part-health figures (`reid_core.part_health`): the
    summary with ✓/✗ against the SPEC §7 targets, and one row per part. [] without figures."""
    from rich.table import Table

    from reid_core.part_health import TARGETS

    if not figures:
        return []
    targets = {target.figure: target for target in TARGETS}
    title = DATASET_TITLES.get(dataset, dataset)
    summary = Table(title=f"{title}: part health", title_justify="left")
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    summary.add_column("target", justify="right")
    summary.add_column("", justify="center")
    for key, label in PART_HEALTH_ROWS:
        if key not in figures:
            continue
        target = targets.get(key)
        if target is None:
            mark = ""
        elif target.passes(figures[key]):
            mark = "[green]✓[/green]"
        else:
            mark = "[red]✗[/red]"
        summary.add_row(label, f"{figures[key]:.3f}", "" if target is None else str(target), mark)
    parts = Table(title=f"{title}: per part", title_justify="left")
    columns = [
        ("part_share", "share"),
        ("spatial_entropy", "spatial entropy"),
        ("visibility", "visibility"),
        ("part_iou", "IoU"),
        ("part_matching", "matched body parts"),
    ]
    columns = [(key, name) for key, name in columns if key in figures]
    parts.add_column("part", justify="right")
    for key, name in columns:
        if key == "part_matching":
            parts.add_column(name, overflow="fold")
        else:
            parts.add_column(name, justify="right")
    # a part's own value against the target on the largest / most spread part
    limits = {
        "part_share": targets["largest_part_share"],
        "spatial_entropy": targets["spatial_entropy_max"],
    }
    for index in range(len(figures["part_share"])):
        cells = [str(index + 1)]
        for key, _ in columns:
            value = figures[key][index]
            if isinstance(value, str):
                cells.append(value)
                continue
            cell = f"{value:.3f}"
            if key in limits and not limits[key].passes(value):
                cell = f"[red]{cell}[/red]"
            cells.append(cell)
        parts.add_row(*cells)
    return [summary, parts]
