"""The gallery's accept threshold for a model, calibrated by replaying the worker's matcher on
labelled tracklets: a crop set's test split pooled per camera (`stream demo --train`) or a
held-out rendered multi-camera scene's ground-truth people (`trainer release`, which stores it
in the model card)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def pool_tracklets(
    features: Any, pids: Sequence[int], camids: Sequence[int]
) -> tuple[list, np.ndarray, np.ndarray]:
    """Per-image ReIDFeatures grouped by (identity, camera), each group pooled as the worker
    pools a tracklet's crops: (appearances, identities, cameras). Identities ≤ 0 (junk,
    distractors) are left out."""
    from stream.gallery.pooling import RunningAppearance
    from stream.worker_config import TrackletConfig

    global_features = features.global_features.numpy()
    part_features = features.part_features.numpy()
    visibility = features.visibility.numpy()
    pools: dict[tuple[int, int], RunningAppearance] = {}
    for i, key in enumerate(zip(pids, camids, strict=True)):
        if key[0] <= 0:
            continue
        if key not in pools:
            pools[key] = RunningAppearance(
                global_features.shape[1], part_features.shape[1], TrackletConfig().outlier_distance
            )
        pools[key].add(global_features[i], part_features[i], visibility[i], 1.0)
    keys = sorted(pools)
    return (
        [pools[key].appearance() for key in keys],
        np.array([pid for pid, _ in keys]),
        np.array([camid for _, camid in keys]),
    )


def pseudo_tracklets(result: Any) -> tuple[list, np.ndarray, np.ndarray]:
    """An evaluation's query and gallery images pooled into per-camera tracklets."""
    from reid_core import ReIDFeatures

    records = [*result.dataset.query, *result.dataset.gallery]
    features = ReIDFeatures.cat([result.query, result.gallery])
    return pool_tracklets(features, [r.pid for r in records], [r.camid for r in records])


def scene_tracklets(
    scene: Path, model: Any, every: int = 2, min_height: int = 40
) -> tuple[list, np.ndarray, np.ndarray]:
    """A rendered multi-camera scene's ground-truth people (`trainer synth video`: one MOT
    sequence per camera), cut from every ``every``-th frame, embedded by ``model`` and pooled
    per (person, camera): the tracklets the worker would see with perfect tracking."""
    import yaml

    from stream.detectors import read_mot_file
    from trainer.evaluation.real_probe import checkpoint_features, cut_box, read_frames

    cameras = yaml.safe_load((scene / "cams.yaml").read_text())["cameras"]
    crops, pids, camids = [], [], []
    for camid, camera in enumerate(cameras, start=1):
        sequence = scene / Path(camera["ground_truth"]).parent.parent
        rows = read_mot_file(sequence / "gt" / "gt.txt").scored()
        rows = rows.select((rows.frame - 1) % every == 0)
        images = read_frames(sequence, {int(f) for f in rows.frame})
        for frame, pid, box in zip(rows.frame, rows.ids, rows.xyxy, strict=True):
            crop = cut_box(images.get(int(frame)), box, min_height)
            if crop is not None:
                crops.append(crop)
                pids.append(int(pid))
                camids.append(camid)
    return pool_tracklets(checkpoint_features(model, crops), pids, camids)


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
