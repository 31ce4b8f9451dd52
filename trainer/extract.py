"""`trainer extract`: features of your own person crops, to a file other tools read.

    trainer extract --images crops/ [more.jpg ...] --out features.npz [--model M] [--runtime R]

Each image (a file, or a folder's image files in name order) is embedded with the model's own
preprocessing (`reid_core.runtime`: resize to the model's input, normalise) in batches; the
``.npz`` holds ``global`` [N, d], ``parts`` [N, K, d], ``visibility`` [N, K] (float32) and
``paths`` [N] (str), row i for image i. With no --model, the shipped model (digest-checked).
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
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write")
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

    if args.out.suffix != ".npz":
        raise ValueError(f"--out {args.out}: must end in .npz")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be ≥ 1, got {args.batch_size}")
    paths = collect_images(args.images)
    runtime = args.runtime or (runtime_for(args.model) if args.model else "torch")
    arrays = extract_features(paths, args.model, runtime, args.batch_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **arrays)
    n, d = arrays["global"].shape
    print(f"wrote {args.out}: {n} crops, d={d}, K={arrays['parts'].shape[1]}")
    return 0
