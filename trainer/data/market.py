"""Market-1501-layout data sets: Market-1501, DukeMTMC-reID, Occluded-Duke (SPEC §3).

All three ship ``bounding_box_train/`` (train), ``bounding_box_test/`` (gallery) and ``query/``,
with identity and camera in the file name; they differ only in the naming after the camera and
the archive's top folder. The synthetic set reuses `read_market_layout` (its crops use the
Market naming).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from trainer.data.base import (
    DatasetLayoutError,
    ImageRecord,
    ReIDDataset,
    find_dataset_root,
    image_files,
    match_name,
    require_images,
)

TRAIN_FOLDER = "bounding_box_train"
GALLERY_FOLDER = "bounding_box_test"
QUERY_FOLDER = "query"


@dataclass(frozen=True)
class MarketLayout:
    """How one Market-style family names its files and where its archive puts them."""

    dataset: str
    naming: re.Pattern[str]
    example: str
    subfolders: tuple[str, ...]


MARKET_NAMING = re.compile(
    r"(?P<pid>-1|\d+)_c(?P<cam>\d+)s(?P<seq>\d+)_(?P<frame>\d+)_(?P<box>\d+)\.(?:jpe?g|png)"
)
DUKE_NAMING = re.compile(r"(?P<pid>-1|\d+)_c(?P<cam>\d+)_f(?P<frame>\d+)\.(?:jpe?g|png)")

MARKET1501 = MarketLayout(
    "market1501",
    MARKET_NAMING,
    "0002_c1s1_000451_03.jpg",
    ("Market-1501-v15.09.15", "market1501", "market1501/Market-1501-v15.09.15"),
)
DUKEMTMC_REID = MarketLayout(
    "dukemtmcreid",
    DUKE_NAMING,
    "0001_c2_f0046182.jpg",
    ("DukeMTMC-reID", "dukemtmc-reid/DukeMTMC-reID", "dukemtmcreid/DukeMTMC-reID"),
)
OCCLUDED_DUKE = MarketLayout(
    "occluded_duke",
    DUKE_NAMING,
    "0001_c2_f0046182.jpg",
    ("Occluded_Duke", "occluded_duke/Occluded_Duke", "Occluded-DukeMTMC-reID"),
)


def parse_market_folder(folder: Path, layout: MarketLayout) -> list[ImageRecord]:
    """Every image of one split folder as a record; camera ``cN`` becomes camid N−1."""
    records = []
    for path in image_files(folder):
        match = match_name(path, layout.naming, layout.dataset, layout.example)
        camera = int(match["cam"])
        if camera < 1:
            raise DatasetLayoutError(
                f"{layout.dataset}: file {path} has camera c{camera}; cameras are numbered from c1"
            )
        records.append(ImageRecord(path, int(match["pid"]), camera - 1))
    require_images(records, folder, layout.dataset)
    return records


def read_market_layout(
    root: Path | str,
    layout: MarketLayout,
    query_folder: str = QUERY_FOLDER,
    extra_required: tuple[str, ...] = (),
) -> tuple[Path, list[ImageRecord], list[ImageRecord], list[ImageRecord]]:
    """(resolved root, train, query, gallery) of a Market-style folder, names validated."""
    required = (TRAIN_FOLDER, GALLERY_FOLDER, query_folder, *extra_required)
    base, _ = find_dataset_root(root, layout.subfolders, [required], layout.dataset)
    train = parse_market_folder(base / TRAIN_FOLDER, layout)
    query = parse_market_folder(base / query_folder, layout)
    gallery = parse_market_folder(base / GALLERY_FOLDER, layout)
    return base, train, query, gallery


def _load(root: Path | str, layout: MarketLayout) -> ReIDDataset:
    base, train, query, gallery = read_market_layout(root, layout)
    return ReIDDataset(layout.dataset, base, train, query, gallery)


def load_market1501(root: Path | str) -> ReIDDataset:
    """Market-1501: 751 train / 750 test identities, 6 cameras, junk −1 and distractors 0000."""
    return _load(root, MARKET1501)


def load_dukemtmcreid(root: Path | str) -> ReIDDataset:
    """DukeMTMC-reID: 702 train / 1,110 gallery identities (408 distractor ids), 8 cameras."""
    return _load(root, DUKEMTMC_REID)


def load_occluded_duke(root: Path | str) -> ReIDDataset:
    """Occluded-Duke: DukeMTMC-reID re-split so every query is occluded (Miao et al. 2019)."""
    return _load(root, OCCLUDED_DUKE)
