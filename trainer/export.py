"""`trainer export`: a checkpoint → one ONNX file, then a parity check against PyTorch (SPEC §4)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "export"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="export a checkpoint to ONNX (dynamic batch) and check it against PyTorch",
        description="Export a .safetensors checkpoint to one self-contained ONNX file with a "
        "dynamic batch axis, the six feature outputs named as in ReIDFeatures and the model "
        "config in its metadata; then run a few synthetic crops through PyTorch and "
        "onnxruntime (CPU) and print max |Δ| per output. Exit code 1 when an output differs "
        "by more than --tolerance (relative to its largest value).",
    )
    parser.add_argument("--checkpoint", required=True, type=Path, help=".safetensors model")
    parser.add_argument("--out", required=True, type=Path, help="ONNX file to write (.onnx)")
    parser.add_argument(
        "--fp16", action="store_true", help="float16 weights/activations, float32 inputs/outputs"
    )
    parser.add_argument(
        "--opset", type=int, default=None, help="ONNX opset, ≥ 18 (default: the exporter's)"
    )
    parser.add_argument(
        "--parity-crops", type=int, default=4, help="synthetic crops for the parity check"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="largest accepted max|Δ| / max|PyTorch value| per output "
        "(default 1e-4, or 2e-2 with --fp16)",
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from reid_core.checkpoint import load
    from reid_core.runtime.export import (
        PARITY_TOLERANCE,
        export_onnx,
        parity_check,
        synthetic_crops,
    )

    console = Console()
    if args.parity_crops < 1:
        print(
            f"trainer export: error: --parity-crops must be ≥ 1, got {args.parity_crops}",
            file=sys.stderr,
        )
        return 2
    precision = "fp16" if args.fp16 else "fp32"
    tolerance = PARITY_TOLERANCE[precision] if args.tolerance is None else args.tolerance
    steps = 5 + int(args.fp16)  # load, trace, convert, [fp16], write, parity
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"loading {args.checkpoint}", total=steps)

        def step(description: str) -> None:
            progress.update(task, description=description, advance=1)

        model = load(args.checkpoint)
        out = export_onnx(model, args.out, fp16=args.fp16, opset=args.opset, on_step=step)
        step(f"parity check on {args.parity_crops} synthetic crops")
        report = parity_check(model, out, synthetic_crops(args.parity_crops))
        progress.update(task, description=f"exported {out}", advance=1)

    table = Table(title=f"{out} ({precision}) vs PyTorch, {args.parity_crops} crops, CPU")
    for column in ("output", "shape", "max |Δ|", "max |PyTorch|", "relative"):
        table.add_column(column, justify="left" if column == "output" else "right")
    for row in report:
        table.add_row(
            row.name,
            "×".join(map(str, row.shape)),
            f"{row.max_abs_diff:.2e}",
            f"{row.max_abs_reference:.3g}",
            f"{row.relative:.2e}",
        )
    console.print(table)
    worst = max(report, key=lambda row: row.relative)
    size_mb = out.stat().st_size / 2**20
    if worst.relative > tolerance:
        console.print(
            f"[red]parity FAILED[/]: {worst.name} differs by {worst.relative:.2e} of its range "
            f"(tolerance {tolerance:.0e}); {out} ({size_mb:.1f} MiB) was written"
        )
        return 1
    console.print(
        f"[green]parity OK[/]: every output within {tolerance:.0e} of its range; "
        f"wrote {out} ({size_mb:.1f} MiB)"
    )
    return 0
