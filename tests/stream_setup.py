"""A tiny `stream run` set-up shared by the pipeline and search tests: a synthetic scene, an
untrained tiny model, and a cams.yaml whose worker embeds with it (torch runtime)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from reid_core import build_model, save
from stream.detectors import read_mot_file
from trainer.synth.video import VideoConfig, write_videos

TINY_MODEL = {
    "backbone": {"name": "resnet18", "weights": "random"},
    "transformer": {"d_model": 32, "nhead": 2, "num_encoder_layers": 1, "dim_feedforward": 64},
    "heads": {"num_parts": 3},
    "input_size": [64, 32],
}


def write_tiny_stream(
    root: Path,
    seed: int,
    threshold: float,
    *,
    cameras: int = 2,
    people: int = 3,
    seconds: float = 4,
    pace: float | None = None,
) -> Path:
    """Render the scene under ``root/scene``, save the model, write ``root/cams.yaml``
    (``pace``: the videos play at that multiple of real time, like cameras)."""
    write_videos(
        VideoConfig(cameras=cameras, people=people, seconds=seconds, seed=seed, size=(320, 180)),
        root / "scene",
        workers=1,
        show_progress=False,
    )
    save(build_model(TINY_MODEL).eval(), root / "tiny.safetensors")
    cams = yaml.safe_load((root / "scene" / "cams.yaml").read_text())
    for camera in cams["cameras"]:
        camera["source"] = f"scene/{camera['source']}"
        if pace is not None:
            camera["source"] = {"type": "video", "path": camera["source"], "pace": pace}
        camera["ground_truth"] = f"scene/{camera['ground_truth']}"
    cams["crops"] = {"min_width": 8, "min_height": 16, "every_n_frames": 2}
    cams["worker"] = {
        "embedder": {"runtime": "torch", "model": str(root / "tiny.safetensors"), "threads": 1},
        "tracklets": {"min_crops": 2},
        "gallery": {"threshold": threshold},
    }
    (root / "cams.yaml").write_text(yaml.safe_dump(cams))
    return root / "cams.yaml"


def ground_truth_events(
    gt_files: dict[str, Path], global_ids: dict[str, dict[int, int]] | None = None
) -> list[dict]:
    """Events that repeat the ground truth: track id = person id; global id = person id, or
    ``global_ids[camera][person]`` when given."""
    events = []
    for camera, path in gt_files.items():
        rows = read_mot_file(path).scored()
        for frame, person, box in zip(rows.frame, rows.ids, rows.xyxy, strict=True):
            mapping = (global_ids or {}).get(camera, {})
            events.append(
                {
                    "camera": camera,
                    "frame": int(frame) - 1,
                    "time": (int(frame) - 1) / 10,
                    "track_id": int(person),
                    "global_id": mapping.get(int(person), int(person)),
                    "box": [float(v) for v in box],
                    "score": 1.0,
                }
            )
    return events


def ground_truth_run(scene: Path, folder: Path, global_ids: bool = True) -> list[dict]:
    """A `stream run --out` folder whose events repeat the scene's ground truth (track id =
    person; global id = person, or none), with its cams.yaml and run.json: what the post-run
    readers (final-id videos, harvest) take. Returns the events."""
    cams = yaml.safe_load((scene / "cams.yaml").read_text())
    for camera in cams["cameras"]:
        camera["source"] = str(scene / camera["source"])
        camera["ground_truth"] = str(scene / camera["ground_truth"])
    folder.mkdir(parents=True)
    (folder / "cams.yaml").write_text(yaml.safe_dump(cams))
    (folder / "run.json").write_text(
        json.dumps({"runs": [{"run": "r", "cameras_yaml": str(folder / "cams.yaml")}]})
    )
    gt = {c["id"]: Path(c["ground_truth"]) for c in cams["cameras"]}
    events = [e if global_ids else {**e, "global_id": None} for e in ground_truth_events(gt)]
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return events
