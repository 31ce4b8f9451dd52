"""The synthetic crop set written by ``trainer synth reid`` (SPEC §6).

Its images are in the exact Market-1501 layout, so `read_market_layout` parses them; beside them
``occluded_query/`` (the Occluded-Duke-style query split), ``manifest.jsonl`` (one JSON object
per crop: ``path`` relative to the root, ``split``, ``pid``, ``camid`` as in the file name,
``joints`` [[x, y, visible] × J] in crop pixels, ``occlusion``, ``occluder``, ``hidden_parts``,
``view``, ``part_map``) and ``meta.json`` (``joint_names``, ``body_part_names`` among others).
Everything the manifest knows beyond (path, pid, camid) goes into each record's ``extras``; the
pretrained-keypoint ablation (#6) reads ``extras["joints"]``. ``part_map`` names the crop's
per-pixel body-part label map (a PNG under ``part_maps/``, relative to the root in the
manifest); records carry it as an absolute `Path` (``ImageDataset(part_maps=True)`` reads it).
Sets rendered before part label maps existed have no ``part_map`` field, and load as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from reid_core.config import read_text_file
from trainer.data.base import DatasetLayoutError, ImageRecord, ReIDDataset
from trainer.data.market import MARKET_NAMING, MarketLayout, read_market_layout

DATASET = "synthetic"
MANIFEST = "manifest.jsonl"
META = "meta.json"
QUERY_SPLITS = ("query", "occluded_query")
SYNTHETIC = MarketLayout(DATASET, MARKET_NAMING, "0002_c1s1_000451_03.jpg", ())
RECORD_KEYS = ("path", "pid", "camid")


def read_joint_names(meta_path: Path) -> tuple[str, ...]:
    """The joint order of every manifest ``joints`` list, as the renderer wrote it."""
    try:
        meta = json.loads(read_text_file(meta_path, "data set description"))
    except json.JSONDecodeError as error:
        raise DatasetLayoutError(f"{DATASET}: {meta_path} is not valid JSON: {error}") from error
    names = meta.get("joint_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetLayoutError(f"{DATASET}: {meta_path} lacks a 'joint_names' list of strings")
    return tuple(names)


def read_manifest(manifest_path: Path, num_joints: int) -> dict[str, dict[str, Any]]:
    """Manifest entries by relative path; a malformed line is named by file and line number."""
    entries: dict[str, dict[str, Any]] = {}
    text = read_text_file(manifest_path, "data set manifest")
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{DATASET}: {manifest_path}:{line_number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetLayoutError(f"{where}: not valid JSON: {error}") from error
        missing = [key for key in (*RECORD_KEYS, "joints") if key not in entry]
        if missing:
            raise DatasetLayoutError(f"{where}: missing field(s) {', '.join(missing)}")
        joints = entry["joints"]
        if not (
            isinstance(joints, list)
            and len(joints) == num_joints
            and all(isinstance(j, list) and len(j) == 3 for j in joints)
        ):
            raise DatasetLayoutError(
                f"{where}: field 'joints' must be {num_joints} [x, y, visible] triples"
            )
        part_map = entry.get("part_map")
        if part_map is not None and not (isinstance(part_map, str) and part_map):
            raise DatasetLayoutError(f"{where}: field 'part_map' must be a relative file path")
        entries[entry["path"]] = entry
    return entries


def attach_manifest(
    records: list[ImageRecord], root: Path, entries: dict[str, dict[str, Any]]
) -> list[ImageRecord]:
    """Records with their manifest knowledge in ``extras``; identity and camera must agree.
    A ``part_map`` path is resolved against ``root``."""
    attached = []
    for record in records:
        relative = record.path.relative_to(root).as_posix()
        entry = entries.get(relative)
        if entry is None:
            raise DatasetLayoutError(f"{DATASET}: {record.path} has no entry in {root / MANIFEST}")
        # The manifest numbers cameras as the file name does (c1 → 1); records are 0-based.
        if (entry["pid"], entry["camid"]) != (record.pid, record.camid + 1):
            raise DatasetLayoutError(
                f"{DATASET}: {root / MANIFEST} says {relative} is pid {entry['pid']} camera "
                f"{entry['camid']}, its file name says pid {record.pid} camera {record.camid + 1}"
            )
        extras = {key: value for key, value in entry.items() if key not in RECORD_KEYS}
        if extras.get("part_map") is not None:
            extras["part_map"] = root / extras["part_map"]
        attached.append(ImageRecord(record.path, record.pid, record.camid, extras))
    return attached


def load_synthetic(
    root: Path | str, query_split: Literal["query", "occluded_query"] = "occluded_query"
) -> ReIDDataset:
    """The synthetic set; ``query_split`` picks the holistic ``query`` or, by default, the
    ``occluded_query`` split (the occluded protocol the paper evaluates)."""
    if query_split not in QUERY_SPLITS:
        raise ValueError(
            f"{DATASET}: option query_split={query_split!r} is not one of {', '.join(QUERY_SPLITS)}"
        )
    base, train, query, gallery = read_market_layout(
        root,
        SYNTHETIC,
        query_folder=query_split,
        extra_required=(*(s for s in QUERY_SPLITS if s != query_split), MANIFEST, META),
    )
    joint_names = read_joint_names(base / META)
    entries = read_manifest(base / MANIFEST, len(joint_names))
    return ReIDDataset(
        DATASET,
        base,
        attach_manifest(train, base, entries),
        attach_manifest(query, base, entries),
        attach_manifest(gallery, base, entries),
        joint_names=joint_names,
    )
