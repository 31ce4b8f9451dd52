"""The run's annotated videos drawn again at its end with every box's final global id.

During a run a camera's video shows each box as it was labelled then (``t3`` until its tracklet
is matched, then ``G7``), and a later re-match or re-entry changes an id the video already
showed. When the run ends, each file camera's video is drawn again from its source with the
labels `stream eval` scores and `results/` holds: one colour per identity (the same in every
camera), ``G<id>`` labels and a trail of where the person walked in the last seconds. Live
sources cannot be read twice, and a looping source's frame indices repeat: their videos stay as
drawn live.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import supervision as sv

from stream.mtmc import LabelledRun, run_cameras


def relabel_videos(
    run_dir: Path, run: LabelledRun, fourcc: str = "mp4v", trail_s: float = 2.0
) -> list[Path]:
    """Redraw ``RUN/videos/CAMERA.mp4`` of every file camera with final ids (``run``:
    `stream.mtmc.final_labels`); returns them."""
    from stream.camera import AnnotatedVideo
    from stream.sources import open_recorded_source, reread_reason

    cameras = run_cameras(run_dir)
    written = []
    for camera, pred in sorted(run.predictions.items()):
        config = cameras.get(camera)
        if config is None or reread_reason(config) is not None:
            continue
        rows: dict[int, list[int]] = defaultdict(list)
        for row, frame in enumerate(pred.frame.tolist()):
            rows[frame].append(row)
        path = run_dir / "videos" / f"{camera}.mp4"
        partial = path.with_name(f".{camera}.relabel.mp4")
        source = open_recorded_source(config)
        video = AnnotatedVideo(partial, source.fps, source.size, fourcc, trail_s=trail_s)
        last = int(pred.frame.max())
        try:
            for frame in source.frames():
                if frame.index > last:
                    break
                chosen = rows.get(frame.index, [])
                boxes = sv.Detections(
                    xyxy=pred.xyxy[chosen].astype(np.float32).reshape(-1, 4),
                    tracker_id=pred.track_id[chosen],
                )
                video.write(frame, boxes, run.labels[camera][chosen].tolist())
        finally:
            video.close()
            source.close()
        os.replace(partial, path)
        written.append(path)
    return written
