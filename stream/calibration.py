"""The gallery's accept threshold for a model, calibrated by replaying the worker's matcher on
labelled tracklets: a crop set's test split pooled per camera (`stream demo --train`) or a
held-out rendered multi-camera scene's ground-truth people (`trainer release`, which stores it
in the model card)."""

from __future__ import annotations

import argparse
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
    scenes: np.ndarray | None = None,
) -> float:
    """The gallery's accept threshold: the occlusion-aware distance under which the matcher's
    decisions on these tracklets are most often right.

    The matcher is replayed: tracklets arrive in random orders (``orders`` of them); each is
    compared with the earlier tracklets of other cameras and joins the nearest one's identity
    when it lies within the threshold, else starts a new identity. A decision is right when it
    joins its own identity, or starts a new one while no earlier tracklet of it exists in another
    camera. Per-pair criteria (e.g. max TPR − FPR over all pairs) pick looser thresholds: the
    nearest of many strangers is much closer than a typical one.

    ``scenes`` (one label per tracklet): tracklets meet only those of their own scene, and the
    decisions of all scenes are pooled — several small scenes give a steadier threshold than
    one (a 16-person scene gave 0.50, 0.78 and 0.53 at three seeds for one model).
    """
    from reid_core import occlusion_aware_distance
    from stream.gallery.records import as_features

    features = as_features(appearances)
    distances = occlusion_aware_distance(features, features, lam=lam).numpy()
    scenes = np.zeros(len(appearances), int) if scenes is None else np.asarray(scenes)
    rng = np.random.default_rng(seed)
    nearest, nearest_is_own, own_exists = [], [], []
    for _ in range(orders):
        order = rng.permutation(len(appearances))
        for n, i in enumerate(order):
            before = order[:n]
            earlier = before[(cameras[before] != cameras[i]) & (scenes[before] == scenes[i])]
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


# --- `stream calibrate`: the threshold of a model for your own people ---------------------

CALIBRATION_SUFFIX = ".calibration.yaml"
DEFAULT_OUT = Path("calibration.yaml")  # `stream calibrate` with neither --cameras nor --out


def calibration_path(cams_yaml: Path) -> Path:
    """Where `stream calibrate --cameras C` writes and `stream run --cameras C` reads:
    ``C.calibration.yaml`` beside it (``cams.yaml`` → ``cams.calibration.yaml``)."""
    return cams_yaml.with_name(cams_yaml.stem + CALIBRATION_SUFFIX)


def calibrate_on_data(
    model_path: Path,
    dataset: str,
    root: Path,
    options: dict[str, Any] | None = None,
    flip: bool = False,
) -> dict[str, Any]:
    """The threshold of ``model_path`` on a data set's held-out people (query + gallery pooled
    per camera into tracklets, the matcher replayed), with what it was measured on. ``flip``:
    embed as a worker with ``embedder.flip`` does (each crop averaged with its mirror image),
    whose distances are not those of single crops."""
    import time

    from reid_core.checkpoint import load
    from reid_core.zoo import file_sha256
    from trainer.evaluation.evaluate import evaluate_model

    result = evaluate_model(load(model_path), dataset, root, options, flip=flip)
    appearances, identities, cameras = pseudo_tracklets(result)
    if len(set(cameras.tolist())) < 2:
        raise ValueError(
            f"{root}: the held-out people are seen by one camera only; the threshold decides "
            "cross-camera matches and needs at least two cameras"
        )
    return {
        "gallery": {"threshold": calibrate_threshold(appearances, identities, cameras)},
        "calibration": {
            "model": str(model_path),
            "model_sha256": file_sha256(model_path),
            "data": str(root),
            "dataset": dataset,
            "options": options or {},
            "flip": flip,
            "tracklets": len(appearances),
            "identities": len(set(identities.tolist())),
            "cameras": len(set(cameras.tolist())),
            "method": "the worker's matcher replayed on the held-out people (stream.calibration)",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }


def read_calibration(cams_yaml: Path, model_path: Path, flip: bool = False) -> float | None:
    """The threshold `stream calibrate` wrote beside ``cams_yaml`` for this very model file
    (by digest) embedding with this ``flip``, else None; a calibration of another model or
    flip setting is ignored with a warning."""
    import logging

    import yaml

    from reid_core.zoo import file_sha256

    path = calibration_path(cams_yaml)
    if not path.is_file():
        return None
    try:
        stored = yaml.safe_load(path.read_text())
        threshold = float(stored["gallery"]["threshold"])
        digest = stored["calibration"]["model_sha256"]
        stored_flip = bool(stored["calibration"].get("flip", False))  # older files: no flip
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{path}: not a calibration written by `stream calibrate` ({error})"
        ) from None
    if digest != file_sha256(model_path):
        logging.getLogger(__name__).warning(
            "%s was calibrated for another model than %s: not used", path, model_path
        )
        return None
    if stored_flip != flip:
        logging.getLogger(__name__).warning(
            "%s was calibrated with embedder.flip %s, the run embeds with flip %s: not used",
            path,
            stored_flip,
            flip,
        )
        return None
    return threshold


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="the gallery's match threshold for a model on your own people",
        description="Replay the worker's matcher on a data set's held-out people (a `folder` "
        "set of your own, or any `trainer data` set) and write the threshold at which its "
        "decisions are most often right: beside --cameras (which `stream run` then reads for "
        "that model) or to --out. Never written into a shipped model's card.",
    )
    parser.add_argument("--data", type=Path, required=True, help="data set folder")
    parser.add_argument("--dataset", default="folder", help="data set kind (default: folder)")
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="data set option"
    )
    parser.add_argument(
        "options", nargs="*", metavar="key=value", help="data set options (as --option)"
    )
    parser.add_argument(
        "--model",
        type=Path,
        help="checkpoint (default: --cameras' worker.embedder.model, else the shipped model)",
    )
    parser.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="embed each crop with its mirror image, as a worker with embedder.flip does "
        "(default: --cameras' worker.embedder.flip, else off)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--cameras", type=Path, help="the cams.yaml it is for")
    where.add_argument(
        "--out",
        type=Path,
        help="write the calibration YAML here (default without --cameras: calibration.yaml; "
        "`stream run` reads it as CAMS.calibration.yaml beside cams.yaml)",
    )
    parser.set_defaults(handler=_handle)


def cameras_embedder(cams_yaml: Path | None) -> Any:
    """The worker's embedder settings of the cams.yaml a calibration is for (its defaults when
    there is none yet): the model and flip the run will embed with."""
    from reid_core.runtime.embedder import EmbedderConfig

    if cams_yaml is None or not cams_yaml.is_file():
        return EmbedderConfig()
    from pydantic import ValidationError

    from stream.config import load_cams_config
    from stream.worker_config import _describe

    settings = load_cams_config(cams_yaml).worker.get("embedder") or {}
    try:
        return EmbedderConfig.model_validate(settings)
    except ValidationError as error:  # worded as `stream run` words the worker section's
        raise ValueError(_describe(str(cams_yaml), error, "worker.embedder.")) from None


def _handle(args: Any) -> int:
    import yaml

    from reid_core.config import parse_overrides
    from reid_core.runtime.embedder import runtime_for
    from reid_core.zoo import shipped_model_path

    embedder = cameras_embedder(args.cameras)
    if args.model is None and embedder.model and runtime_for(embedder.model) == "onnxruntime":
        raise ValueError(
            f"{args.cameras}: worker.embedder.model is an ONNX file ({embedder.model}); "
            "calibration embeds with torch: name its .safetensors checkpoint with --model"
        )
    model = args.model or embedder.model or shipped_model_path()
    flip = embedder.flip if args.flip is None else args.flip
    calibration = calibrate_on_data(
        model, args.dataset, args.data, parse_overrides([*args.option, *args.options]), flip
    )
    out = args.out or (calibration_path(args.cameras) if args.cameras else DEFAULT_OUT)
    out.write_text(yaml.safe_dump(calibration, sort_keys=False))
    c = calibration["calibration"]
    print(
        f"threshold {calibration['gallery']['threshold']:.4f} for {model}"
        f"{' (flip)' if flip else ''} from {c['tracklets']} "
        f"tracklets of {c['identities']} people on {c['cameras']} cameras; wrote {out}"
    )
    return 0
