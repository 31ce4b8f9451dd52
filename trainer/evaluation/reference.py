"""Per-query NumPy reference for the Market protocol: the yardstick of `evaluate_rankings`.

It mirrors the classic loop of torchreid's `eval_market1501` (sort each query's row, drop the
excluded entries, cumulate the hits), plus the junk/distractor rules of SPEC §3 and mINP. Two
choices make it comparable bit for bit with the vectorised code: a stable sort (ties broken by
gallery index) and AP summed sequentially in rank order. The tests check `evaluate_rankings`
against it, and bench/eval_speed.py times it (SPEC §7: the vectorised code must be >= 5x faster).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainer.evaluation.ranking import DISTRACTOR_PID, JUNK_PID


def evaluate_rankings_reference(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 10,
) -> dict[str, Any]:
    """Same contract and numbers as `trainer.evaluate_rankings`, one query at a time."""
    all_cmc, all_ap, all_inp = [], [], []
    num_skipped = 0
    for q_idx in range(distmat.shape[0]):
        q_pid, q_camid = q_pids[q_idx], q_camids[q_idx]
        order = np.argsort(distmat[q_idx], kind="stable")
        ranked_pids, ranked_cams = g_pids[order], g_camids[order]
        keep = (ranked_pids != JUNK_PID) & ~((ranked_pids == q_pid) & (ranked_cams == q_camid))
        hits = (ranked_pids[keep] == q_pid) & (q_pid != DISTRACTOR_PID)
        if not hits.any():
            num_skipped += 1
            continue
        hit_positions = np.flatnonzero(hits)
        cumulative_hits = hits.cumsum()
        all_cmc.append(np.arange(1, max_rank + 1) >= hit_positions[0] + 1)
        precisions = cumulative_hits[hit_positions] / (hit_positions + 1.0)
        all_ap.append(np.cumsum(precisions)[-1] / len(hit_positions))
        all_inp.append(cumulative_hits[hit_positions[-1]] / (hit_positions[-1] + 1.0))
    if not all_ap:
        raise ValueError("no query has a true match in the gallery")
    num_valid = len(all_ap)
    return {
        "cmc": np.sum(all_cmc, axis=0) / num_valid,
        "mAP": float(np.mean(all_ap)),
        "mINP": float(np.mean(all_inp)),
        "num_valid_queries": num_valid,
        "num_skipped_queries": num_skipped,
    }
