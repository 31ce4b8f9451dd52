"""`trainer extract`: features of your own person crops, to a file other tools read.

    trainer extract --images crops/ [more.jpg ...] --out features.npz [--model M] [--runtime R]
    trainer extract --images crops/ --out features.parquet

Each image (a file, or a folder's image files in name order) is embedded with the model's own
preprocessing (`reid_core.runtime`: resize to the model's input, normalise) in batches; the
``.npz`` holds ``global`` [N, d], ``parts`` [N, K, d], ``visibility`` [N, K] (float32) and
``paths`` [N] (str), row i for image i. A ``.parquet`` holds the same as one row per image:
``path`` (string), ``global`` (d floats), ``parts`` (K lists of d floats), ``visibility`` (K
floats), with the model file and K, d in the schema's metadata — pandas, polars and DuckDB read
it as it is. With no --model, the shipped model (digest-checked).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def extract_features(
    paths: list[Path], model: Path | None, runtime: str, batch_size: int
) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz``, for ``paths`` in order."""
    from rich.progress import Progress

    from reid_core.runtime import EmbedderConfig
    from trainer.viz import read_crops

    embedder = EmbedderConfig(runtime=runtime, model=model).open()
    rows: dict[str, list[np.ndarray]] = {"global": [], "parts": [], "visibility": []}
    with Progress(transient=True) as progress:
        task = progress.add_task("embedding", total=len(paths))
        for start in range(0, len(paths), batch_size):
            batch = paths[start : start + batch_size]
            features = embedder.embed(read_crops(batch))
            rows["global"].append(features.global_features.numpy())
            rows["parts"].append(features.part_features.numpy())
            rows["visibility"].append(features.visibility.numpy())
            progress.advance(task, len(batch))
    arrays = {name: np.concatenate(parts).astype(np.float32) for name, parts in rows.items()}
    arrays["paths"] = np.array([str(path) for path in paths])
    return arrays


def write_parquet(arrays: dict[str, np.ndarray], out: Path, model: str) -> None:
    """One row per image (module docstring); fixed-size lists keep d and K in the schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, k, d = arrays["parts"].shape
    global_column = pa.FixedSizeListArray.from_arrays(pa.array(arrays["global"].ravel()), d)
    part_rows = pa.FixedSizeListArray.from_arrays(pa.array(arrays["parts"].ravel()), d)
    parts_column = pa.FixedSizeListArray.from_arrays(part_rows, k) if k else pa.nulls(n)
    visibility = pa.FixedSizeListArray.from_arrays(pa.array(arrays["visibility"].ravel()), k)
    table = pa.table(
        {
            "path": pa.array(arrays["paths"].tolist(), pa.string()),
            "global": global_column,
            "parts": parts_column,
            "visibility": visibility if k else pa.nulls(n),
        }
    ).replace_schema_metadata({"model": model, "dim": str(d), "num_parts": str(k)})
    pq.write_table(table, out)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="write the features of person crops to a .npz",
        description=__doc__.split("\n\n")[0]
        + " Writes global [N, d], parts [N, K, d], visibility [N, K] and paths [N].",
    )
    parser.add_argument(
        "--images", nargs="+", type=Path, required=True, help="image files and/or folders"
    )
    parser.add_argument("--out", type=Path, required=True, help="the .npz or .parquet to write")
    parser.add_argument("--model", type=Path, help="checkpoint or ONNX (default: shipped)")
    parser.add_argument(
        "--runtime",
        choices=["torch", "onnxruntime"],
        help="default: onnxruntime for an .onnx --model, else torch",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from reid_core.runtime.embedder import runtime_for
    from trainer.viz import collect_images

    if args.out.suffix not in (".npz", ".parquet"):
        raise ValueError(f"--out {args.out}: must end in .npz or .parquet")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be ≥ 1, got {args.batch_size}")
    paths = collect_images(args.images)
    runtime = args.runtime or (runtime_for(args.model) if args.model else "torch")
    arrays = extract_features(paths, args.model, runtime, args.batch_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix == ".parquet":
        write_parquet(arrays, args.out, str(args.model or "shipped"))
    else:
        np.savez(args.out, **arrays)
    n, d = arrays["global"].shape
    print(f"wrote {args.out}: {n} crops, d={d}, K={arrays['parts'].shape[1]}")
    return 0
