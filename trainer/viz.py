"""`trainer viz`: keypoints and part segmentation of a checkpoint on some crops, as one PNG."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
NAME = "viz"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="draw keypoints and part maps of a model on crops (PNG)",
        description="Run a checkpoint on person crops and draw, one row per crop, the crop with "
        "its keypoints, the part segmentation and their blend (paper Figs. 1 and 3), and under "
        "them the part health of these crops (targets of SPEC §7, part shares and spatial "
        "entropies).",
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


def read_crops(paths: list[Path], option: str = "--images") -> list[Any]:
    """BGR crops; an unreadable image is a ValueError naming it (and the ``option`` that
    named its folder)."""
    import cv2

    crops = []
    for path in paths:
        crop = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if crop is None:
            raise ValueError(f"{option}: {path} is not a readable image")
        crops.append(crop)
    return crops


def draw_model_parts(
    model: Any, crops: list[Any], out: Path, batch_size: int = 16, device: str = "cpu"
) -> None:
    """Keypoints, part maps and the part health of ``model`` on BGR ``crops`` → PNG."""
    import torch
    from rich.progress import Progress

    from reid_core.features import ReIDFeatures
    from reid_core.part_health import part_health
    from reid_core.runtime import preprocess_crops
    from reid_core.viz import draw_parts, panel_size

    model.eval()
    input_size = tuple(model.config.input_size)  # the model's own, not always 256×128
    outputs = []
    with Progress(transient=True) as progress, torch.no_grad():
        task = progress.add_task("embedding crops", total=len(crops))
        for start in range(0, len(crops), batch_size):
            chunk = crops[start : start + batch_size]
            batch = preprocess_crops(chunk, input_size).to(device)
            outputs.append(model(batch).cpu())
            progress.advance(task, len(batch))
    features = ReIDFeatures.cat(outputs)
    draw_parts(crops, features, out, size=panel_size(input_size), health=part_health(features))


def _handle(args: argparse.Namespace) -> int:
    from reid_core.checkpoint import load

    crops = read_crops(collect_images(args.images)[: args.max_images])
    model = load(args.checkpoint, map_location=args.device)
    draw_model_parts(model, crops, args.out, args.batch_size, args.device)
    print(f"wrote {args.out} ({len(crops)} crops)")
    return 0
