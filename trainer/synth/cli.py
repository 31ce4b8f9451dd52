"""`trainer synth reid ...` and `trainer synth video ...` (SPEC §8 command lines)."""

from __future__ import annotations

import argparse


def _size(text: str) -> tuple[int, int]:
    """`WxH` → (W, H)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must look like 128x256 (WxH), got {text!r}"
        ) from None
    return width, height


def _range(text: str) -> tuple[int, int]:
    """`MIN-MAX` (or a single number) → (MIN, MAX)."""
    try:
        parts = [int(v) for v in text.split("-")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX such as 4-8, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX such as 4-8, got {text!r}")
    return parts[0], parts[1]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (must be new or empty)")
    parser.add_argument("--cameras", type=int, required=True, help="number of cameras")
    parser.add_argument("--seed", type=int, default=0, help="same seed → identical files")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    parser.add_argument("--preview", action="store_true", help="also write DIR/preview.png")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    synth = subparsers.add_parser(
        "synth",
        help="render synthetic re-ID crop sets and multi-camera videos",
        description="Render the synthetic world (SPEC §6): Market-1501-layout crop sets with an "
        "occluded query split, and multi-camera videos with MOTChallenge ground truth.",
    )
    products = synth.add_subparsers(dest="product", required=True, metavar="PRODUCT")

    reid = products.add_parser(
        "reid",
        help="a re-ID crop set in Market-1501 layout (+ occluded_query/)",
        description="Writes bounding_box_train/, bounding_box_test/, query/, occluded_query/, "
        "manifest.jsonl (joints, occlusion, hidden parts per crop), part_maps/ (a per-pixel "
        "body-part label PNG per crop) and meta.json.",
    )
    _common(reid)
    reid.add_argument("--identities", type=int, required=True, help="identities (half train)")
    reid.add_argument(
        "--images-per-camera",
        type=_range,
        default=(4, 8),
        metavar="MIN-MAX",
        help="crops per identity per camera it visits (default 4-8, like Market)",
    )
    reid.add_argument(
        "--occluded-fraction",
        type=float,
        default=0.3,
        help="fraction of train/gallery crops with an occluder (default 0.3)",
    )
    reid.add_argument(
        "--distractor-fraction",
        type=float,
        default=0.1,
        help="pid 0000 distractors, as a fraction of the gallery (default 0.1)",
    )
    reid.add_argument(
        "--junk-fraction",
        type=float,
        default=0.03,
        help="pid -1 junk crops, as a fraction of the gallery (default 0.03)",
    )
    reid.add_argument(
        "--size", type=_size, default=(128, 256), metavar="WxH", help="crop size (default 128x256)"
    )
    reid.add_argument(
        "--test-identities",
        type=int,
        default=None,
        help="identities kept for query/gallery (default: half; the rest train)",
    )
    reid.add_argument(
        "--photo-textures",
        type=float,
        default=0.0,
        help="world v2: each garment's chance of a photo texture (default 0)",
    )
    reid.add_argument(
        "--photo-backgrounds",
        type=float,
        default=0.0,
        help="world v2: each crop's chance of a real photo behind the people (default 0)",
    )
    reid.add_argument(
        "--lookalikes",
        type=float,
        default=0.0,
        help="world v2: each identity's chance of dressing like an earlier identity of its "
        "split, but for one or two garments (default 0)",
    )
    reid.set_defaults(handler=_reid)

    video = products.add_parser(
        "video",
        help="multi-camera videos with MOT ground truth and cams.yaml",
        description="Writes camK/video.mp4, camK/seqinfo.ini, camK/gt/gt.txt (MOT17), "
        "camK/gt/joints.jsonl, cams.yaml and meta.json.",
    )
    _common(video)
    video.add_argument("--people", type=int, required=True, help="people walking the street")
    video.add_argument("--seconds", type=float, required=True, help="clip length")
    video.add_argument("--fps", type=int, default=10, help="frames per second (default 10)")
    video.add_argument(
        "--size", type=_size, default=(640, 360), metavar="WxH", help="frame size (default 640x360)"
    )
    video.add_argument(
        "--write-frames",
        action="store_true",
        help="also write camK/img1/000001.jpg ... (a MOTChallenge sequence)",
    )
    video.add_argument(
        "--photo-textures",
        type=float,
        default=0.0,
        help="each garment's chance of a photo texture (default 0: palette clothes)",
    )
    video.add_argument(
        "--look-strength",
        type=float,
        default=1.0,
        help="how far the cameras' gain, colour cast and gamma stray from neutral (default 1; "
        "2: a site unlike the training world)",
    )
    video.add_argument(
        "--people-seed",
        type=int,
        help="draw other people in the same street and cameras (default: --seed)",
    )
    video.set_defaults(handler=_video)


def _arguments(args: argparse.Namespace) -> dict:
    """The command line as recorded in meta.json."""
    return {k: v for k, v in vars(args).items() if k not in ("handler",)}


def _reid(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainer.synth.reid_set import ReidSetConfig, write_reid_set

    cfg = ReidSetConfig(
        identities=args.identities,
        cameras=args.cameras,
        seed=args.seed,
        images_per_camera=args.images_per_camera,
        occluded_fraction=args.occluded_fraction,
        size=args.size,
        distractor_fraction=args.distractor_fraction,
        junk_fraction=args.junk_fraction,
        test_identities=args.test_identities,
        photo_textures=args.photo_textures,
        photo_backgrounds=args.photo_backgrounds,
        lookalikes=args.lookalikes,
    )
    meta = write_reid_set(cfg, Path(args.out), args.workers, not args.quiet, _arguments(args))
    if args.preview:
        import cv2

        from trainer.synth.preview import contact_sheet

        cv2.imwrite(str(Path(args.out) / "preview.png"), contact_sheet(Path(args.out)))
    counts = ", ".join(f"{split} {n}" for split, n in meta["counts"].items())
    print(f"wrote {args.out}: {counts}")
    return 0


def _video(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainer.synth.video import VideoConfig, write_videos

    cfg = VideoConfig(
        cameras=args.cameras,
        people=args.people,
        seconds=args.seconds,
        seed=args.seed,
        fps=args.fps,
        size=args.size,
        write_frames=args.write_frames,
        photo_textures=args.photo_textures,
        look_strength=args.look_strength,
        people_seed=args.people_seed,
    )
    write_videos(cfg, Path(args.out), args.workers, not args.quiet, args.preview, _arguments(args))
    print(f"wrote {args.out}: {cfg.cameras} cameras × {cfg.frames} frames, {args.out}/cams.yaml")
    return 0
