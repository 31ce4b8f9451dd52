"""A tiny `stream run` set-up shared by the pipeline and search tests: a synthetic scene, an
untrained tiny model, and a cams.yaml whose worker embeds with it (torch runtime)."""

from __future__ import annotations

from pathlib import Path

import yaml

from reid_core import build_model, save
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
