"""What both synthetic products share on disk: the version stamp and the output-folder rule."""

from __future__ import annotations

from pathlib import Path

GENERATOR_VERSION = "occlureid-synth-3"
"""Recorded in every meta.json; bump it when the same seed would render different files."""
JOINT_FORMAT = (
    "[x, y, visible] per joint in image pixels, pixel centres on integer coordinates; visible = 1 "
    "when inside the image and not hidden by an occluder"
)


def prepare_output(out: Path) -> None:
    """Create `out`, refusing to mix a new product into existing files (nothing is overwritten)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"output folder {out} exists and is not empty; choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
