"""Crops/s of the full model (configs/model/full.yaml: resnet50, K=10; eval, no_grad, CPU)
next to a plain torchvision ResNet-50, measured interleaved in one process with the same
threads, at batch 1/8/32 (SPEC §7: figures on a shared CPU are ratios measured side by side).

    python bench/model_speed.py [--config C] [--batch-sizes 1 8 32] [--rounds 3] [--threads N]

Sets the glibc malloc variables of NOTES.md "CPU speed traps" (re-executing itself when they
are absent): without them large batches spend most of their time in page faults.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reid_core.runtime.embedder import ensure_malloc_env  # noqa: E402


def crops_per_second(model, images) -> float:
    import torch

    with torch.no_grad():
        start = time.perf_counter()
        model(images)
        return len(images) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs/model/full.yaml"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per model and batch")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    ensure_malloc_env()

    import torch
    import torchvision
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    from reid_core.model import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # speed does not depend on the weights' values: random init, so no ImageNet file is needed
    full = build_model({"_base_": args.config, "backbone": {"weights": "random"}}).eval()
    plain = torchvision.models.resnet50(weights=None).eval()
    results = {}
    steps = [(b, r) for b in args.batch_sizes for r in range(args.rounds + 1)]
    for batch, round_index in track(steps, description="timing"):
        images = torch.randn(batch, 3, 256, 128)
        pair = [("full", full), ("resnet50", plain)]
        if round_index % 2:
            pair.reverse()  # alternate who goes first: neither always gets a warm cache
        for name, model in pair:
            rate = crops_per_second(model, images)
            if round_index:  # round 0 is the warm-up
                results.setdefault((batch, name), []).append(rate)
    load = os.getloadavg()[0]
    table = Table(
        title=f"crops/s, CPU, {torch.get_num_threads()} threads, median of "
        f"{args.rounds}, full = {Path(args.config).name}, load avg {load:.1f}"
    )
    for column in ("batch", "full model", "plain ResNet-50", "full / ResNet-50"):
        table.add_column(column, justify="right")
    for batch in args.batch_sizes:
        full_rate = statistics.median(results[(batch, "full")])
        plain_rate = statistics.median(results[(batch, "resnet50")])
        table.add_row(
            str(batch), f"{full_rate:.1f}", f"{plain_rate:.1f}", f"{full_rate / plain_rate:.2f}×"
        )
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
