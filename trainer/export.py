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
        "--int8",
        action="store_true",
        help="int8 weights and activations (static, calibrated on --calibration crops) for CPU "
        "serving; attention products stay float",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="with --int8: a folder of person crops like those the model will embed (images "
        "found recursively, e.g. a `trainer synth` or `stream harvest` data set)",
    )
    parser.add_argument(
        "--calibration-crops",
        type=int,
        default=256,
        help="crops taken evenly from --calibration for the int8 ranges (default 256)",
    )
    parser.add_argument(
        "--opset", type=int, default=None, help="ONNX opset, ≥ 18 (default: the exporter's)"
    )
    parser.add_argument(
        "--parity-crops",
        type=int,
        default=None,
        help="crops for the parity check (default 4 synthetic; with --int8 64 held-out crops "
        "of --calibration)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="largest accepted max|Δ| / max|PyTorch value| per output "
        "(default 1e-4, or 2e-2 with --fp16); with --int8 the smallest accepted cosine of a "
        "crop's global feature to PyTorch's (default 0.995)",
    )
    parser.set_defaults(handler=_handle)


def read_crop_folder(folder: Path, count: int, held_out: int) -> tuple[list, list]:
    """(``count`` crops taken evenly from the images under ``folder``, up to ``held_out`` of
    the others, also evenly): calibration and parity crops that never overlap. BGR uint8."""
    from trainer.viz import IMAGE_SUFFIXES, read_crops

    if not folder.is_dir():
        raise FileNotFoundError(f"--calibration {folder} is not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(paths) < 2:
        raise ValueError(
            f"--calibration {folder}: {len(paths)} images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            "need at least 2 (one to calibrate, one to check) — render some with `trainer "
            "synth` or harvest them with `stream harvest`"
        )
    count = min(count, len(paths) - 1)
    chosen = {round(i * len(paths) / count) for i in range(count)}
    others = [p for i, p in enumerate(paths) if i not in chosen]
    step = max(1, len(others) // max(held_out, 1))
    check = others[::step][:held_out]
    calibration = [paths[i] for i in sorted(chosen)]
    return read_crops(calibration, "--calibration"), read_crops(check, "--calibration")


def _handle(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from reid_core.checkpoint import load
    from reid_core.runtime.export import (
        INT8_MIN_COSINE,
        PARITY_TOLERANCE,
        export_onnx,
        int8_copy,
        parity_check,
        synthetic_crops,
    )

    console = Console()
    problem = None
    if args.parity_crops is not None and args.parity_crops < 1:
        problem = f"--parity-crops must be ≥ 1, got {args.parity_crops}"
    elif args.int8 and args.fp16:
        problem = "--int8 and --fp16 exclude each other"
    elif args.int8 and args.calibration is None:
        problem = (
            "--int8 needs --calibration DIR, a folder of crops like those it will embed "
            "(e.g. `trainer synth` or `stream harvest` output)"
        )
    elif args.calibration is not None and not args.int8:
        problem = "--calibration is for --int8"
    elif args.calibration_crops < 1:
        problem = f"--calibration-crops must be ≥ 1, got {args.calibration_crops}"
    if problem:
        print(f"trainer export: error: {problem}", file=sys.stderr)
        return 2
    precision = "int8" if args.int8 else "fp16" if args.fp16 else "fp32"
    parity_count = args.parity_crops or (64 if args.int8 else 4)
    if args.int8:
        calibration, parity_crops = read_crop_folder(
            args.calibration, args.calibration_crops, parity_count
        )
        parity_source = f"{len(parity_crops)} held-out crops of {args.calibration}"
    else:
        parity_crops = synthetic_crops(parity_count)
        parity_source = f"{parity_count} synthetic crops"
    steps = 5 + int(args.fp16) + int(args.int8)  # load, trace, convert, [fp16|int8], write, parity
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"loading {args.checkpoint}", total=steps)

        def step(description: str) -> None:
            progress.update(task, description=description, advance=1)

        model = load(args.checkpoint)
        if args.int8:
            fp32 = args.out.with_name(args.out.stem + ".fp32-tmp.onnx")
            try:
                export_onnx(model, fp32, opset=args.opset, on_step=step)
                step(f"quantising to int8 ({len(calibration)} calibration crops)")
                out = int8_copy(fp32, args.out, calibration)
            finally:
                fp32.unlink(missing_ok=True)
        else:
            out = export_onnx(model, args.out, fp16=args.fp16, opset=args.opset, on_step=step)
        step(f"parity check on {parity_source}")
        report = parity_check(model, out, parity_crops)
        progress.update(task, description=f"exported {out}", advance=1)

    table = Table(title=f"{out} ({precision}) vs PyTorch, {parity_source}, CPU")
    table.add_column("output", no_wrap=True, min_width=len("global_features"))
    for column in ("shape", "max |Δ|", "max |torch|", "relative", "min cos"):
        table.add_column(column, justify="right")
    for row in report:
        table.add_row(
            row.name,
            "×".join(map(str, row.shape)),
            f"{row.max_abs_diff:.2e}",
            f"{row.max_abs_reference:.3g}",
            f"{row.relative:.2e}",
            "" if row.min_cosine is None else f"{row.min_cosine:.4f}",
        )
    console.print(table)
    size_mb = out.stat().st_size / 2**20
    if args.int8:
        bound = INT8_MIN_COSINE if args.tolerance is None else args.tolerance
        cosine = next(row.min_cosine for row in report if row.name == "global_features")
        failed = cosine < bound
        verdict = f"global-feature cosine to PyTorch ≥ {cosine:.4f} (required ≥ {bound:.3f})"
    else:
        tolerance = PARITY_TOLERANCE[precision] if args.tolerance is None else args.tolerance
        worst = max(report, key=lambda row: row.relative)
        failed = worst.relative > tolerance
        verdict = (
            f"{worst.name} differs by {worst.relative:.2e} of its range (tolerance {tolerance:.0e})"
            if failed
            else f"every output within {tolerance:.0e} of its range"
        )
    if failed:
        console.print(f"[red]parity FAILED[/]: {verdict}; {out} ({size_mb:.1f} MiB) was written")
        return 1
    console.print(f"[green]parity OK[/]: {verdict}; wrote {out} ({size_mb:.1f} MiB)")
    return 0
