"""`trainer viz`: keypoints and part segmentation of a checkpoint on some crops, as one PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
NAME = "viz"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="draw keypoints and part maps of a model on crops (PNG)",
        description="Run a checkpoint on person crops and draw, one row per crop, the crop with "
        "its keypoints, the part segmentation and their blend (paper Figs. 1 and 3).",
    )
    parser.add_argument("--checkpoint", required=True, type=Path, help=".safetensors model")
    parser.add_argument(
        "--images", required=True, nargs="+", type=Path, help="image files or folders of images"
    )
    parser.add_argument("--out", required=True, type=Path, help="PNG to write")
    parser.add_argument("--max-images", type=int, default=16, help="rows at most (default 16)")
    parser.add_argument("--batch-size", type=int, default=16, help="crops per forward pass")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.set_defaults(handler=_handle)


def collect_images(paths: list[Path]) -> list[Path]:
    """Files as given, folders expanded to their image files (sorted); missing = error."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"--images: {path} does not exist")
    if not found:
        raise FileNotFoundError(f"--images: no image files in {', '.join(map(str, paths))}")
    return found


def _handle(args: argparse.Namespace) -> int:
    import cv2
    import torch
    from rich.progress import Progress

    from reid_core.checkpoint import load
    from reid_core.features import ReIDFeatures
    from reid_core.runtime import preprocess_crops
    from reid_core.viz import draw_parts

    try:
        paths = collect_images(args.images)[: args.max_images]
        crops = []
        for path in paths:
            crop = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if crop is None:
                raise ValueError(f"--images: {path} is not a readable image")
            crops.append(crop)
        model = load(args.checkpoint, map_location=args.device)
    except (FileNotFoundError, ValueError) as error:
        print(f"trainer viz: error: {error}", file=sys.stderr)
        return 2
    outputs = []
    with Progress() as progress, torch.no_grad():
        task = progress.add_task("embedding crops", total=len(crops))
        for start in range(0, len(crops), args.batch_size):
            batch = preprocess_crops(crops[start : start + args.batch_size]).to(args.device)
            outputs.append(model(batch).cpu())
            progress.advance(task, len(batch))
    draw_parts(crops, ReIDFeatures.cat(outputs), args.out)
    print(f"wrote {args.out} ({len(crops)} crops)")
    return 0
