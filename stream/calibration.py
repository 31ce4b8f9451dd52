"""The gallery's accept threshold for a model, calibrated by replaying the worker's matcher on a
labelled crop set (`stream demo --train` and `trainer release`, which stores it in the model
card)."""

from __future__ import annotations

from typing import Any

import numpy as np


def pseudo_tracklets(result: Any) -> tuple[list, np.ndarray, np.ndarray]:
    """An evaluation's images grouped by (identity, camera), each group pooled as the worker
    pools a tracklet's crops: (appearances, identities, cameras). Junk and distractors
    (identity ≤ 0) are left out."""
    from stream.gallery.pooling import RunningAppearance
    from stream.worker_config import TrackletConfig

    pools: dict[tuple[int, int], RunningAppearance] = {}
    for features, records in (
        (result.query, result.dataset.query),
        (result.gallery, result.dataset.gallery),
    ):
        global_features = features.global_features.numpy()
        part_features = features.part_features.numpy()
        visibility = features.visibility.numpy()
        for i, record in enumerate(records):
            if record.pid <= 0:
                continue
            pool = pools.get((record.pid, record.camid))
            if pool is None:
                pool = pools[(record.pid, record.camid)] = RunningAppearance(
                    global_features.shape[1],
                    part_features.shape[1],
                    TrackletConfig().outlier_distance,
                )
            pool.add(global_features[i], part_features[i], visibility[i], 1.0)
    keys = sorted(pools)
    return (
        [pools[key].appearance() for key in keys],
        np.array([pid for pid, _ in keys]),
        np.array([camid for _, camid in keys]),
    )


def calibrate_threshold(
    appearances: list,
    identities: np.ndarray,
    cameras: np.ndarray,
    lam: float = 1.0,
    orders: int = 50,
    seed: int = 0,
) -> float:
    """The gallery's accept threshold: the occlusion-aware distance under which the matcher's
    decisions on these tracklets are most often right.

    The matcher is replayed: tracklets arrive in random orders (``orders`` of them); each is
    compared with the earlier tracklets of other cameras and joins the nearest one's identity
    when it lies within the threshold, else starts a new identity. A decision is right when it
    joins its own identity, or starts a new one while no earlier tracklet of it exists in another
    camera. Per-pair criteria (e.g. max TPR − FPR over all pairs) pick looser thresholds: the
    nearest of many strangers is much closer than a typical one.
    """
    from reid_core import occlusion_aware_distance
    from stream.gallery.records import as_features

    features = as_features(appearances)
    distances = occlusion_aware_distance(features, features, lam=lam).numpy()
    rng = np.random.default_rng(seed)
    nearest, nearest_is_own, own_exists = [], [], []
    for _ in range(orders):
        order = rng.permutation(len(appearances))
        for n, i in enumerate(order):
            earlier = order[:n][cameras[order[:n]] != cameras[i]]
            if len(earlier) == 0:
                continue
            j = earlier[np.argmin(distances[i, earlier])]
            nearest.append(distances[i, j])
            nearest_is_own.append(identities[j] == identities[i])
            own_exists.append(bool((identities[earlier] == identities[i]).any()))
    nearest_d, right_if_joined = np.array(nearest), np.array(nearest_is_own)
    right_if_new = ~np.array(own_exists)
    distinct = np.unique(nearest_d)  # thresholds between them, and below / above them all
    margin = 1e-3 * max(float(distinct[-1] - distinct[0]), 1e-3)
    thresholds = np.concatenate(
        [[distinct[0] - margin], (distinct[:-1] + distinct[1:]) / 2, [distinct[-1] + margin]]
    )
    # right decisions at each threshold: joins right among the nearest ≤ t, new ids right above
    order = np.argsort(nearest_d, kind="stable")
    joined_right = np.concatenate([[0], np.cumsum(right_if_joined[order])])
    new_right = np.concatenate([[0], np.cumsum(right_if_new[order])])
    within = np.searchsorted(nearest_d[order], thresholds, side="right")
    right = joined_right[within] + new_right[-1] - new_right[within]
    return max(float(thresholds[int(np.argmax(right))]), 1e-6)  # the gallery needs > 0
