"""Your own people as a data set: one folder per person, no renaming (``--dataset folder``).

    my_people/
      alice/                 # a person: any folder name
        entrance/001.jpg     # optional camera sub-folders ...
        lobby/007.jpg
      bob/
        bob_c1_0001.jpg      # ... or the camera in the file name (camera_pattern, default c<N>)
        bob_c2_0002.jpg
      carol/0001.jpg         # neither: camera 0

Identities are numbered 1..N in folder-name order. A seeded ``test_fraction`` of them (default
0.2) is held out for evaluation, the rest trains. Of each held-out person, one image per camera
is a query and the others are gallery — the usual cross-camera protocol, under which a person
seen by one camera only has no valid query (it stays in the gallery as a distractor). When the
whole set has a single camera, queries are put on camera 0 and the gallery on camera 1 (the
convention of the test-only partial sets), so evaluation still has matches to count.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from trainer.data.base import (
    IMAGE_SUFFIXES,
    DatasetLayoutError,
    ImageRecord,
    ReIDDataset,
    image_files,
)

DATASET = "folder"


def _people(root: Path, camera_pattern: re.Pattern[str]) -> list[list[tuple[Path, str]]]:
    """Per person (folder-name order): (image, camera name) pairs."""
    if not root.is_dir():
        raise DatasetLayoutError(f"{DATASET}: data set folder {root} does not exist")
    people = []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        images: list[tuple[Path, str]] = []
        for entry in sorted(person.iterdir()):
            if entry.is_dir():
                images += [(path, entry.name) for path in image_files(entry)]
            elif entry.suffix.lower() in IMAGE_SUFFIXES:
                match = camera_pattern.search(entry.stem)
                images.append((entry, match.group(1) if match else ""))
        if images:
            people.append(images)
    if len(people) < 2:
        raise DatasetLayoutError(
            f"{DATASET}: {root} needs a folder of images per person (at least 2 people), "
            f"found {len(people)}"
        )
    return people


def load_folder(
    root: Path | str,
    test_fraction: float = 0.2,
    seed: int = 0,
    camera_pattern: str = r"c(\d+)",
) -> ReIDDataset:
    """The data set of ``root`` (layout in the module docstring)."""
    root = Path(root)
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"{DATASET}: test_fraction must be in (0, 1), got {test_fraction}")
    try:
        pattern = re.compile(camera_pattern)
    except re.error as error:
        raise ValueError(f"{DATASET}: camera_pattern {camera_pattern!r}: {error}") from None
    people = _people(root, pattern)
    cameras = {name: index for index, name in enumerate(sorted({c for p in people for _, c in p}))}
    rng = np.random.default_rng(int(seed))
    held_out = set(
        rng.permutation(len(people))[: max(1, round(len(people) * float(test_fraction)))].tolist()
    )
    one_camera = len(cameras) == 1
    train, query, gallery = [], [], []
    for index, images in enumerate(people):
        pid = index + 1
        records = [ImageRecord(path, pid, cameras[camera]) for path, camera in images]
        if index not in held_out:
            train += records
            continue
        for camid in sorted({r.camid for r in records}):
            on_camera = [r for r in records if r.camid == camid]
            chosen = int(rng.integers(len(on_camera)))
            if one_camera:  # the partial sets' convention: queries camera 0, gallery camera 1
                query.append(ImageRecord(on_camera[chosen].path, pid, 0))
                gallery += [
                    ImageRecord(r.path, pid, 1) for i, r in enumerate(on_camera) if i != chosen
                ]
            else:
                query.append(on_camera[chosen])
                gallery += [r for i, r in enumerate(on_camera) if i != chosen]
    if len(people) - len(held_out) < 1:
        raise DatasetLayoutError(f"{DATASET}: {root}: no person left to train on")
    return ReIDDataset(DATASET, root, train, query, gallery)
