"""Evaluation speed and memory on an MSMT17-size problem (SPEC §7: >= 5x a per-query NumPy
implementation with identical numbers; 11,659 x 82,161 within 4 GiB).

Data: MSMT17's test split sizes (11,659 queries, 82,161 gallery images, 3,060 identities,
15 cameras), 512-d unit features with identity structure: an image's feature is its identity's
centre plus a camera bias plus noise, tuned so the metrics are far from trivial (mAP ~0.5).
Distances: cosine, `1 - q @ g.T`, in torch.

Measured in one run:
1. ranking only, on the same [n, G] distance rows of a query subset (the per-query reference is
   ~10 ms a query here, too slow for all 11,659): `evaluate_rankings` vs the per-query NumPy
   loop `trainer.evaluation.reference` (torchreid's eval_market1501 with a stable sort), and a
   check that every number is identical;
2. the whole problem from features in a fresh process: `evaluate_features` (distances and
   ranking chunk by chunk, no Q×G matrix), its wall time and peak RSS (ru_maxrss). The
   reference's time for the whole problem is extrapolated from (1) (per-query time x 11,659,
   plus the same distance time), and said so.

    python bench/eval_speed.py [--reference-queries 300] [--out runs/bench/eval_speed]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.evaluation import evaluate_features, evaluate_rankings  # noqa: E402
from trainer.evaluation.reference import evaluate_rankings_reference  # noqa: E402

TARGET_SPEEDUP = 5.0
TARGET_PEAK_GIB = 4.0


@dataclass(frozen=True)
class Problem:
    """Sizes and structure of the synthetic evaluation problem (MSMT17 test split by default)."""

    num_query: int = 11_659
    num_gallery: int = 82_161
    identities: int = 3_060
    cameras: int = 15
    dim: int = 512
    camera_bias: float = 0.7
    noise: float = 0.075
    seed: int = 0


def make_problem(problem: Problem) -> dict[str, torch.Tensor]:
    """Features and labels: centre(identity) + camera_bias * direction(camera) + noise, unit."""
    generator = torch.Generator().manual_seed(problem.seed)
    centres = torch.nn.functional.normalize(
        torch.randn(problem.identities, problem.dim, generator=generator), dim=1
    )
    camera_directions = torch.nn.functional.normalize(
        torch.randn(problem.cameras, problem.dim, generator=generator), dim=1
    )
    data = {}
    for side, size in (("q", problem.num_query), ("g", problem.num_gallery)):
        pids = torch.randint(0, problem.identities, (size,), generator=generator)
        cams = torch.randint(0, problem.cameras, (size,), generator=generator)
        features = centres[pids] + problem.camera_bias * camera_directions[cams]
        features += problem.noise * torch.randn(size, problem.dim, generator=generator)
        data[f"{side}_features"] = torch.nn.functional.normalize(features, dim=1)
        data[f"{side}_pids"] = pids + 1  # Market convention: 0 is reserved for distractors
        data[f"{side}_camids"] = cams
    return data


def cosine_distance(query: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    return 1.0 - query @ gallery.T


def labels(data: dict[str, torch.Tensor], rows: slice = slice(None)) -> list[torch.Tensor]:
    return [data["q_pids"][rows], data["g_pids"], data["q_camids"][rows], data["g_camids"]]


def run_full(problem: Problem) -> dict[str, float]:
    """The whole problem from features; run in a fresh process so ru_maxrss is its own."""
    data = make_problem(problem)
    start = time.perf_counter()
    result = evaluate_features(
        data["q_features"], data["g_features"], cosine_distance, *labels(data)
    )
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "rank1": float(result["cmc"][0]),
        "mAP": result["mAP"],
        "mINP": result["mINP"],
        "num_valid_queries": result["num_valid_queries"],
    }


def run_subset(problem: Problem, num_rows: int) -> dict[str, float]:
    """Ranking only, both implementations on the same distance rows; numbers must be identical."""
    data = make_problem(problem)
    rows = slice(0, num_rows)
    start = time.perf_counter()
    distmat = cosine_distance(data["q_features"][rows], data["g_features"])
    distance_seconds = time.perf_counter() - start

    start = time.perf_counter()
    ours = evaluate_rankings(distmat, *labels(data, rows), show_progress=False)
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    reference = evaluate_rankings_reference(
        distmat.numpy(), *(t.numpy() for t in labels(data, rows))
    )
    reference_seconds = time.perf_counter() - start

    identical = bool(np.array_equal(ours["cmc"], reference["cmc"])) and all(
        ours[key] == reference[key]
        for key in ("mAP", "mINP", "num_valid_queries", "num_skipped_queries")
    )
    return {
        "queries": num_rows,
        "distance_ms_per_query": 1e3 * distance_seconds / num_rows,
        "ours_ms_per_query": 1e3 * ours_seconds / num_rows,
        "reference_ms_per_query": 1e3 * reference_seconds / num_rows,
        "speedup": reference_seconds / ours_seconds,
        "identical": identical,
        "mAP": ours["mAP"],
    }


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    subset, full = report["subset"], report["full"]
    fig, (speed, memory) = plt.subplots(1, 2, figsize=(10, 4))
    names = ["per-query NumPy\n(reference)", "evaluate_rankings"]
    values = [subset["reference_ms_per_query"], subset["ours_ms_per_query"]]
    speed.bar(names, values, color=["#999999", "#2a7ab0"])
    speed.set_ylabel("ms per query (ranking only)")
    speed.set_title(f"{subset['speedup']:.1f}x on {subset['queries']} MSMT17-size queries")
    memory.bar(["evaluate_features\n(11,659 x 82,161)"], [full["peak_rss_gib"]], color="#2a7ab0")
    memory.axhline(TARGET_PEAK_GIB, color="red", linestyle="--", label="4 GiB target")
    memory.set_ylabel("peak RSS (GiB)")
    memory.set_title(f"whole problem: {full['seconds']:.0f} s, {full['peak_rss_gib']:.2f} GiB")
    memory.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-queries", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/eval_speed"))
    parser.add_argument("--noise", type=float, default=Problem.noise)
    parser.add_argument("--full-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    problem = Problem(noise=args.noise)
    if args.full_child:
        print(json.dumps(run_full(problem)))
        return 0

    console = Console()
    console.print(f"problem: {asdict(problem)}; torch threads: {torch.get_num_threads()}")
    console.print(f"ranking {args.reference_queries} queries with both implementations ...")
    subset = run_subset(problem, args.reference_queries)
    console.print("whole problem from features in a fresh process ...")
    child = subprocess.run(
        [sys.executable, __file__, "--full-child", "--noise", str(args.noise)],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    full = json.loads(child.stdout.strip().splitlines()[-1])
    reference_full_s = (
        (subset["reference_ms_per_query"] + subset["distance_ms_per_query"])
        * problem.num_query
        / 1e3
    )
    report = {
        "problem": asdict(problem),
        "subset": subset,
        "full": full,
        "reference_full_seconds_extrapolated": reference_full_s,
        "full_speedup_extrapolated": reference_full_s / full["seconds"],
    }

    table = Table(title="Evaluation on an MSMT17-size problem (SPEC §7)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row(
        f"ranking only, {subset['queries']} queries: reference / ours",
        f"{subset['reference_ms_per_query']:.2f} / {subset['ours_ms_per_query']:.2f} ms per query"
        f" = {subset['speedup']:.1f}x",
        f">= {TARGET_SPEEDUP:.0f}x",
    )
    table.add_row("identical numbers on that subset", str(subset["identical"]), "True")
    table.add_row(
        "whole problem (features -> metrics), ours",
        f"{full['seconds']:.1f} s (distances {subset['distance_ms_per_query']:.2f} ms/query)",
        "",
    )
    table.add_row(
        "whole problem, reference (extrapolated)",
        f"{reference_full_s:.0f} s = {report['full_speedup_extrapolated']:.1f}x ours",
        "",
    )
    table.add_row("peak RSS, whole problem", f"{full['peak_rss_gib']:.2f} GiB", "<= 4 GiB")
    table.add_row(
        "metrics (whole problem)",
        f"Rank-1 {full['rank1']:.3f}  mAP {full['mAP']:.3f}  mINP {full['mINP']:.3f}",
        "",
    )
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "eval_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "eval_speed.png")
    console.print(f"wrote {args.out / 'eval_speed.json'} and {args.out / 'eval_speed.png'}")
    return 0 if subset["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
