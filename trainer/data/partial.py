"""Test-only occluded / partial sets: Occluded-REID, Partial-REID, Partial-iLIDS (SPEC §3).

Each ships a probe folder of occluded or partial bodies and a gallery folder of whole bodies and
no train split (models are trained on Market-1501). Identities come from a per-identity
sub-folder (``occluded_body_images/001/001_01.tif``) or from the file name's leading number
(``partial_body_images/001_01.jpg``, Partial-iLIDS ``Probe/001.jpg``). All probes are camera 0
and all gallery images camera 1, the usual convention that keeps the Market protocol (which
drops same-camera matches) from discarding every true match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from trainer.data.base import (
    IMAGE_SUFFIXES,
    DatasetLayoutError,
    ImageRecord,
    ReIDDataset,
    find_dataset_root,
    image_files,
    match_name,
    require_images,
)

QUERY_CAMID = 0
GALLERY_CAMID = 1
LEADING_ID_NAMING = re.compile(r"(?P<pid>\d+)(?:_[^.]*)?\.(?:jpe?g|png|bmp|tiff?)", re.IGNORECASE)


@dataclass(frozen=True)
class ProbeGalleryLayout:
    """One published arrangement of a test-only set: its probe and gallery folders."""

    query_folder: str
    gallery_folder: str


def parse_identity_folder(folder: Path, dataset: str, camid: int) -> list[ImageRecord]:
    """Records of a probe or gallery folder, ids from sub-folder names or file-name prefixes."""
    records = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            if not entry.name.isdigit():
                raise DatasetLayoutError(
                    f"{dataset}: sub-folder {entry} is not an identity number (e.g. 001/)"
                )
            records += [ImageRecord(path, int(entry.name), camid) for path in image_files(entry)]
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            match = match_name(entry, LEADING_ID_NAMING, dataset, "001_01.jpg or 001.jpg")
            records.append(ImageRecord(entry, int(match["pid"]), camid))
    require_images(records, folder, dataset)
    return records


def load_probe_gallery(
    root: Path | str,
    dataset: str,
    layouts: tuple[ProbeGalleryLayout, ...],
    subfolders: tuple[str, ...],
) -> ReIDDataset:
    """A test-only data set from the first of ``layouts`` present under ``root``."""
    folders = [(layout.query_folder, layout.gallery_folder) for layout in layouts]
    base, index = find_dataset_root(root, subfolders, folders, dataset)
    query_folder, gallery_folder = folders[index]
    query = parse_identity_folder(base / query_folder, dataset, QUERY_CAMID)
    gallery = parse_identity_folder(base / gallery_folder, dataset, GALLERY_CAMID)
    return ReIDDataset(dataset, base, [], query, gallery)


WHOLE_BODY = "whole_body_images"


def load_occluded_reid(root: Path | str) -> ReIDDataset:
    """Occluded-REID (Zhuo et al., ICME 2018): 200 ids × 5 occluded + 5 whole-body images."""
    return load_probe_gallery(
        root,
        "occluded_reid",
        (ProbeGalleryLayout("occluded_body_images", WHOLE_BODY),),
        ("Occluded_REID", "OccludedREID", "Occluded-REID", "occluded_reid"),
    )


def load_partial_reid(root: Path | str) -> ReIDDataset:
    """Partial-REID (Zheng et al., ICCV 2015): 60 ids × 5 partial + 5 whole-body images."""
    return load_probe_gallery(
        root,
        "partial_reid",
        (ProbeGalleryLayout("partial_body_images", WHOLE_BODY),),
        ("Partial_REID", "PartialREID", "Partial-REID", "partial_reid"),
    )


def load_partial_ilids(root: Path | str) -> ReIDDataset:
    """Partial-iLIDS (He et al., 2018): 119 ids, one partial probe and one whole gallery image."""
    return load_probe_gallery(
        root,
        "partial_ilids",
        (
            ProbeGalleryLayout("Probe", "Gallery"),
            ProbeGalleryLayout("partial_body_images", WHOLE_BODY),
        ),
        ("Partial_iLIDS", "PartialiLIDS", "Partial-iLIDS", "partial_ilids"),
    )
