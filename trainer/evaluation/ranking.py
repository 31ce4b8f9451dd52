"""Rank-k CMC, mAP and mINP under the Market-1501 protocol (SPEC §3, §8 `evaluate_rankings`).

Protocol, per query q with identity p and camera c:
  * gallery entries of identity -1 (junk) are ignored, as if absent;
  * gallery entries of identity p taken by camera c are ignored (same view, trivially easy);
  * the remaining entries of identity p are the true matches; identity 0 (distractors) never
    matches, so a query of identity 0 or -1 has no true match;
  * a query with no true match is skipped and counted in `num_skipped_queries`.
Per valid query: CMC(r) = 1 if a true match is within the first r kept entries; AP = mean over
true matches j (ranked r_1 < ... < r_n) of j / r_j; INP = n / r_n (Ye et al., AGW, TPAMI 2021).
Ranks break distance ties by gallery index (a stable sort), so the numbers are deterministic.

Why it is fast: every metric depends only on the ranks of the true matches, and a true match's
rank only depends on the kept entries no farther than the query's hardest (farthest) match.
So instead of sorting the whole gallery for every query (what the per-query reference in
`trainer.evaluation.reference` does), each chunk of queries sorts only those candidates, in
[rows, width] blocks. The cost follows the depth of the hardest match: for a trained model a
few percent of the gallery, for a useless one all of it (then as slow as the reference).
Distances come from torch (any device); the ranking runs in NumPy, which on the project's CPU
was 3-8x faster than torch for these masks, gathers and small sorts (and does not contend for
threads), see bench/eval_speed.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from rich.progress import track

JUNK_PID = -1
DISTRACTOR_PID = 0
# Default chunk: this many query×gallery distances at once (~64 MiB as float32); the working
# set of one chunk is a few times that, whatever the gallery size.
CHUNK_ENTRIES = 1 << 24

ArrayLike = np.ndarray | torch.Tensor | Sequence[int]


class Sliceable(Protocol):
    """Anything with a length that slices along its first axis (tensor, array, ReIDFeatures)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice) -> Any: ...


QueryT = TypeVar("QueryT", bound=Sliceable)
GalleryT = TypeVar("GalleryT", bound=Sliceable)
DistanceFn = Callable[[QueryT, GalleryT], torch.Tensor | np.ndarray]


def expand_runs(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unroll runs [starts[i], starts[i] + counts[i]) of a flat array (CSR-style rows): the run
    number and the flat position of every element, runs laid end to end."""
    owner = np.repeat(np.arange(len(counts)), counts)
    first_of_run = np.repeat(np.cumsum(counts) - counts, counts)
    return owner, starts[owner] + np.arange(len(owner)) - first_of_run


@dataclass(frozen=True)
class IdentityIndex:
    """Gallery entries grouped by identity (CSR-like), to list a query's same-identity entries
    without scanning the gallery."""

    order: np.ndarray  # gallery indices sorted by identity (stable)
    pids: np.ndarray  # sorted distinct gallery identities
    starts: np.ndarray  # offset of each identity's run in `order`
    counts: np.ndarray  # length of each identity's run

    @classmethod
    def build(cls, g_pids: np.ndarray) -> IdentityIndex:
        order = np.argsort(g_pids, kind="stable")
        pids, starts, counts = np.unique(g_pids[order], return_index=True, return_counts=True)
        return cls(order, pids, starts, counts)

    def entries(self, pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All (i, gallery index) pairs with g_pids[gallery index] == pids[i]."""
        if not len(self.pids):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        position = np.minimum(np.searchsorted(self.pids, pids), len(self.pids) - 1)
        count = np.where(self.pids[position] == pids, self.counts[position], 0)
        item, slot = expand_runs(self.starts[position], count)
        return item, self.order[slot]


@dataclass(frozen=True)
class ProtocolLabels:
    """Identities and cameras of the query and gallery sets, as int64 NumPy arrays."""

    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray

    @classmethod
    def from_arrays(
        cls, q_pids: ArrayLike, g_pids: ArrayLike, q_camids: ArrayLike, g_camids: ArrayLike
    ) -> ProtocolLabels:
        """Validate the four label arrays (1-D, integer, matching lengths, pids >= -1)."""
        named = {"q_pids": q_pids, "g_pids": g_pids, "q_camids": q_camids, "g_camids": g_camids}
        arrays = {name: _as_label_array(value, name) for name, value in named.items()}
        for side in ("q", "g"):
            pids, cams = arrays[f"{side}_pids"], arrays[f"{side}_camids"]
            if len(pids) != len(cams):
                raise ValueError(
                    f"{side}_pids has {len(pids)} entries but {side}_camids has {len(cams)}"
                )
            if len(pids) and pids.min() < JUNK_PID:
                raise ValueError(
                    f"{side}_pids holds {pids.min()}; identities must be >= -1 "
                    "(-1 = junk, 0 = distractor, Market-1501 convention)"
                )
        return cls(**arrays)

    @property
    def num_query(self) -> int:
        return len(self.q_pids)

    @property
    def num_gallery(self) -> int:
        return len(self.g_pids)

    @cached_property
    def gallery_index(self) -> IdentityIndex:
        return IdentityIndex.build(self.g_pids)

    @cached_property
    def junk_columns(self) -> np.ndarray:
        return np.flatnonzero(self.g_pids == JUNK_PID)

    def same_identity_pairs(self, rows: range) -> dict[str, np.ndarray]:
        """Every (query row within `rows`, gallery index) pair of equal identity, with the
        protocol's `kept` and `match` flags: the only pairs where the protocol is not decided
        by the gallery entry alone."""
        q_pids = self.q_pids[rows.start : rows.stop]
        q_camids = self.q_camids[rows.start : rows.stop]
        row, col = self.gallery_index.entries(q_pids)
        kept, match = protocol_flags(
            q_pids[row], q_camids[row], self.g_pids[col], self.g_camids[col]
        )
        return {"row": row, "col": col, "kept": kept, "match": match}


def _as_label_array(values: ArrayLike, name: str) -> np.ndarray:
    array = (
        values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    )
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    return array.astype(np.int64)


def protocol_flags(
    q_pids: np.ndarray, q_camids: np.ndarray, g_pids: np.ndarray, g_camids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, true match) flags of the Market protocol for broadcastable query/gallery labels.

    kept: the gallery entry takes part in the ranking (not junk, not same identity and camera);
    true match: kept and of the query's identity, the query being neither junk nor distractor.
    """
    same_id = g_pids == q_pids
    same_cam = g_camids == q_camids
    kept = ~(same_id & same_cam) & (g_pids != JUNK_PID)
    # A query pid > 0 equal to a gallery pid is neither junk nor a distractor.
    match = same_id & ~same_cam & (q_pids > DISTRACTOR_PID)
    return kept, match


def _check_finite(dist: np.ndarray) -> None:
    # One cheap reduction first; the exact scan only runs when the sum is not finite.
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(dist.sum()):
            return
    if not np.isfinite(dist).all():
        raise ValueError("distances contain NaN or infinite values; cannot rank them")


def match_ranks(
    dist: np.ndarray, labels: ProtocolLabels, rows: range
) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of the true matches of queries `rows` (C-contiguous distances `dist` [q, G]).

    Returns `num_matches` [q] and `ranks` [q, M] (1-based ranks among the kept gallery entries,
    ascending per row, 0 where a row has fewer than M matches). Only kept entries no farther
    than the query's hardest match can precede a match, so only those candidates are sorted
    (module docstring).
    """
    _check_finite(dist)
    num_rows, num_gallery = dist.shape
    pairs = labels.same_identity_pairs(rows)
    match_row, match_col = pairs["row"][pairs["match"]], pairs["col"][pairs["match"]]
    num_matches = np.bincount(match_row, minlength=num_rows)
    hardest = np.full(num_rows, -np.inf, dtype=dist.dtype)
    np.maximum.at(hardest, match_row, dist[match_row, match_col])
    candidate = dist <= hardest[:, None]
    candidate[:, labels.junk_columns] = False
    candidate[pairs["row"][~pairs["kept"]], pairs["col"][~pairs["kept"]]] = False
    # Candidates as flat indices row * G + col: row-major, so column order within a row.
    flat = np.flatnonzero(candidate)
    row_start = np.searchsorted(flat, np.arange(num_rows + 1) * num_gallery)
    num_candidates = np.diff(row_start)
    match_slot = np.searchsorted(flat, match_row * num_gallery + match_col) - row_start[match_row]

    # Sort each row's candidates in a [rows, width] block, rows grouped by the next power of two
    # of their candidate count (padding at most doubles the work). A row keeping more than half
    # the gallery would cost a full sort: its match ranks are counted instead (O(n log matches)).
    ranks = np.zeros((num_rows, num_matches.max(initial=0)), dtype=np.int64)
    width = 2 ** np.ceil(np.log2(np.maximum(num_candidates, 1))).astype(np.int64)
    counted = (num_candidates > 0) & (2 * width > num_gallery)
    width[(num_candidates == 0) | counted] = 0
    for class_width in np.unique(width[width > 0]):
        class_rows = np.flatnonzero(width == class_width)
        slots = np.arange(class_width)
        entry = np.minimum(row_start[class_rows, None] + slots, len(flat) - 1)
        in_row = slots < num_candidates[class_rows, None]
        block = np.where(in_row, dist.ravel()[flat[entry]], np.inf)
        local_row = np.full(num_rows, -1)
        local_row[class_rows] = np.arange(len(class_rows))
        in_class = local_row[match_row] >= 0
        block_match = np.zeros(block.shape, dtype=bool)
        block_match[local_row[match_row[in_class]], match_slot[in_class]] = True
        order = np.argsort(block, axis=1, kind="stable")
        row_of_match, position = np.nonzero(np.take_along_axis(block_match, order, axis=1))
        nth = np.arange(len(row_of_match)) - np.searchsorted(row_of_match, row_of_match)
        ranks[class_rows[row_of_match], nth] = position + 1
    match_start = np.searchsorted(match_row, np.arange(num_rows + 1))  # pairs come row by row
    for row in np.flatnonzero(counted):
        cols = flat[row_start[row] : row_start[row + 1]] - row * num_gallery
        own_cols = match_col[match_start[row] : match_start[row + 1]]
        ranks[row, : len(own_cols)] = _ranks_by_counting(
            dist[row, cols], cols, dist[row, own_cols], own_cols
        )
    return num_matches, ranks


def _ranks_by_counting(
    values: np.ndarray, cols: np.ndarray, match_values: np.ndarray, match_cols: np.ndarray
) -> np.ndarray:
    """Ascending ranks of the matches among one row's candidates (matches included), in
    (distance, gallery index) order, without sorting the candidates: each candidate falls in the
    bucket b = number of matches before it, and match j's rank is the count of buckets <= j."""
    order = np.lexsort((match_cols, match_values))
    sorted_values, sorted_cols = match_values[order], match_cols[order]
    bucket = np.searchsorted(sorted_values, values, side="left")
    tie_end = np.searchsorted(sorted_values, values, side="right")
    tied = np.flatnonzero(bucket < tie_end)  # equal to some match's distance: compare indices
    first, last = bucket[tied], tie_end[tied]
    for step in range(int((last - first).max(initial=0))):
        position = np.minimum(first + step, len(sorted_cols) - 1)
        bucket[tied] += (first + step < last) & (sorted_cols[position] < cols[tied])
    return np.cumsum(np.bincount(bucket, minlength=len(order) + 1))[: len(order)]


@dataclass(frozen=True)
class QueryMetrics:
    """Per-query results of the valid queries of one chunk, in query order."""

    first_match_rank: np.ndarray  # int64, rank of the easiest true match
    average_precision: np.ndarray  # float64
    inverse_negative_penalty: np.ndarray  # float64, INP = matches / rank of the hardest match
    num_skipped: int

    @classmethod
    def from_ranks(cls, num_matches: np.ndarray, ranks: np.ndarray) -> QueryMetrics:
        """AP and INP from the ranks of the true matches (module docstring).

        AP sums the precisions j / r_j sequentially in rank order (a cumulative sum, not NumPy's
        pairwise sum), so padding zeros and chunking cannot change a single bit of the result.
        """
        valid = num_matches > 0
        count, ranks = num_matches[valid], ranks[valid]
        if not len(count):
            empty_float = np.zeros(0, dtype=np.float64)
            return cls(np.zeros(0, dtype=np.int64), empty_float, empty_float, int((~valid).sum()))
        nth = np.arange(1, ranks.shape[1] + 1)
        precision = np.divide(nth, ranks, out=np.zeros(ranks.shape), where=ranks > 0)
        average_precision = np.cumsum(precision, axis=1)[:, -1] / count
        hardest_rank = ranks[np.arange(len(count)), count - 1]
        return cls(ranks[:, 0], average_precision, count / hardest_rank, int((~valid).sum()))

    @classmethod
    def concatenate(cls, parts: Sequence[QueryMetrics]) -> QueryMetrics:
        return cls(
            np.concatenate([p.first_match_rank for p in parts]),
            np.concatenate([p.average_precision for p in parts]),
            np.concatenate([p.inverse_negative_penalty for p in parts]),
            sum(p.num_skipped for p in parts),
        )

    def summary(self, max_rank: int) -> dict[str, Any]:
        """The `evaluate_rankings` dict: CMC over ranks 1..max_rank, mAP, mINP, query counts."""
        num_valid = len(self.first_match_rank)
        if num_valid == 0:
            raise ValueError(
                f"no query has a true match in the gallery (all {self.num_skipped} skipped): "
                "check that query and gallery identities overlap and that cameras differ"
            )
        hits = self.first_match_rank[:, None] <= np.arange(1, max_rank + 1)[None, :]
        return {
            "cmc": hits.sum(axis=0) / num_valid,
            "mAP": float(np.mean(self.average_precision)),
            "mINP": float(np.mean(self.inverse_negative_penalty)),
            "num_valid_queries": num_valid,
            "num_skipped_queries": self.num_skipped,
        }


def _as_distances(values: torch.Tensor | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A C-contiguous float NumPy block of distances, checked against the expected shape."""
    if isinstance(values, torch.Tensor):
        if values.dtype == torch.bfloat16:
            values = values.float()  # exact; NumPy has no bfloat16
        values = values.detach().cpu().numpy()
    if not isinstance(values, np.ndarray):
        raise TypeError(f"distances must be a numpy array or torch tensor, got {type(values)}")
    if values.shape != shape:
        raise ValueError(f"distance matrix has shape {values.shape}, expected {shape}")
    if not np.issubdtype(values.dtype, np.floating):
        return values.astype(np.float64)  # exact for integer distances
    return np.ascontiguousarray(values)


def _check_max_rank(max_rank: int) -> None:
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")


def _chunk_bounds(num_query: int, num_gallery: int, chunk_size: int | None) -> list[range]:
    size = chunk_size if chunk_size is not None else max(1, CHUNK_ENTRIES // max(1, num_gallery))
    if size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [range(start, min(start + size, num_query)) for start in range(0, num_query, size)]


def _progress(items: list[range], description: str, show: bool) -> Iterable[range]:
    return track(items, description=description, transient=True, disable=not show or len(items) < 2)


def _distance_blocks(
    query: QueryT,
    gallery: GalleryT,
    distance_fn: DistanceFn,
    num_gallery: int,
    chunk_size: int | None,
    description: str,
    show_progress: bool,
) -> Iterator[tuple[range, np.ndarray]]:
    """Yield (query rows, [q, G] distances) chunk by chunk: never the whole Q×G matrix."""
    for rows in _progress(
        _chunk_bounds(len(query), num_gallery, chunk_size), description, show_progress
    ):
        block = distance_fn(query[rows.start : rows.stop], gallery)
        yield rows, _as_distances(block, (len(rows), num_gallery))


def _evaluate_blocks(
    blocks: Iterable[tuple[range, np.ndarray]], labels: ProtocolLabels, max_rank: int
) -> dict[str, Any]:
    parts = [QueryMetrics.from_ranks(*match_ranks(dist, labels, rows)) for rows, dist in blocks]
    if not parts:
        raise ValueError("the query set is empty")
    return QueryMetrics.concatenate(parts).summary(max_rank)


def evaluate_rankings(
    distmat: np.ndarray | torch.Tensor,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 10,
    chunk_size: int | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """CMC / mAP / mINP of a [Q, G] distance matrix under the Market protocol (SPEC §8).

    Returns {"cmc": float64 array, CMC at ranks 1..max_rank; "mAP"; "mINP";
    "num_valid_queries"; "num_skipped_queries"}. NumPy or torch input (any device); the
    queries are processed `chunk_size` rows at a time (default: ~16M distances per chunk), and
    the numbers do not depend on the chunking.
    """
    _check_max_rank(max_rank)
    labels = ProtocolLabels.from_arrays(q_pids, g_pids, q_camids, g_camids)
    shape = (labels.num_query, labels.num_gallery)
    if tuple(distmat.shape) != shape:
        raise ValueError(
            f"distmat has shape {tuple(distmat.shape)} but there are {shape[0]} query and "
            f"{shape[1]} gallery labels"
        )
    blocks = (
        (rows, _as_distances(distmat[rows.start : rows.stop], (len(rows), shape[1])))
        for rows in _progress(
            _chunk_bounds(shape[0], shape[1], chunk_size), "Ranking", show_progress
        )
    )
    return _evaluate_blocks(blocks, labels, max_rank)


def evaluate_features(
    query: QueryT,
    gallery: GalleryT,
    distance_fn: DistanceFn,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 10,
    chunk_size: int | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """`evaluate_rankings` straight from features, one chunk of queries at a time (SPEC §3).

    `distance_fn(query[i:j], gallery) -> [j - i, G]` (e.g. `reid_core.global_distance` on
    `ReIDFeatures`); `query` is anything that slices along its first axis. Memory holds one
    [chunk, G] block, not the Q×G matrix: MSMT17 (11,659 × 82,161) fits in well under 4 GiB
    (bench/eval_speed.py). The numbers equal `evaluate_rankings` on the full matrix exactly
    whenever `distance_fn` computes each row independently of the others in its chunk (matmul
    kernels may change the last bit of a distance with the batch size).
    """
    _check_max_rank(max_rank)
    labels = ProtocolLabels.from_arrays(q_pids, g_pids, q_camids, g_camids)
    if len(query) != labels.num_query:
        raise ValueError(f"query has {len(query)} items but q_pids has {labels.num_query}")
    blocks = _distance_blocks(
        query, gallery, distance_fn, labels.num_gallery, chunk_size, "Ranking", show_progress
    )
    return _evaluate_blocks(blocks, labels, max_rank)


def distance_matrix(
    query: QueryT,
    gallery: GalleryT,
    distance_fn: DistanceFn,
    chunk_size: int | None = None,
    show_progress: bool = True,
) -> np.ndarray:
    """The full [Q, G] distance matrix (NumPy), computed chunk by chunk with progress.

    For what needs the whole matrix (re-ranking, ranked-list pictures of many queries); the
    metrics themselves never do.
    """
    blocks = _distance_blocks(
        query, gallery, distance_fn, len(gallery), chunk_size, "Distances", show_progress
    )
    return np.concatenate([dist for _, dist in blocks])


def occluded_protocol_camids(num_query: int, num_gallery: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera ids for Occluded-REID, Partial-REID and Partial-iLIDS (SPEC §3).

    These sets pair an occluded/partial query set with a whole-body gallery, and every gallery
    image of the query's identity is a true match: nothing is left out. Giving all queries
    camera 0 and all gallery images camera 1 makes the Market protocol of `evaluate_rankings`
    leave nothing out either, so it gives exactly that protocol's answer.
    """
    return np.zeros(num_query, dtype=np.int64), np.ones(num_gallery, dtype=np.int64)
