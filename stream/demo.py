"""`stream demo` (what `make demo` runs): the main job on the embedded defaults.

Today it prepares the demo world: renders a synthetic 3-camera scene and a re-ID crop set (once;
they are kept under --out), writes their previews, and says which stages of the live pipeline are
not built yet. The stream issue turns it into the full run (train, export, `stream run`, score).
"""

from __future__ import annotations

import argparse
from pathlib import Path

# The stages `stream run` chains after rendering; listed so the demo says what it cannot do yet.
PENDING_STAGES = (
    "demo model training on the crop set",
    "ONNX export and the feature worker",
    "`stream run` over the scene (detector, tracker, worker, gallery)",
    "cross-camera scoring against the ground truth",
)


def run_demo(out: Path, seed: int = 0) -> dict[str, Path]:
    """Render what the demo needs into `out` (skipping what is already there)."""
    from rich.console import Console

    from trainer.synth.reid_set import ReidSetConfig, write_reid_set
    from trainer.synth.video import VideoConfig, write_videos

    console = Console()
    scene, crops = out / "scene", out / "synth"
    if not (scene / "cams.yaml").is_file():
        console.print(f"[bold]rendering the demo scene[/] → {scene}")
        write_videos(VideoConfig(cameras=3, people=8, seconds=20, seed=seed), scene, preview=True)
    if not (crops / "meta.json").is_file():
        console.print(f"[bold]rendering the demo crop set[/] → {crops}")
        write_reid_set(ReidSetConfig(identities=60, cameras=3, seed=seed), crops)
    console.print(f"scene: {scene / 'cams.yaml'} (preview {scene / 'preview.png'})")
    console.print(f"crops: {crops} ({crops / 'meta.json'})")
    console.print("[yellow]not built yet:[/] " + "; ".join(PENDING_STAGES))
    return {"scene": scene, "crops": crops}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the demo on the embedded defaults (what `make demo` runs)",
        description="Render the synthetic demo scene and crop set (kept under --out) and run "
        "what the pipeline can do so far.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="demo folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=lambda args: run_demo(args.out, args.seed) and 0)
