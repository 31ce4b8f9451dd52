"""`ImageDataset`: a torch Dataset over `ImageRecord`s that reads, transforms and reports.

Each sample is a dict: ``image`` [3, H, W] float, ``pid``, ``camid``, ``index`` (of the record
actually read), ``skipped`` (unreadable images replaced to produce it), when the records carry
joints, ``joints`` [J, 3] in [-1, 1] coordinates of the transformed image (see transforms.py),
and with ``part_maps=True``, ``part_map`` [H, W] uint8 body-part labels (`reid_core.parts`)
aligned with the transformed image, read from the file each record's ``extras["part_map"]``
names (the synthetic set's loader makes that path absolute).

An unreadable image or part label map never dies silently inside a DataLoader worker:
``on_error="raise"`` raises `UnreadableImageError` naming the path (DataLoader re-raises it in
the main process); ``on_error="skip"`` logs it, counts it, and returns another image of the same
identity so the P×K batch layout holds. Sum ``batch["skipped"]`` to count skips across worker
processes. Use "raise" for evaluation: a substitute image would be scored as the one asked for.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from trainer.data.base import ImageRecord
from trainer.data.transforms import ReIDTransform

log = logging.getLogger(__name__)
ON_ERROR = ("raise", "skip")


class UnreadableImageError(OSError):
    """An image (or part label map) file is missing, empty or not decodable, or a part label map
    does not fit its image; the message names the path."""


def _decode(path: Path, flags: int, what: str) -> np.ndarray:
    """Read bytes first (non-ASCII paths and odd formats such as tif work), then decode; an
    unreadable or undecodable file is an `UnreadableImageError` naming ``what`` and the path."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise UnreadableImageError(f"cannot read {what} {path}: {error}") from error
    decoded = cv2.imdecode(data, flags) if data.size else None
    if decoded is None:
        raise UnreadableImageError(f"cannot decode {what} {path} ({data.size} bytes)")
    return decoded


def read_rgb(path: Path) -> np.ndarray:
    """H×W×3 uint8 RGB."""
    return cv2.cvtColor(_decode(path, cv2.IMREAD_COLOR, "image"), cv2.COLOR_BGR2RGB)


def read_part_map(path: Path) -> np.ndarray:
    """H×W uint8 part label map from a lossless single-channel 8-bit image (PNG)."""
    labels = _decode(path, cv2.IMREAD_UNCHANGED, "part label map")
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise UnreadableImageError(
            f"part label map {path} is {labels.dtype} {labels.shape}, not a single-channel "
            "8-bit label image"
        )
    return labels


class ImageDataset(Dataset):
    """Records → transformed samples, with a clear policy for unreadable images."""

    def __init__(
        self,
        records: Sequence[ImageRecord],
        transform: ReIDTransform,
        on_error: Literal["raise", "skip"] = "raise",
        part_maps: bool = False,
    ) -> None:
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error={on_error!r} is not one of {', '.join(ON_ERROR)}")
        self.records = list(records)
        self.transform = transform
        self.on_error = on_error
        self.part_maps = part_maps
        if part_maps:
            for record in self.records:
                if record.extras.get("part_map") is None:
                    raise ValueError(
                        f"{record.path} has no part label map (extras['part_map']): "
                        "part_maps=True needs one for every record, and this data set has no "
                        "part label maps (only synthetic sets have them, rendered by a "
                        "`trainer synth reid` that writes part_maps/; render it again)"
                    )
        self.num_skipped = 0
        self.with_joints = bool(self.records) and "joints" in self.records[0].extras
        for record in self.records:
            if ("joints" in record.extras) != self.with_joints:
                raise ValueError(
                    f"{record.path}: some records carry joints and some do not; "
                    "a batch needs all or none"
                )
        self._indices_by_pid: dict[int, list[int]] = defaultdict(list)
        for index, record in enumerate(self.records):
            self._indices_by_pid[record.pid].append(index)

    @property
    def pids(self) -> list[int]:
        """Identity of every record, in order (what the identity sampler needs)."""
        return [record.pid for record in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        skipped = 0
        for candidate in self._same_identity_order(index):
            try:
                sample = self._load(candidate)
            except UnreadableImageError as error:
                if self.on_error == "raise":
                    raise
                skipped += 1
                self.num_skipped += 1
                log.warning(
                    "skipping unreadable image (%d so far here): %s", self.num_skipped, error
                )
                continue
            sample["skipped"] = skipped
            return sample
        record = self.records[index]
        raise UnreadableImageError(
            f"no readable image of identity {record.pid}: all {skipped} failed, e.g. {record.path}"
        )

    def _same_identity_order(self, index: int) -> Iterator[int]:
        """``index`` first, then the other images of its identity, in a fixed order."""
        group = self._indices_by_pid[self.records[index].pid]
        start = group.index(index)
        yield from group[start:] + group[:start]

    def _load(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        joints = None
        if self.with_joints:
            joints = np.asarray(record.extras["joints"], dtype=np.float32)
            if joints.ndim != 2 or joints.shape[1] != 3:
                raise ValueError(f"{record.path}: joints must be [J, 3], got {joints.shape}")
        rgb = read_rgb(record.path)
        part_map = None
        if self.part_maps:
            map_path = Path(record.extras["part_map"])
            labels = read_part_map(map_path)
            if labels.shape != rgb.shape[:2]:
                raise UnreadableImageError(
                    f"part label map {map_path} is {labels.shape[1]}×{labels.shape[0]} (W×H), "
                    f"its image {record.path} is {rgb.shape[1]}×{rgb.shape[0]}"
                )
            image, joints_out, part_map = self.transform(rgb, joints, labels)
        else:
            image, joints_out = self.transform(rgb, joints)
        sample: dict[str, Any] = {
            "image": image,
            "pid": record.pid,
            "camid": record.camid,
            "index": index,
        }
        if joints_out is not None:
            sample["joints"] = joints_out.to(torch.float32)
        if part_map is not None:
            sample["part_map"] = part_map
        return sample
