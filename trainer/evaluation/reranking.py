"""k-reciprocal re-ranking (Zhong et al., "Re-ranking person re-identification with k-reciprocal
encoding", CVPR 2017), the optional re-ranking of SPEC §3.

Notation of the paper, over the N = Q + G probe and gallery items with distance d:
  * N(i, k): the k nearest items of i (itself included, as the reference code does);
  * R(i, k) = {j in N(i, k) : i in N(j, k)}: the k-reciprocal neighbours (Eq. 4);
  * R*(i, k1) = R(i, k1) ∪ R(c, k1/2) for every c in R(i, k1) whose R(c, k1/2) shares more
    than 2/3 of its items with R(i, k1) (Eq. 6);
  * V_i,j = exp(-d(i, j)) / Σ over R*(i) for j in R*(i, k1), else 0 (Eq. 7), then averaged
    over the k2 nearest items of i (local query expansion, Eq. 11);
  * d_J(i, j) = 1 - Σ_k min(V_i,k, V_j,k) / Σ_k max(V_i,k, V_j,k) (Eq. 10-12);
  * d*(p, g) = (1 - λ) d_J(p, g) + λ d(p, g) (Eq. 13).
As in the authors' code, d is the squared distance, each item's row divided by its maximum.
V is kept sparse here (each row has about k1..k2·k1 entries) and everything is vectorised in
torch; the one dense object is the N×N distance matrix, hence `RerankConfig.max_items`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from rich.progress import track

from trainer.evaluation.ranking import DistanceFn, GalleryT, QueryT, distance_matrix, expand_runs

# Query rows handled at once when intersecting V rows (bounds the pair list to ~10^7 entries).
JACCARD_CHUNK = 128


@dataclass(frozen=True)
class RerankConfig:
    """Parameters of k-reciprocal re-ranking; defaults are the paper's (k1=20, k2=6, λ=0.3).

    max_items: refuse when Q + G exceeds it, rather than exhaust the memory: the N×N float32
    distance matrix alone takes 4·N² bytes (1.6 GB at 20,000; Market-1501, DukeMTMC-reID and
    Occluded-Duke are below 20,000, MSMT17 at 93,820 would need 35 GB).
    """

    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3
    max_items: int = 20_000

    def __post_init__(self) -> None:
        if self.k1 < 1:
            raise ValueError(f"RerankConfig.k1 must be >= 1, got {self.k1}")
        if self.k2 < 1:
            raise ValueError(f"RerankConfig.k2 must be >= 1, got {self.k2}")
        if not 0.0 <= self.lambda_value <= 1.0:
            raise ValueError(
                f"RerankConfig.lambda_value must be in [0, 1], got {self.lambda_value}"
            )
        if self.max_items < 1:
            raise ValueError(f"RerankConfig.max_items must be >= 1, got {self.max_items}")

    def check_size(self, num_query: int, num_gallery: int) -> None:
        """Raise a clear error when re-ranking this problem would need too much memory."""
        total = num_query + num_gallery
        if total > self.max_items:
            gib = 4 * total**2 / 2**30
            raise ValueError(
                f"k-reciprocal re-ranking of {num_query} queries + {num_gallery} gallery items "
                f"needs a {total}x{total} distance matrix ({gib:.1f} GiB in float32), above "
                f"RerankConfig.max_items={self.max_items}; raise max_items if the machine has "
                "the memory, or evaluate without re-ranking"
            )


def k_reciprocal_rerank(
    q_g: np.ndarray | torch.Tensor,
    q_q: np.ndarray | torch.Tensor,
    g_g: np.ndarray | torch.Tensor,
    config: RerankConfig = RerankConfig(),
    show_progress: bool = True,
) -> np.ndarray:
    """Re-ranked [Q, G] float32 distances from the q-g, q-q and g-g distance matrices."""
    q_g, q_q, g_g = (torch.as_tensor(m, dtype=torch.float32, device="cpu") for m in (q_g, q_q, g_g))
    num_query, num_gallery = q_g.shape
    for name, matrix, shape in (
        ("q_q", q_q, (num_query, num_query)),
        ("g_g", g_g, (num_gallery, num_gallery)),
    ):
        if tuple(matrix.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(matrix.shape)}, expected {shape}")
    config.check_size(num_query, num_gallery)

    dist = _normalised_squared_distances(q_g, q_q, g_g)
    num_items = len(dist)
    depth = min(num_items, max(config.k1 + 1, config.k2))
    nearest = torch.topk(dist, depth, dim=1, largest=False, sorted=True).indices
    weights = _expanded_reciprocal_weights(dist, nearest, config.k1)
    if config.k2 > 1:
        weights = _local_query_expansion(weights, nearest[:, : config.k2])
    jaccard = _jaccard_distances(weights, num_query, show_progress)
    # Eq. 13 in place: [Q, G] temporaries would be the largest allocations after `dist`.
    jaccard.mul_(1 - config.lambda_value)
    jaccard.add_(dist[:num_query, num_query:], alpha=config.lambda_value)
    return jaccard.numpy()


def rerank_features(
    query: QueryT,
    gallery: GalleryT,
    distance_fn: DistanceFn,
    config: RerankConfig = RerankConfig(),
    chunk_size: int | None = None,
    show_progress: bool = True,
) -> np.ndarray:
    """Re-ranked [Q, G] distances straight from features (`distance_fn` as in
    `evaluate_features`); the size is checked before any distance is computed."""
    config.check_size(len(query), len(gallery))
    q_g, q_q, g_g = (
        distance_matrix(a, b, distance_fn, chunk_size, show_progress)
        for a, b in ((query, gallery), (query, query), (gallery, gallery))
    )
    return k_reciprocal_rerank(q_g, q_q, g_g, config, show_progress)


def _normalised_squared_distances(
    q_g: torch.Tensor, q_q: torch.Tensor, g_g: torch.Tensor
) -> torch.Tensor:
    """d[i, j] = D[j, i]² / max_m D[m, i]² over the joint matrix D = [[q_q, q_g], [q_g^T, g_g]]
    (the authors' normalisation, written on the transpose so each row of d is contiguous)."""
    num_query = len(q_q)
    dist = torch.empty(num_query + len(g_g), num_query + len(g_g))
    dist[:num_query, :num_query] = q_q.T
    dist[:num_query, num_query:] = q_g
    dist[num_query:, :num_query] = q_g.T
    dist[num_query:, num_query:] = g_g.T
    dist.square_()
    row_max = dist.amax(dim=1, keepdim=True)
    dist /= torch.where(row_max > 0, row_max, 1.0)
    return dist


def _reciprocal_neighbours(nearest: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """N(i, k) as [N, k+1] indices and the mask of those in R(i, k) (Eq. 4)."""
    forward = nearest[:, : k + 1]
    backward = nearest[forward, : k + 1]
    items = torch.arange(len(nearest))[:, None, None]
    return forward, (backward == items).any(dim=2)


def _expanded_reciprocal_weights(
    dist: torch.Tensor, nearest: torch.Tensor, k1: int
) -> torch.Tensor:
    """Sparse V of Eq. 7 over the expanded sets R*(i, k1) of Eq. 6."""
    forward, reciprocal = _reciprocal_neighbours(nearest, k1)
    half_forward, half_reciprocal = _reciprocal_neighbours(nearest, round(k1 / 2))
    # For each candidate c = forward[i, a]: its half set R(c, k1/2), and its overlap with R(i, k1).
    candidate_sets = half_forward[forward]  # [N, k1+1, k1/2+1]
    candidate_valid = half_reciprocal[forward]
    in_own_set = (candidate_sets[..., None] == forward[:, None, None, :]) & reciprocal[
        :, None, None, :
    ]
    overlap = (in_own_set.any(dim=3) & candidate_valid).sum(dim=2)
    accepted = reciprocal & (overlap > 2.0 / 3.0 * candidate_valid.sum(dim=2))

    members = torch.cat(
        [
            torch.where(reciprocal, forward, -1),
            torch.where(accepted[..., None] & candidate_valid, candidate_sets, -1).flatten(1),
        ],
        dim=1,
    )
    members = members.sort(dim=1).values
    unique = members >= 0
    unique[:, 1:] &= members[:, 1:] != members[:, :-1]
    rows = torch.arange(len(dist))[:, None].expand_as(members)[unique]
    cols = members[unique]
    weight = torch.exp(-dist[rows, cols])
    total = torch.zeros(len(dist)).index_add_(0, rows, weight)
    return _sparse(rows, cols, weight / total[rows], len(dist))


def _expand_runs(starts: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    owner, position = expand_runs(starts.numpy(), counts.numpy())
    return torch.from_numpy(owner), torch.from_numpy(position)


def _sparse(
    rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, size: int
) -> torch.Tensor:
    """A coalesced (row-major sorted, duplicates summed) sparse [size, size] matrix."""
    indices = torch.stack([rows, cols])
    return torch.sparse_coo_tensor(indices, values, (size, size), check_invariants=False).coalesce()


def _local_query_expansion(weights: torch.Tensor, nearest_k2: torch.Tensor) -> torch.Tensor:
    """Eq. 11: each row of V replaced by the mean of the rows of its k2 nearest items."""
    rows, cols = weights.indices()
    row_count = torch.bincount(rows, minlength=len(weights))
    row_start = torch.cumsum(row_count, 0) - row_count
    source_rows = nearest_k2.flatten()
    owner, position = _expand_runs(row_start[source_rows], row_count[source_rows])
    target_rows = owner // nearest_k2.shape[1]
    summed = _sparse(target_rows, cols[position], weights.values()[position], len(weights))
    return torch.sparse_coo_tensor(
        summed.indices(),
        summed.values() / nearest_k2.shape[1],
        summed.shape,
        is_coalesced=True,
        check_invariants=False,
    )


def _jaccard_distances(weights: torch.Tensor, num_query: int, show_progress: bool) -> torch.Tensor:
    """Eq. 10-12 for query rows against gallery columns: 1 - Σmin / (2 - Σmin), each V row
    summing to 1 so that Σmax = 2 - Σmin."""
    rows, cols = weights.indices()
    values = weights.values()
    # Column access to the gallery rows of V: for item k, the gallery items j with V[j, k] > 0.
    in_gallery = rows >= num_query
    by_column = torch.sort(cols[in_gallery] * len(weights) + rows[in_gallery]).indices
    column_items = rows[in_gallery][by_column] - num_query
    column_values = values[in_gallery][by_column]
    column_count = torch.bincount(cols[in_gallery], minlength=weights.shape[1])
    column_start = torch.cumsum(column_count, 0) - column_count

    num_gallery = weights.shape[0] - num_query
    jaccard = torch.empty(num_query, num_gallery)
    chunks = range(0, num_query, JACCARD_CHUNK)
    for start in track(chunks, "Re-ranking", transient=True, disable=not show_progress):
        stop = min(start + JACCARD_CHUNK, num_query)
        first, last = torch.searchsorted(rows, torch.tensor([start, stop])).tolist()  # rows sorted
        entry_row, entry_col = rows[first:last] - start, cols[first:last]
        entry_value = values[first:last]
        source, position = _expand_runs(column_start[entry_col], column_count[entry_col])
        shared = torch.minimum(entry_value[source], column_values[position])
        overlap = torch.zeros(stop - start, num_gallery).index_put_(
            (entry_row[source], column_items[position]), shared, accumulate=True
        )
        jaccard[start:stop] = 1 - overlap / (2 - overlap)
    return jaccard
