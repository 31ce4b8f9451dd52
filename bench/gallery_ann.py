"""Can the embedded gallery search approximately? Qdrant Edge's HNSW index on vectors shaped like
the shipped model's embeddings: recall@20 against the exact search, and latency, at 100k and 1M.

Vectors: the shipped model's global features of real rendered crops (the release set's test
identities, never trained on), and around each of them new sightings drawn with the measured
within-identity spread (per dimension, of unit vectors around their identity's mean) — the
structure a gallery of tracklets has, unlike uniform random vectors (on which HNSW recall was
0.15–0.68 at 100k, NOTES). The gallery holds sightings of ``size / 4`` identities (4 tracklets
each, on 8 cameras over an hour); a query is a new sighting of a stored identity with the
matcher's filter (another camera, seen in the last half hour). Per size: exact search, then
``shard.optimize()`` builds the HNSW index (m 16, ef_construct 100) and the same queries run
approximately at several ``hnsw_ef``; recall@20 = the share of the exact top-20 found, and
how often the exact nearest is among the approximate 20 (what a match decision rests on).

    python bench/gallery_ann.py [--sizes 100000 1000000] [--data data/release-5000ids-8cams-tex]

Writes gallery_ann.json under --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TIMELINE_S = 3600.0
WINDOW_S = 1800.0
CAMERAS = 8
TOP = 20


def real_embeddings(data: Path, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit global features of up to ``limit`` test crops of the release set and their ids."""
    from reid_core.runtime import EmbedderConfig
    from trainer.data import build_dataset
    from trainer.viz import read_crops

    records = build_dataset("synthetic", data).gallery
    records = [r for r in records if r.pid > 0][:limit]
    embedder = EmbedderConfig(runtime="onnxruntime").open()
    rows = []
    for start in range(0, len(records), 256):
        batch = records[start : start + 256]
        rows.append(embedder.embed(read_crops([r.path for r in batch])).global_features.numpy())
    vectors = np.concatenate(rows)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, np.array([r.pid for r in records])


def spread(vectors: np.ndarray, pids: np.ndarray) -> np.ndarray:
    """Per-dimension std of unit vectors around their identity's mean."""
    residuals = [vectors[pids == p] - vectors[pids == p].mean(0) for p in np.unique(pids)]
    return np.concatenate(residuals).std(0)


def sightings(base: np.ndarray, sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = base + rng.standard_normal(base.shape).astype(np.float32) * sigma
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def build_shard(folder: Path, vectors: np.ndarray, cameras: np.ndarray, t_last: np.ndarray):
    import qdrant_edge as qe

    from stream.gallery.edge import CACHED, EDGE_INDEX_SCHEMAS

    config = qe.EdgeConfig(
        vectors={
            "g": qe.EdgeVectorParams(
                size=vectors.shape[1],
                distance=qe.Distance.Cosine,
                datatype=qe.VectorStorageDatatype.Float16,
                memory=CACHED,
            )
        },
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000),
        payload_memory=CACHED,
    )
    shard = qe.EdgeShard.create(str(folder), config)
    for field, kind in (("camera", "integer"), ("t_last", "float")):
        shard.update(qe.UpdateOperation.create_field_index(field, EDGE_INDEX_SCHEMAS[kind]))
    for start in range(0, len(vectors), 2000):
        points = [
            qe.Point(
                i,
                {"g": vectors[i].tolist()},
                {"camera": int(cameras[i]), "t_last": float(t_last[i])},
            )
            for i in range(start, min(start + 2000, len(vectors)))
        ]
        shard.update(qe.UpdateOperation.upsert_points(points))
    return shard


def search(shard, query: np.ndarray, camera: int, exact: bool, ef: int | None) -> list[int]:
    import qdrant_edge as qe

    where = qe.Filter(
        must=[qe.FieldCondition(key="t_last", range=qe.RangeFloat(gte=TIMELINE_S - WINDOW_S))],
        must_not=[qe.FieldCondition(key="camera", match=qe.MatchValue(camera))],
    )
    request = qe.QueryRequest(
        limit=TOP,
        query=qe.Query.Nearest(query.tolist(), using="g"),
        filter=where,
        with_vector=False,
        with_payload=False,
        params=qe.SearchParams(exact=exact, hnsw_ef=ef),
    )
    return [int(hit.id) for hit in shard.query(request)]


def timed_queries(shard, queries, cameras, exact: bool, ef: int | None):
    answers, seconds = [], []
    for query, camera in zip(queries, cameras, strict=True):
        started = time.perf_counter()
        answers.append(search(shard, query, int(camera), exact, ef))
        seconds.append(time.perf_counter() - started)
    ms = 1e3 * np.array(seconds)
    return answers, {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def measure(size: int, base: np.ndarray, sigma: np.ndarray, args, workdir: Path) -> dict:
    rng = np.random.default_rng(size)
    identities = base[rng.integers(0, len(base), max(size // 4, 1))]
    # an identity's own centre: a real embedding moved by one sighting's noise
    identities = sightings(identities, sigma, rng)
    owner = rng.integers(0, len(identities), size)
    vectors = sightings(identities[owner], sigma, rng)
    cameras = rng.integers(0, CAMERAS, size)
    t_last = rng.uniform(0.0, TIMELINE_S, size)
    started = time.perf_counter()
    shard = build_shard(workdir / f"ann-{size}", vectors, cameras, t_last)
    result: dict = {"tracklets": size, "upsert_s": time.perf_counter() - started}
    query_owner = rng.integers(0, len(identities), args.queries)
    queries = sightings(identities[query_owner], sigma, rng)
    query_cameras = rng.integers(0, CAMERAS, args.queries)
    exact, result["exact"] = timed_queries(shard, queries, query_cameras, True, None)
    started = time.perf_counter()
    shard.optimize()
    result["optimize_s"] = time.perf_counter() - started
    result["segments"] = str(shard.info())[:300]
    for ef in args.ef:
        found, timing = timed_queries(shard, queries, query_cameras, False, ef)
        pairs = list(zip(found, exact, strict=True))
        recall = np.mean([len(set(a) & set(e)) / max(len(e), 1) for a, e in pairs])
        # what the matcher's decision rests on: the exact nearest among the candidates it sees
        nearest = np.mean([not e or e[0] in a for a, e in pairs])
        result[f"hnsw_ef{ef}"] = {
            **timing,
            "recall_at_20": float(recall),
            "nearest_found": float(nearest),
        }
    _, result["exact_after_optimize"] = timed_queries(shard, queries, query_cameras, True, None)
    shard.close()
    return result


def main() -> int:
    from reid_core.runtime.embedder import ensure_malloc_env

    ensure_malloc_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--data", type=Path, default=ROOT / "data/release-5000ids-8cams-tex")
    parser.add_argument("--real", type=int, default=10_000, help="real embeddings to start from")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--out", type=Path, default=ROOT / "runs/bench/gallery_ann")
    args = parser.parse_args()
    base, pids = real_embeddings(args.data, args.real)
    sigma = spread(base, pids)
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="ann-", dir=args.out))
    results = {
        "real_embeddings": len(base),
        "identities": int(len(np.unique(pids))),
        "within_identity_spread_rms": float(np.sqrt((sigma**2).sum())),
        "sizes": [],
    }
    try:
        for size in args.sizes:
            results["sizes"].append(measure(size, base, sigma, args, workdir))
            (args.out / "gallery_ann.json").write_text(json.dumps(results, indent=2) + "\n")
            print(json.dumps(results["sizes"][-1], indent=1), flush=True)
    finally:
        shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
