"""`stream demo`: its threshold calibration (the matcher replayed on pooled per-camera
tracklets) and its cams.yaml (the scene's videos played in real time like cameras)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from reid_core import ReIDFeatures, occlusion_aware_distance
from stream.calibration import calibrate_threshold, pseudo_tracklets
from stream.config import load_cams_config
from stream.demo import demo_cams_yaml
from stream.gallery import Appearance
from stream.gallery.records import as_features

DIM, PARTS = 16, 3


def sightings(identities: int, cameras: int, noise: float, seed: int = 0):
    """One tracklet per (identity, camera): the identity's vectors plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(identities, 1 + PARTS, DIM))
    appearances, ids, cams = [], [], []
    for identity in range(identities):
        for camera in range(cameras):
            vectors = centres[identity] + noise * rng.normal(size=(1 + PARTS, DIM))
            appearances.append(Appearance(vectors[0], vectors[1:], np.ones(PARTS)))
            ids.append(identity + 1)
            cams.append(camera)
    return appearances, np.array(ids), np.array(cams)


def test_the_threshold_separates_own_identities_from_strangers() -> None:
    appearances, ids, cams = sightings(identities=12, cameras=3, noise=0.1)
    threshold = calibrate_threshold(appearances, ids, cams)

    features = as_features(appearances)
    distances = occlusion_aware_distance(features, features).numpy()
    other_camera = cams[:, None] != cams[None, :]
    same = (ids[:, None] == ids[None, :]) & other_camera
    different = (ids[:, None] != ids[None, :]) & other_camera
    assert distances[same].max() < threshold < distances[different].min()


def test_strangers_alone_get_a_threshold_below_every_distance() -> None:
    """Nobody is seen twice: every right decision is a new identity."""
    appearances, ids, cams = sightings(identities=10, cameras=1, noise=0.1)
    cams = np.arange(len(appearances))  # every tracklet on its own camera
    threshold = calibrate_threshold(appearances, ids, cams)
    features = as_features(appearances)
    distances = occlusion_aware_distance(features, features).numpy()
    assert threshold < distances[~np.eye(len(ids), dtype=bool)].min()


def test_scenes_are_replayed_apart_and_their_decisions_pooled() -> None:
    """A second scene of many other people who look exactly like the first scene's first-camera
    sightings (four each), all seen by one camera of their own: replayed apart (``scenes``) it changes
    nothing — the threshold still lies above every own-identity distance and below every
    stranger's — while replayed together its look-alikes (distance 0) make joining wrong and
    drag the threshold under the own-identity distances."""
    appearances, ids, cams = sightings(identities=6, cameras=3, noise=0.1)
    first_camera = cams == 0
    look_alikes = [a for a, keep in zip(appearances, first_camera, strict=True) if keep] * 4
    both = appearances + look_alikes
    both_ids = np.concatenate([ids, 100 + np.arange(len(look_alikes))])
    both_cams = np.concatenate([cams, np.full(len(look_alikes), 9)])
    scenes = np.repeat([0, 1], [len(ids), len(look_alikes)])
    features = as_features(appearances)
    distances = occlusion_aware_distance(features, features).numpy()
    other_camera = cams[:, None] != cams[None, :]
    same = distances[(ids[:, None] == ids[None, :]) & other_camera]
    different = distances[(ids[:, None] != ids[None, :]) & other_camera]
    apart = calibrate_threshold(both, both_ids, both_cams, scenes=scenes)
    together = calibrate_threshold(both, both_ids, both_cams)
    assert same.max() < apart < different.min()
    assert together < same.max()


def test_pseudo_tracklets_pool_images_by_identity_and_camera() -> None:
    def features(rows: list[list[float]]) -> ReIDFeatures:
        n = len(rows)
        vectors = torch.tensor(rows, dtype=torch.float32)
        return ReIDFeatures(
            global_features=vectors,
            part_features=vectors[:, None, :],
            visibility=torch.ones(n, 1),
            keypoints=torch.zeros(n, 1, 2),
            jacobians=torch.eye(2).expand(n, 1, 2, 2).clone(),
            segmentation=torch.zeros(n, 2, 1, 1),
        )

    record = lambda pid, camid: SimpleNamespace(pid=pid, camid=camid)  # noqa: E731
    result = SimpleNamespace(
        query=features([[1, 0], [0, 1]]),
        gallery=features([[1, 0.1], [5, 5], [0, 3]]),
        dataset=SimpleNamespace(
            query=[record(1, 0), record(2, 1)],
            gallery=[record(1, 0), record(-1, 0), record(2, 0)],
        ),
    )
    appearances, ids, cams = pseudo_tracklets(result)
    assert list(zip(ids, cams, strict=True)) == [(1, 0), (2, 0), (2, 1)]  # junk left out
    pooled = appearances[0].global_vector
    assert pooled[0] > 0.99 and 0 < pooled[1] < 0.1  # both images of identity 1 on camera 0


def test_the_demo_plays_its_scene_in_real_time_unless_told_full_speed(
    scene: Path, tmp_path: Path
) -> None:
    """At file speed the camera processes race and one camera's whole scene may reach the
    worker first; a site's cameras deliver in step, which `pace: 1` reproduces."""
    (tmp_path / "paced").mkdir()
    (tmp_path / "racing").mkdir()
    paced = load_cams_config(demo_cams_yaml(scene, tmp_path / "paced", pace=1.0))
    racing = load_cams_config(demo_cams_yaml(scene, tmp_path / "racing"))
    assert [c.source.pace for c in paced.cameras] == [1.0, 1.0]
    assert [c.source.pace for c in racing.cameras] == [None, None]
    for camera in paced.cameras:
        assert camera.source.path.is_file() and camera.ground_truth_path().is_file()
