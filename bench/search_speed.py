"""Search speed (issue #8): `stream search` latency at 10k and 100k tracklets in the embedded
Qdrant (Edge), and the gallery size at which a Qdrant server should take over.

The gallery is filled as `bench/gallery_speed.py` fills it (512-d tracklets with identity
structure, K=10 parts, 8 cameras over one hour). Per query, p50 / p95 of what `stream search`
does after embedding its query crops (the embedding costs what `bench/embed_speed.py` measures,
the same for every gallery size):

- image query, no filter: top-k by the global vector, re-ranked by the occlusion-aware distance;
- ``--distance global``: the same without re-ranking;
- ``--camera C``: one camera of eight (passes 1/8);
- ``--since/--until`` a 10-minute window (passes ~1/5 of the hour);
- ``--camera`` and the window together (passes ~1/40);
- ``--global-id N``: every appearance of one identity, in time order.

Each `stream search` is also a process that opens the gallery: the open time (a fresh process,
import excluded) is measured beside it. Then the size at which a server should take over: the
p95 of the slowest image query grows linearly with the gallery (an exact scan); the fitted line
says where it crosses the matcher's 20 ms target (SPEC §7) and an interactive 100 ms.

Run: ``python bench/search_speed.py [--sizes 10000 100000] [--queries 200]`` (writes JSON and
a PNG under --out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gallery_speed import (  # noqa: E402  (the sibling bench script: one gallery generator)
    TIMELINE_S,
    bench_parser,
    build,
    make_world,
    percentiles,
    reopen,
    run_sizes,
)

from stream.gallery import Appearance, Gallery, GalleryConfig  # noqa: E402

TOP_K = 10
WINDOW_S = 600.0
MATCH_TARGET_MS = 20.0
INTERACTIVE_MS = 100.0
QUERY_KINDS = {
    "image": "image query, re-ranked",
    "image_global": "image query, --distance global",
    "camera": "--camera",
    "window": "--since/--until (10 min)",
    "camera_window": "--camera + window",
    "global_id": "--global-id (listing)",
}


def measure_size(size: int, args: argparse.Namespace, workdir: Path, progress: Progress) -> dict:
    world = make_world(size, args)
    rng, identities = world.rng, len(world.global_centres)
    config = GalleryConfig(
        path=workdir / f"gallery-{size}",
        vector_size=args.dim,
        num_parts=args.parts,
        durability="wal",
    )
    result: dict = {"tracklets": size, "load_before": os.getloadavg()[0]}
    with Gallery.open(config) as gallery:
        build(gallery, world, size, progress)

    query_identities = rng.integers(0, identities, args.queries)
    g, parts, visibility = world.sightings(query_identities)
    queries = [
        Appearance(global_vector=g[q], part_vectors=parts[q], visibility=visibility[q])
        for q in range(args.queries)
    ]
    cameras = [f"cam-{c}" for c in rng.integers(0, args.cameras, args.queries)]
    since = rng.uniform(0.0, TIMELINE_S - WINDOW_S, args.queries)
    searches = {
        "image": lambda q, gallery: gallery.search(queries[q], TOP_K),
        "image_global": lambda q, gallery: gallery.search(queries[q], TOP_K, rerank=False),
        "camera": lambda q, gallery: gallery.search(queries[q], TOP_K, camera=cameras[q]),
        "window": lambda q, gallery: gallery.search(
            queries[q], TOP_K, since=since[q], until=since[q] + WINDOW_S
        ),
        "camera_window": lambda q, gallery: gallery.search(
            queries[q], TOP_K, camera=cameras[q], since=since[q], until=since[q] + WINDOW_S
        ),
        "global_id": lambda q, gallery: gallery.records_of(int(query_identities[q]) + 1),
    }
    task = progress.add_task(
        f"{args.queries} queries × {len(searches)} at {size:,}", total=len(searches) * args.queries
    )
    with Gallery.open(config) as gallery:
        for kind, search in searches.items():
            seconds, answered = [], 0
            for q in range(args.queries):
                started = time.perf_counter()
                answered += len(search(q, gallery)) > 0
                seconds.append(time.perf_counter() - started)
                progress.advance(task)
            result[kind] = percentiles(seconds) | {"answered": answered / args.queries}
    result["load_after"] = os.getloadavg()[0]
    result["open"] = reopen(config, since=0.0)
    return result


def take_over_size(results: list[dict], budget_ms: float) -> float | None:
    """Gallery size at which the slowest image query's p95 reaches ``budget_ms``, on the line
    through the measured sizes (an exact scan grows linearly); None when it never rises."""
    sizes = np.array([r["tracklets"] for r in results], dtype=float)
    p95 = np.array([max(r[k]["p95_ms"] for k in QUERY_KINDS) for r in results])
    if len(sizes) < 2:
        return None
    slope, intercept = np.polyfit(sizes, p95, 1)
    return None if slope <= 0 else max((budget_ms - intercept) / slope, 0.0)


def report(results: list[dict], out: Path, console: Console) -> None:
    table = Table(title=f"stream search latency, ms (p50 / p95), top-{TOP_K}, Qdrant Edge")
    table.add_column("query")
    for r in results:
        table.add_column(f"{r['tracklets']:,} tracklets", justify="right")
    for key, label in QUERY_KINDS.items():
        table.add_row(label, *(f"{r[key]['p50_ms']:.1f} / {r[key]['p95_ms']:.1f}" for r in results))
    table.add_row("open the gallery (s)", *(f"{r['open']['open_s']:.2f}" for r in results))
    console.print(table)
    for r in results:
        console.print(
            f"{r['tracklets']:,}: RSS after open + one search {r['open']['max_rss_mb']:.0f} MB; "
            f"CPU load {r['load_before']:.1f} → {r['load_after']:.1f} on {os.cpu_count()} cores"
        )
    summary = {
        "match_target_ms": take_over_size(results, MATCH_TARGET_MS),
        "interactive_ms": take_over_size(results, INTERACTIVE_MS),
    }
    for key, budget in (("match_target_ms", MATCH_TARGET_MS), ("interactive_ms", INTERACTIVE_MS)):
        size = summary[key]
        where = "never (it does not grow)" if size is None else f"at ~{size:,.0f} tracklets"
        console.print(f"slowest query p95 reaches {budget:.0f} ms {where} (linear fit)")
    (out / "search_speed.json").write_text(
        json.dumps({"results": results, "take_over_size": summary}, indent=2)
    )
    plot(results, out / "search_speed.png")
    console.print(f"wrote {out / 'search_speed.json'} and {out / 'search_speed.png'}")


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    sizes = [r["tracklets"] for r in results]
    for key, label in QUERY_KINDS.items():
        ax.plot(sizes, [r[key]["p95_ms"] for r in results], marker="o", label=label)
    ax.axhline(MATCH_TARGET_MS, color="red", linestyle="--", label="matcher target (p95)")
    ax.axhline(INTERACTIVE_MS, color="grey", linestyle=":", label="interactive (p95)")
    ax.set_xlabel("tracklets in the gallery")
    ax.set_ylabel("p95 ms per query")
    ax.set_title("stream search on Qdrant Edge (exact search)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__.split("\n\n")[0], Path("runs/bench/search_speed"))
    run_sizes(parser.parse_args(argv), measure_size, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
