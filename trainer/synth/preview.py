"""Pictures a person looks at to judge a synthetic set (SPEC §7: results are pictures too).

`contact_sheet`: rows are identities, columns their crops across cameras, each labelled with
camera, split and occlusion ratio: identities should look the same in every camera and the
occlusions plausible. `frame_grid`: one annotated frame per video camera.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

_SPLIT_TAGS = {"train": "tr", "gallery": "g", "query": "q", "occluded_query": "oq"}


def _label(tile: np.ndarray, text: str) -> None:
    cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, 13), (0, 0, 0), -1)
    cv2.putText(
        tile, text, (2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA
    )


def contact_sheet(root: Path, rows: int = 8, columns: int = 10) -> np.ndarray:
    """Sheet of `rows` test identities (those with occluded queries first) from `root`."""
    root = Path(root)
    manifest = root / "manifest.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"no manifest.jsonl in {root}; is it a `trainer synth reid` set?")
    by_pid: dict[int, list[dict]] = {}
    for line in manifest.read_text().splitlines():
        record = json.loads(line)
        if record["pid"] > 0 and record["split"] != "train":
            by_pid.setdefault(record["pid"], []).append(record)
    if not by_pid:
        raise ValueError(f"{manifest} lists no test identities to preview")
    chosen = sorted(by_pid)[:rows]
    tiles_per_row = []
    tile_shape = None
    for pid in chosen:
        records = sorted(by_pid[pid], key=lambda r: (r["camid"], r["split"] != "query", r["path"]))
        picked = [r for r in records if r["split"] == "occluded_query"][:2]
        picked += [r for r in records if r["split"] != "occluded_query"][: columns - len(picked)]
        picked.sort(key=lambda r: (r["camid"], r["path"]))
        row = []
        for record in picked:
            tile = cv2.imread(str(root / record["path"]))
            if tile is None:
                raise FileNotFoundError(f"cannot read crop {root / record['path']}")
            _label(
                tile, f"c{record['camid']} {_SPLIT_TAGS[record['split']]} {record['occlusion']:.2f}"
            )
            row.append(tile)
            tile_shape = tile.shape
        tiles_per_row.append((pid, row))
    assert tile_shape is not None
    blank = np.full(tile_shape, 40, np.uint8)
    sheet_rows = []
    for pid, row in tiles_per_row:
        head = np.full((tile_shape[0], 48, 3), 30, np.uint8)
        cv2.putText(
            head,
            f"{pid:04d}",
            (2, tile_shape[0] // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        row = row + [blank] * (columns - len(row))
        sheet_rows.append(np.hstack([head, *row]))
    return np.vstack(sheet_rows)


def frame_grid(frames: list[np.ndarray], names: list[str], columns: int = 2) -> np.ndarray:
    """Annotated frames side by side, `columns` per row, each titled with its camera."""
    if not frames:
        raise ValueError("frame_grid needs at least one frame")
    h, w = frames[0].shape[:2]
    titled = []
    for frame, name in zip(frames, names, strict=True):
        tile = frame.copy()
        cv2.putText(
            tile, name, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA
        )
        titled.append(tile)
    while len(titled) % columns:
        titled.append(np.zeros((h, w, 3), np.uint8))
    rows = [np.hstack(titled[k : k + columns]) for k in range(0, len(titled), columns)]
    return np.vstack(rows)
