"""`stream search`: where else was this person seen? (SPEC §5, §8)

An image query (one or more crops of one person) is embedded with the runtime that built the
gallery — named in the gallery's manifest (`stream.gallery.read_manifest`) unless `--model`
says otherwise; a server gallery without a manifest gets the shipped default model — searched in the gallery with payload filters (camera, time), re-ranked by the
occlusion-aware part distance, and answered as a table (or JSON) and a contact sheet: the query
with its part map, then the top-k thumbnails with camera, time and score. A global-id query
lists every appearance of that identity across cameras in time order.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# A crop whose pixels barely vary (a blank or flat image) or whose shape is nothing like a
# standing person cannot be a person crop: refuse it rather than answer nonsense.
MIN_PIXEL_STD = 4.0
MIN_SIDE = 16
ASPECT_RANGE = (0.8, 6.0)  # height / width
THUMB_SIZE = (192, 96)  # (height, width) of each contact-sheet tile
LABEL_HEIGHT = 44


class SearchError(ValueError):
    """A query the search cannot answer; the message says why (printed without a traceback)."""


@dataclass(frozen=True)
class Appearance:
    """One row of the answer."""

    rank: int
    global_id: int
    camera: str
    track: int
    t_first: float
    t_last: float
    score: float | None
    thumbnail: str

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def read_query_crop(path: Path) -> np.ndarray:
    """A BGR crop that could show a person; a clear error names the file and the problem."""
    if not path.is_file():
        raise SearchError(f"query image {path} does not exist")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SearchError(f"query image {path} cannot be read as an image")
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise SearchError(f"query image {path} is {width}×{height} px: too small for a person")
    if not ASPECT_RANGE[0] <= height / width <= ASPECT_RANGE[1]:
        raise SearchError(
            f"query image {path} is {width}×{height} px: not a person crop (height/width "
            f"{height / width:.2f}, expected {ASPECT_RANGE[0]}–{ASPECT_RANGE[1]}); crop the person"
        )
    if float(image.std()) < MIN_PIXEL_STD:
        raise SearchError(f"query image {path} is nearly uniform: no person-like content")
    return image


def search_images(args: argparse.Namespace, gallery, embedder) -> tuple[list[Appearance], dict]:
    """Rank the gallery's tracklets for the query crops; returns rows and what the sheet needs."""
    from stream.gallery.pooling import RunningAppearance
    from stream.worker_config import TrackletConfig

    crops = [read_query_crop(Path(p)) for p in args.image]
    features = embedder.embed(crops)
    # several crops of the person are pooled as the worker pools a tracklet's crops
    query = RunningAppearance(embedder.dim, embedder.num_parts, TrackletConfig().outlier_distance)
    query.add_features(features)
    hits = gallery.search(
        query.appearance(),
        limit=args.top_k,
        camera=args.camera,
        since=args.since,
        until=args.until,
        rerank=args.distance == "occlusion-aware",
    )
    rows = [
        Appearance(
            rank,
            hit.record.global_id,
            hit.record.camera,
            hit.record.track,
            hit.record.t_first,
            hit.record.t_last,
            hit.distance,
            hit.record.thumbnail,
        )
        for rank, hit in enumerate(hits, start=1)
    ]
    return rows, {"crops": crops, "features": features}


def search_global_id(args: argparse.Namespace, gallery) -> list[Appearance]:
    """Every appearance of one identity across cameras, in time order (filters apply)."""
    records = [
        r
        for r in gallery.records_of(args.global_id)
        if (args.camera is None or r.camera == args.camera)
        and (args.since is None or r.t_last >= args.since)
        and (args.until is None or r.t_first <= args.until)
    ]
    if not records:
        raise SearchError(f"no appearance of global id {args.global_id} in the gallery")
    return [
        Appearance(
            rank, r.global_id, r.camera, r.track, r.t_first, r.t_last, r.match_score, r.thumbnail
        )
        for rank, r in enumerate(records[: args.top_k], start=1)
    ]


def _tile(image: np.ndarray | None, lines: list[str], colour: tuple[int, int, int]) -> np.ndarray:
    height, width = THUMB_SIZE
    tile = np.full((height + LABEL_HEIGHT, width, 3), 255, dtype=np.uint8)
    if image is None:
        tile[:height] = 200
        cv2.putText(tile, "no thumbnail", (4, height // 2), 0, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    else:
        tile[:height] = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    cv2.rectangle(tile, (0, 0), (width - 1, height - 1), colour, 3)
    for index, line in enumerate(lines):
        origin = (3, height + 13 + 14 * index)
        cv2.putText(tile, line, origin, 0, 0.38, (20, 20, 20), 1, cv2.LINE_AA)
    return tile


def contact_sheet(rows: list[Appearance], query: dict | None, out: Path) -> Path:
    """Query (with its part map for an image query) then the ranked thumbnails, in one PNG."""
    from reid_core.viz import draw_row

    tiles = [
        _tile(
            cv2.imread(row.thumbnail) if row.thumbnail else None,
            [
                f"#{row.rank} id {row.global_id} {row.camera}",
                f"t {row.t_first:.1f}-{row.t_last:.1f}s",
                "" if row.score is None else f"d {row.score:.3f}",
            ],
            (60, 160, 60),
        )
        for row in rows
    ]
    strip = np.hstack(tiles) if tiles else np.zeros((0, 0, 3), np.uint8)
    panels = []
    if query is not None:
        query_panel = draw_row(query["crops"][0], query["features"][0])
        scale = (THUMB_SIZE[0] + LABEL_HEIGHT) / query_panel.shape[0]
        panels.append(cv2.resize(query_panel, None, fx=scale, fy=scale))
    panels.append(strip)
    height = max(p.shape[0] for p in panels)
    padded = [
        np.pad(p, ((0, height - p.shape[0]), (0, 8), (0, 0)), constant_values=255) for p in panels
    ]
    sheet = np.hstack(padded)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet):
        raise SearchError(f"could not write the contact sheet {out}")
    return out


def _open(args: argparse.Namespace):
    """(gallery, embedder) for the query: the model comes from --model or the gallery's
    manifest; the gallery is opened with that model's feature sizes."""
    from reid_core.runtime.embedder import EmbedderConfig, runtime_for
    from stream.gallery import Gallery, GalleryConfig, GalleryError, read_manifest

    manifest = read_manifest(Path(args.gallery)) if args.gallery else None
    location = {"path": Path(args.gallery)} if args.gallery else {"url": args.url}
    if args.gallery and not Path(args.gallery).is_dir():
        raise SearchError(
            f"gallery folder {args.gallery} does not exist (a `stream run` writes one)"
        )
    if args.model:
        runtime = args.runtime or runtime_for(args.model)
        embedder_config = EmbedderConfig(runtime=runtime, model=Path(args.model))
    elif manifest is not None:
        embedder_config = manifest.embedder
    elif args.gallery:
        raise SearchError("this gallery names no model (no manifest): give --model")
    else:  # a server gallery keeps no manifest: the shipped model, as `stream run` defaults to
        embedder_config = EmbedderConfig(runtime=args.runtime or "onnxruntime")
    try:  # also for a global-id query: the model knows the vector sizes
        embedder = embedder_config.open()
    except (FileNotFoundError, ValueError) as error:  # a missing, foreign or altered model
        raise SearchError(str(error)) from None
    sizes = {"vector_size": embedder.dim, "num_parts": embedder.num_parts}
    settings = (
        manifest.gallery.model_dump(exclude={"path", "url", "vector_size", "num_parts"})
        if manifest
        else {}
    )
    try:
        gallery = Gallery.open(GalleryConfig(**{**settings, **location, **sizes}))
    except GalleryError as error:
        raise SearchError(str(error)) from None
    if len(gallery) == 0:
        gallery.close()
        raise SearchError(f"the gallery {gallery.config.location} is empty: nothing to search")
    return gallery, embedder


def run_search(args: argparse.Namespace) -> list[Appearance]:
    gallery, embedder = _open(args)
    with gallery:
        if args.image:
            rows, query = search_images(args, gallery, embedder)
        else:
            rows, query = search_global_id(args, gallery), None
    if args.out:
        contact_sheet(rows, query, Path(args.out))
    return rows


def print_rows(rows: list[Appearance], as_json: bool) -> None:
    if as_json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="cross-camera appearances")
    for column in (
        "rank",
        "global id",
        "camera",
        "track",
        "first (s)",
        "last (s)",
        "score",
        "thumbnail",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.rank),
            str(row.global_id),
            row.camera,
            str(row.track),
            f"{row.t_first:.2f}",
            f"{row.t_last:.2f}",
            "-" if row.score is None else f"{row.score:.3f}",
            row.thumbnail or "-",
        )
    Console().print(table)


def _handle(args: argparse.Namespace) -> int:
    rows = run_search(args)
    print_rows(rows, args.json)
    if args.out:
        print(f"contact sheet: {args.out}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="find a person's appearances across cameras in a gallery",
        description="Search the identity gallery of a `stream run` with query crops of a person "
        "(embedded with the gallery's own model, re-ranked by the occlusion-aware part distance) "
        "or list every appearance of a global id in time order.",
    )
    query = parser.add_mutually_exclusive_group(required=True)
    query.add_argument("--image", nargs="+", metavar="PATH", help="crop(s) of one person")
    query.add_argument("--global-id", type=int, help="every appearance of this identity")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--gallery", help="embedded gallery folder (RUN/gallery)")
    where.add_argument("--url", help="Qdrant server URL (API key: QDRANT_API_KEY)")
    parser.add_argument(
        "--model",
        help="checkpoint or ONNX (default: the gallery's manifest, else the shipped model)",
    )
    parser.add_argument(
        "--runtime",
        choices=["torch", "onnxruntime"],
        help="default: onnxruntime for an .onnx --model or the shipped model, else torch",
    )
    parser.add_argument("--camera", help="only appearances on this camera")
    parser.add_argument("--since", type=float, help="only appearances seen at or after T (s)")
    parser.add_argument("--until", type=float, help="only appearances seen at or before T (s)")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument(
        "--distance", choices=["global", "occlusion-aware"], default="occlusion-aware"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--out", help="write a contact sheet PNG here")
    parser.set_defaults(handler=_handle)
