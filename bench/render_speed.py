"""Synthetic renderer speed: a re-ID crop set and a multi-camera video, into a temporary folder.

Yardstick (issue "Foundation", item 4): a 500-identity crop set renders in under 2 minutes on
the 2-core development machine. Prints crops/s and total seconds, then video frames/s.

    python bench/render_speed.py [--identities 500] [--cameras 6] [--video-people 12] ...
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from trainer.synth.reid_set import ReidSetConfig, write_reid_set
from trainer.synth.video import VideoConfig, write_videos

TARGET_500_IDENTITIES_S = 120.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=500)
    parser.add_argument("--cameras", type=int, default=6, help="crop-set cameras (Market has 6)")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--video-cameras", type=int, default=3)
    parser.add_argument("--video-people", type=int, default=12)
    parser.add_argument("--video-seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cfg = ReidSetConfig(identities=args.identities, cameras=args.cameras, seed=args.seed)
        start = time.perf_counter()
        meta = write_reid_set(cfg, Path(tmp) / "reid", workers=args.workers)
        seconds = time.perf_counter() - start
        crops = sum(meta["counts"].values())
        target = TARGET_500_IDENTITIES_S * args.identities / 500
        print(
            f"crop set: {args.identities} identities, {args.cameras} cameras, {crops} crops "
            f"(128x256) in {seconds:.1f} s = {crops / seconds:.1f} crops/s with "
            f"{args.workers} workers; target < {target:.0f} s -> "
            f"{'OK' if seconds < target else 'TOO SLOW'}"
        )

        video = VideoConfig(
            cameras=args.video_cameras,
            people=args.video_people,
            seconds=args.video_seconds,
            seed=args.seed,
        )
        start = time.perf_counter()
        write_videos(video, Path(tmp) / "video", workers=args.workers)
        seconds = time.perf_counter() - start
        frames = video.frames * video.cameras
        print(
            f"video: {video.cameras} cameras x {video.people} people x {video.seconds:g} s at "
            f"{video.fps} fps, {video.size[0]}x{video.size[1]}: {frames} frames in {seconds:.1f} s "
            f"= {frames / seconds:.1f} frames/s ({frames / seconds / video.cameras:.1f} per camera)"
        )


if __name__ == "__main__":
    main()
