"""MSMT17 (Wei et al., CVPR 2018), V1 and V2 releases (SPEC §3).

Both releases list their splits in ``list_{train,val,query,gallery}.txt`` with lines
``0000/0000_000_01_0303morning_0015_0.jpg 0`` (path under the image folder, identity label);
V1 keeps images in ``train/`` and ``test/``, V2 (faces blurred) in ``mask_train_v2/`` and
``mask_test_v2/``. The camera is the third ``_`` field of the file name (1-based on disk).
"""

from __future__ import annotations

import re
from pathlib import Path

from trainer.data.base import DatasetLayoutError, ImageRecord, ReIDDataset, find_dataset_root

DATASET = "msmt17"
LIST_FILES = ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt")
# (train images, test images) folder names per release; V2 archives spell the suffix both ways.
IMAGE_FOLDERS = (
    ("train", "test"),
    ("mask_train_v2", "mask_test_v2"),
    ("mask_train_V2", "mask_test_V2"),
)
ROOT_SUBFOLDERS = ("MSMT17_V1", "MSMT17_V2", "msmt17/MSMT17_V1", "msmt17/MSMT17_V2", "MSMT17")
MSMT_NAMING = re.compile(r"(?P<pid>\d+)_(?P<index>\d+)_(?P<cam>\d+)_\w+?\.(?:jpe?g|png)")


def _find_release(root: Path | str) -> tuple[Path, Path, Path]:
    """(root, train image folder, test image folder) of whichever release is there."""
    layouts = [(train, test, *LIST_FILES) for train, test in IMAGE_FOLDERS]
    base, index = find_dataset_root(root, ROOT_SUBFOLDERS, layouts, DATASET)
    train_folder, test_folder = IMAGE_FOLDERS[index]
    return base, base / train_folder, base / test_folder


def read_list_file(list_path: Path, image_folder: Path, label_offset: int = 0) -> list[ImageRecord]:
    """Records of one list file; a malformed line or a missing image names file and line.

    ``label_offset`` is added to the list's labels: MSMT17's test labels start at 0, which the
    Market protocol reads as "distractor", so query and gallery are read with offset 1."""
    records = []
    for line_number, line in enumerate(list_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        where = f"{DATASET}: {list_path}:{line_number}"
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise DatasetLayoutError(
                f"{where}: expected '<relative image path> <label>', got {line!r}"
            )
        image_path = image_folder / fields[0]
        match = MSMT_NAMING.fullmatch(image_path.name)
        if match is None:
            raise DatasetLayoutError(
                f"{where}: file name {image_path.name!r} does not follow the naming "
                f"{MSMT_NAMING.pattern} (e.g. 0000_000_01_0303morning_0015_0.jpg)"
            )
        if not image_path.is_file():
            raise DatasetLayoutError(f"{where}: listed image {image_path} does not exist")
        camera = int(match["cam"])
        if camera < 1:
            raise DatasetLayoutError(
                f"{where}: camera {camera} in {image_path.name}; cameras start at 1"
            )
        records.append(ImageRecord(image_path, int(fields[1]) + label_offset, camera - 1))
    if not records:
        raise DatasetLayoutError(f"{DATASET}: list file {list_path} names no images")
    return records


def load_msmt17(root: Path | str, include_val: bool = True) -> ReIDDataset:
    """MSMT17 with train = list_train (+ list_val when ``include_val``: the 32,621-image,
    1,041-identity train set of the published statistics), query 11,659, gallery 82,161."""
    base, train_folder, test_folder = _find_release(root)
    train = read_list_file(base / "list_train.txt", train_folder)
    if include_val:
        train += read_list_file(base / "list_val.txt", train_folder)
    query = read_list_file(base / "list_query.txt", test_folder, label_offset=1)
    gallery = read_list_file(base / "list_gallery.txt", test_folder, label_offset=1)
    return ReIDDataset(DATASET, base, train, query, gallery)
