"""`ranked_lists.png` (SPEC §3): for a few queries, the query image then its top-k gallery
images under the evaluation protocol (junk and same-identity-same-camera entries left out, as
`evaluate_rankings` does), a green border on a true match and a red one on a false match,
each tile labelled with its rank, identity and camera. Drawn with OpenCV like reid_core.viz."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from trainer.evaluation.ranking import (
    DISTRACTOR_PID,
    ArrayLike,
    DistanceFn,
    GalleryT,
    ProtocolLabels,
    QueryT,
    protocol_flags,
)

TILE_SIZE = (128, 64)  # (height, width) of each image
BORDER = 4
LABEL_HEIGHT = 30
GAP = 12  # between the query and its ranked list
MATCH_BGR = (60, 180, 60)
NON_MATCH_BGR = (40, 40, 220)
QUERY_BGR = (200, 140, 40)
BACKGROUND_BGR = (255, 255, 255)
TEXT_BGR = (20, 20, 20)


def select_queries(q_pids: ArrayLike, count: int = 8) -> np.ndarray:
    """`count` query indices spread evenly over the queries that can have a true match."""
    pids = np.asarray(q_pids)
    eligible = np.flatnonzero(pids > DISTRACTOR_PID)
    if not len(eligible):
        raise ValueError("no query with an identity > 0 to show in the ranked lists")
    picks = np.linspace(0, len(eligible) - 1, num=min(count, len(eligible)))
    return eligible[np.unique(np.round(picks).astype(np.int64))]


def query_distances(
    query: QueryT, gallery: GalleryT, distance_fn: DistanceFn, query_indices: Sequence[int]
) -> torch.Tensor:
    """[n, G] distances of a few queries, computed one query at a time (no Q×G matrix)."""
    rows = [torch.as_tensor(distance_fn(query[i : i + 1], gallery)) for i in query_indices]
    return torch.cat([row.cpu() for row in rows])


def ranked_gallery(
    distances: np.ndarray | torch.Tensor,
    query_index: int,
    labels: ProtocolLabels,
    top_k: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k gallery indices of one query ([G] distances) under the protocol, nearest first
    (ties by gallery index, like the metrics), and whether each is a true match."""
    kept, match = protocol_flags(
        labels.q_pids[query_index],
        labels.q_camids[query_index],
        labels.g_pids,
        labels.g_camids,
    )
    candidates = np.flatnonzero(kept)
    row = torch.as_tensor(distances).cpu().numpy()[candidates]
    top = candidates[np.argsort(row, kind="stable")[:top_k]]
    return top, match[top]


def draw_ranked_lists(
    distances: np.ndarray | torch.Tensor,
    query_indices: Sequence[int],
    query_paths: Sequence[str | Path],
    gallery_paths: Sequence[str | Path],
    labels: ProtocolLabels,
    out_path: str | Path,
    top_k: int = 10,
) -> Path:
    """Write the ranked-list picture; `distances` [n, G] are the rows of `query_indices`."""
    if len(distances) != len(query_indices):
        raise ValueError(f"{len(distances)} distance rows for {len(query_indices)} query indices")
    if len(query_paths) != labels.num_query or len(gallery_paths) != labels.num_gallery:
        raise ValueError(
            f"{len(query_paths)} query / {len(gallery_paths)} gallery paths for "
            f"{labels.num_query} query / {labels.num_gallery} gallery labels"
        )
    rows = []
    for row, query_index in zip(distances, query_indices, strict=True):
        top, is_match = ranked_gallery(row, query_index, labels, top_k)
        tiles = [
            _tile(
                query_paths[query_index],
                QUERY_BGR,
                "query",
                int(labels.q_pids[query_index]),
                int(labels.q_camids[query_index]),
            ),
            np.full((TILE_SIZE[0] + 2 * BORDER + LABEL_HEIGHT, GAP, 3), 255, np.uint8),
        ]
        tiles += [
            _tile(
                gallery_paths[g],
                MATCH_BGR if matched else NON_MATCH_BGR,
                f"#{rank}",
                int(labels.g_pids[g]),
                int(labels.g_camids[g]),
            )
            for rank, (g, matched) in enumerate(zip(top, is_match, strict=True), start=1)
        ]
        rows.append(np.concatenate(tiles, axis=1))
    width = max(r.shape[1] for r in rows)
    canvas = np.concatenate(
        [
            cv2.copyMakeBorder(
                r, 0, 0, 0, width - r.shape[1], cv2.BORDER_CONSTANT, value=BACKGROUND_BGR
            )
            for r in rows
        ]  # fmt: skip
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_path), canvas):
        raise OSError(f"could not write {out_path}")
    return out_path


def _tile(
    path: str | Path, colour: tuple[int, int, int], title: str, pid: int, camid: int
) -> np.ndarray:
    """One image, resized, with a coloured border and a two-line label below."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path} for the ranked lists")
    image = cv2.resize(image, (TILE_SIZE[1], TILE_SIZE[0]), interpolation=cv2.INTER_AREA)
    framed = cv2.copyMakeBorder(image, *(BORDER,) * 4, cv2.BORDER_CONSTANT, value=colour)
    label = np.full((LABEL_HEIGHT, framed.shape[1], 3), BACKGROUND_BGR, np.uint8)
    for line, text in enumerate((title, f"id {pid} c{camid}")):
        cv2.putText(label, text, (2, 12 + 14 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.36, TEXT_BGR,
                    1, cv2.LINE_AA)  # fmt: skip
    return np.concatenate([framed, label])
