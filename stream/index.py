"""`stream index --gallery RUN/gallery`: build an embedded gallery's HNSW index, offline.

An Edge shard searches exactly until its index is built; past ~100k tracklets the exact search
outgrows the 20 ms decision budget (322 ms p95 at 1M on 2 cores) while the index answers in
3–13 ms with recall@20 1.00 on the shipped model's embeddings (bench/gallery_ann.py), and the
whole match decision in 6.8 ms p95 (bench/gallery_speed.py --index). Building it takes 10 s at
100k and 33 min at 1M tracklets on 2 cores, so it is a maintenance step between runs
(the gallery must not be open in a worker: Edge locks it); the workers then search it with
``gallery.exact: false`` (``gallery.hnsw_ef`` the breadth). New tracklets go to a segment the
index does not cover yet, searched exactly, until the next `stream index`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def build_gallery_index(folder: Path) -> dict[str, Any]:
    """Index the Edge gallery in ``folder`` (a `stream run` gallery: its manifest names the
    collection); returns what was done."""
    from stream.gallery import GalleryError, read_manifest
    from stream.gallery.config import GalleryConfig
    from stream.gallery.edge import EdgeBackend

    if not folder.is_dir():
        raise GalleryError(f"gallery folder {folder} does not exist (a `stream run` writes one)")
    manifest = read_manifest(folder)
    collection = (
        manifest.gallery.collection
        if manifest
        else GalleryConfig.model_fields["collection"].default
    )
    backend = EdgeBackend(folder / collection)
    try:
        points = backend.count()
        started = time.perf_counter()
        backend.build_index()
        seconds = time.perf_counter() - started
        return {"points": points, "seconds": seconds, "indexed_share": backend.indexed_share()}
    finally:
        backend.close()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "index",
        help="build an embedded gallery's HNSW index between runs (large galleries)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--gallery", type=Path, required=True, help="RUN/gallery folder")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    done = build_gallery_index(args.gallery)
    print(
        f"indexed {done['points']:,} tracklets of {args.gallery} in {done['seconds']:.1f} s "
        f"({100 * done['indexed_share']:.0f} % of the vectors); search it approximately with "
        "gallery.exact=false"
    )
    return 0
