"""`stream.relabel`: at the end of a run each file camera's video is drawn again with every box's
final global id, one colour per identity, and trails."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from stream_setup import ground_truth_run

from stream.camera import LABEL_PALETTE
from stream.mtmc import final_labels
from stream.relabel import relabel_videos


def _run_folder(scene: Path, folder: Path, final_ids: dict[tuple[str, int], int]) -> list[dict]:
    events = ground_truth_run(scene, folder)  # global id = person while the run went
    assignments = [
        {"camera": c, "track_id": t, "global_id": g, "score": 0.1, "is_new": False}
        for (c, t), g in final_ids.items()
    ]
    (folder / "assignments.jsonl").write_text("".join(json.dumps(a) + "\n" for a in assignments))
    return events


def test_videos_are_redrawn_with_the_final_ids_colour_and_keep_their_length(
    scene: Path, tmp_path: Path
) -> None:
    events = _run_folder(scene, tmp_path / "run", {("cam1", 1): 7})
    written = relabel_videos(tmp_path / "run", final_labels(tmp_path / "run"), trail_s=1.0)
    assert sorted(p.name for p in written) == ["cam1.mp4", "cam2.mp4"]
    # a box of cam1's person 1 (re-matched to G7 at the end) wears G7's colour from its first frame
    first = min(
        (e for e in events if e["camera"] == "cam1" and e["track_id"] == 1),
        key=lambda e: e["frame"],
    )
    capture = cv2.VideoCapture(str(tmp_path / "run" / "videos" / "cam1.mp4"))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    last_event = max(e["frame"] for e in events if e["camera"] == "cam1")
    assert frames == last_event + 1
    for _ in range(first["frame"] + 1):
        ok, image = capture.read()
    assert ok
    x1, y1, x2, y2 = (int(round(v)) for v in first["box"])
    edge = image[y1 + (y2 - y1) // 2, max(x1, 0)].astype(int)  # the box's left side, halfway
    expected = np.array(LABEL_PALETTE.by_idx(7).as_bgr())
    other = np.array(LABEL_PALETTE.by_idx(1).as_bgr())
    assert np.abs(edge - expected).sum() < np.abs(edge - other).sum()
