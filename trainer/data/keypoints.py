"""Given 2-D joints for a real data set (ablation row #6, SPEC §2): a keypoint file.

Real re-ID sets ship no joints; row #6 supervises the keypoints with joints from a pose
estimator run beforehand (as BPBreID and PVPM do with OpenPifPaf / AlphaPose outputs). The file
is JSON:

    {"joint_names": ["head", "neck", ...],
     "images": {"bounding_box_train/0002_c1s1_000451_03.jpg": [[x, y, visible], ...], ...}}

paths relative to the data set root, (x, y) in the image's pixels, ``visible`` 0 or 1 (or a
confidence, thresholded at 0.5). An image without an entry gets all joints invisible, so it
adds nothing to the keypoint loss. `trainer train` reads it from ``data.keypoints`` (a path
relative to the data set root unless absolute).
"""

from __future__ import annotations

import json
from pathlib import Path

from trainer.data.base import ReIDDataset

VISIBLE_CONFIDENCE = 0.5


class KeypointFileError(ValueError):
    """A keypoint file that cannot be used; the message names the file and the entry."""


def attach_keypoints(dataset: ReIDDataset, path: Path | str) -> ReIDDataset:
    """Give every record of ``dataset`` its ``extras["joints"]`` from the keypoint file (in
    place; returns the data set). Nothing is changed when the file is refused."""
    path = Path(path)
    if not path.is_absolute():
        path = dataset.root / path
    if not path.is_file():
        raise KeypointFileError(f"keypoint file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise KeypointFileError(f"{path}: not JSON ({error})") from None
    names = data.get("joint_names") if isinstance(data, dict) else None
    images = data.get("images") if isinstance(data, dict) else None
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise KeypointFileError(f"{path}: 'joint_names' must be a non-empty list of names")
    if not isinstance(images, dict):
        raise KeypointFileError(f"{path}: 'images' must map image paths to joint lists")
    joints = {key: _joints(path, key, value, len(names)) for key, value in images.items()}
    absent = [[0.0, 0.0, 0.0]] * len(names)
    records = [*dataset.train, *dataset.query, *dataset.gallery]
    keys = [r.path.relative_to(dataset.root).as_posix() for r in records]
    if joints and not any(key in joints for key in keys):
        example = next(iter(joints))
        raise KeypointFileError(
            f"{path}: none of its {len(joints)} image paths (e.g. {example!r}) is an image of "
            f"{dataset.name} under {dataset.root}: paths must be relative to the data set root"
        )
    for record, key in zip(records, keys, strict=True):
        record.extras["joints"] = joints.get(key, absent)
    dataset.joint_names = tuple(names)
    return dataset


def _joints(path: Path, key: str, value: object, count: int) -> list[list[float]]:
    if not (isinstance(value, list) and len(value) == count):
        raise KeypointFileError(f"{path}: {key!r} must list {count} joints [x, y, visible]")
    rows = []
    for row in value:
        if not (
            isinstance(row, list)
            and len(row) == 3
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in row)
        ):
            raise KeypointFileError(f"{path}: {key!r} has a joint that is not [x, y, visible]")
        rows.append([float(row[0]), float(row[1]), float(row[2] >= VISIBLE_CONFIDENCE)])
    return rows
