"""Product 2: multi-camera videos of people crossing cameras, with MOTChallenge ground truth.

SPEC §6 / §8 (`trainer synth video`). Per camera `camK/`: `video.mp4` (mp4v), `seqinfo.ini`,
`gt/gt.txt` (MOT17 rows `frame,id,x,y,w,h,conf,class,visibility`; frame 1 = video frame 0; id =
the global person id, the same in every camera; boxes are the person's full (amodal) extent
clipped to the frame, in MOTChallenge's 1-based pixel coordinates: x = column + 1),
`gt/joints.jsonl` (per gt row: joints in 0-based pixel coordinates, occlusion, hidden parts), and
optionally `img1/000001.jpg ...`. Plus `cams.yaml` for `stream run` and `meta.json`.

Cameras render in parallel processes; every frame's randomness comes from (seed, camera, frame),
so the files do not depend on the number of workers.
"""

from __future__ import annotations

import json
import os
import queue
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from trainer.synth.cameras import encode_jpeg
from trainer.synth.compositing import Compositor, PersonVisibility
from trainer.synth.figure import JOINT_NAMES, PART_NAMES, render_figure
from trainer.synth.occluders import draw_object
from trainer.synth.output import GENERATOR_VERSION, JOINT_FORMAT, prepare_output
from trainer.synth.parallel import run_in_processes, spawn_context
from trainer.synth.preview import frame_grid
from trainer.synth.progress import progress_bar
from trainer.synth.scenes import Street
from trainer.synth.seeding import generator
from trainer.synth.street_world import (
    StreetCamera,
    StreetLayout,
    WorldObject,
    build_layout,
    person_boxes,
)

_STREET, _FRAME_NOISE = 201, 202
_PERSON_LAYER = 1000  # owner ids of people: _PERSON_LAYER + pid; objects: their index
_MIN_DRAW_PX = 6  # people shorter than this are not drawn (and have no ground truth)


@dataclass(frozen=True)
class VideoConfig:
    """What to render; validated so a bad value names itself."""

    cameras: int
    people: int
    seconds: float
    seed: int = 0
    fps: int = 10
    size: tuple[int, int] = (640, 360)  # width, height
    write_frames: bool = False
    photo_textures: float = 0.0  # each garment's chance of a photo texture (world v2)
    look_strength: float = 1.0  # how far camera looks stray from neutral (sample_look)
    people_seed: int | None = None  # other people, same street and cameras (default: seed)

    def __post_init__(self) -> None:
        if not 0.0 <= self.photo_textures <= 1.0:
            raise ValueError(f"photo_textures must be in [0, 1], got {self.photo_textures}")
        if not 0.0 <= self.look_strength <= 3.0:
            raise ValueError(f"look_strength must be in [0, 3], got {self.look_strength}")
        if self.cameras < 2:
            raise ValueError(f"cameras must be >= 2 (people cross cameras), got {self.cameras}")
        if self.people < 1:
            raise ValueError(f"people must be >= 1, got {self.people}")
        if not 1 <= self.fps <= 60:
            raise ValueError(f"fps must be in 1..60, got {self.fps}")
        if self.seconds * self.fps < 2:
            raise ValueError(f"seconds × fps must give at least 2 frames, got {self.seconds} s")
        w, h = self.size
        if w < 64 or h < 64 or w % 2 or h % 2:
            raise ValueError(f"size must be even and at least 64x64 (WxH), got {w}x{h}")

    @property
    def frames(self) -> int:
        return max(2, round(self.seconds * self.fps))


def world_layout(cfg: VideoConfig) -> StreetLayout:
    """Cameras, objects and walkers of this configuration (cheap: no textures)."""
    return build_layout(
        cfg.seed,
        cfg.cameras,
        cfg.people,
        cfg.seconds,
        cfg.fps,
        cfg.size,
        cfg.photo_textures,
        cfg.look_strength,
        cfg.people_seed,
    )


def build_world(cfg: VideoConfig) -> tuple[StreetLayout, Street]:
    """The layout and the street textures, from the seed."""
    layout = world_layout(cfg)
    street = Street.build(generator(cfg.seed, _STREET), layout.length_m, layout.width_m)
    return layout, street


@dataclass
class FrameRender:
    """One camera frame: the picture and what the renderer knows about each person in it."""

    image: np.ndarray
    people: dict[int, PersonVisibility]  # pid → visibility
    boxes: dict[int, tuple[int, int, int, int]]  # pid → clipped amodal box, exclusive ends


class CameraRenderer:
    """Renders one camera's frames: static street + objects once, people per frame."""

    def __init__(self, cfg: VideoConfig, layout: StreetLayout, street: Street, index: int):
        self.cfg = cfg
        self.layout = layout
        self.index = index
        self.camera: StreetCamera = layout.cameras[index]
        background = Compositor(street.render(self.camera.pinhole))
        for number, obj in enumerate(layout.objects):
            self._draw_object(background, number, obj)
        self.static = background

    def _draw_object(self, comp: Compositor, number: int, obj: WorldObject) -> None:
        """Draw a street object into the box its 3-D corners span in this camera."""
        corners, depths = self.camera.pinhole.project(obj.corners())
        if depths.min() < 0.5:
            return
        x0, y0 = np.floor(corners.min(axis=0)).astype(int)
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
        h, w = comp.shape
        if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h or x1 - x0 > 4 * w or y1 - y0 > 4 * h:
            return
        patch = draw_object(obj.kind, x1 - x0, y1 - y0, obj.seed)
        centre_depth = float(self.camera.pinhole.project(np.array([[obj.x, 0.0, obj.z]]))[1][0])
        comp.paste(number, "object", patch.image, patch.mask, x0, y0, centre_depth)

    def render(self, frame: int) -> FrameRender:
        """Frame `frame` (0-based) of this camera."""
        t = frame / self.cfg.fps
        comp = Compositor(
            self.static.image.copy(),
            self.static.depth.copy(),
            self.static.owner.copy(),
            self.static.kinds,
        )
        pinhole = self.camera.pinhole
        placed = []
        for walker in self.layout.walkers:
            foot = walker.position(t)
            boxes, depths = person_boxes(pinhole, foot[None, :], walker.height_m)
            x0, y0, x1, y1 = boxes[0]
            stature = y1 - y0
            if depths[0] < 1.0 or stature < _MIN_DRAW_PX:
                continue
            if x1 < -stature or x0 > pinhole.width + stature or y0 > pinhole.height or y1 < 0:
                continue
            sprite = render_figure(
                walker.appearance,
                stature,
                pinhole.view_angle_deg(foot, walker.heading(t)),
                walker.phase(t),
                lighting=self.camera.look.lighting,
            )
            layer = _PERSON_LAYER + walker.pid
            placed.append(comp.place(layer, sprite, 0.5 * (x0 + x1), y1, float(depths[0])))
        people, boxes_out = {}, {}
        h, w = comp.shape
        for item in placed:
            bx0, by0, bx1, by1 = item.box
            clipped = (max(0, bx0), max(0, by0), min(w, bx1), min(h, by1))
            if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
                continue
            people[item.layer - _PERSON_LAYER] = comp.measure(item)
            boxes_out[item.layer - _PERSON_LAYER] = clipped
        noise_rng = generator(self.cfg.seed, _FRAME_NOISE, self.index, frame)
        image = self.camera.look.apply(comp.image, noise_rng)
        return FrameRender(image, people, boxes_out)


def gt_row(frame: int, pid: int, box: tuple[int, int, int, int], occlusion: float) -> str:
    """One MOT17 ground-truth line (1-based frame and pixel coordinates)."""
    x0, y0, x1, y1 = box
    visibility = max(0.0, 1.0 - occlusion)
    return f"{frame + 1},{pid},{x0 + 1},{y0 + 1},{x1 - x0},{y1 - y0},1,1,{visibility:.4f}"


def seqinfo(name: str, cfg: VideoConfig) -> str:
    w, h = cfg.size
    return (
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate={cfg.fps}\nseqLength={cfg.frames}\n"
        f"imWidth={w}\nimHeight={h}\nimExt=.jpg\n"
    )


_WORLD: tuple[StreetLayout, Street] | None = None
_PROGRESS: queue.Queue | None = None


def _init_worker(cfg: VideoConfig, progress_queue) -> None:
    global _WORLD, _PROGRESS
    cv2.setNumThreads(1)
    _WORLD = build_world(cfg)
    _PROGRESS = progress_queue


def _render_camera_job(job: tuple[VideoConfig, Path, int]) -> dict:
    cfg, out, index = job
    assert _WORLD is not None, "worker not initialised"
    return render_camera(cfg, *_WORLD, index, out, _PROGRESS.put if _PROGRESS else None)


def render_camera(
    cfg: VideoConfig,
    layout: StreetLayout,
    street: Street,
    index: int,
    out: Path,
    report: Callable[[int], None] | None = None,
) -> dict:
    """Write one camera's video, frames and ground truth; returns visits and a preview frame."""
    renderer = CameraRenderer(cfg, layout, street, index)
    name = renderer.camera.name
    folder = out / name
    (folder / "gt").mkdir(parents=True)
    if cfg.write_frames:
        (folder / "img1").mkdir()
    (folder / "seqinfo.ini").write_text(seqinfo(name, cfg))
    writer = cv2.VideoWriter(
        str(folder / "video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), cfg.fps, cfg.size
    )
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write mp4v video to {folder / 'video.mp4'}")
    visits: dict[int, list[int]] = {}
    preview, preview_count = None, -1
    quality = renderer.camera.look.jpeg_quality
    with open(folder / "gt" / "gt.txt", "w") as gt, open(folder / "gt" / "joints.jsonl", "w") as js:
        for frame in range(cfg.frames):
            result = renderer.render(frame)
            writer.write(result.image)
            if cfg.write_frames:
                (folder / "img1" / f"{frame + 1:06d}.jpg").write_bytes(
                    encode_jpeg(result.image, quality)
                )
            for pid in sorted(result.people):
                vis = result.people[pid]
                gt.write(gt_row(frame, pid, result.boxes[pid], vis.occlusion) + "\n")
                js.write(
                    json.dumps(
                        {
                            "frame": frame + 1,
                            "id": pid,
                            "joints": vis.joints_list(),
                            "occlusion": round(vis.occlusion, 4),
                            "hidden_parts": vis.hidden_parts,
                        }
                    )
                    + "\n"
                )
                if vis.occlusion < 1.0:
                    visits.setdefault(pid, []).append(frame + 1)
            shown = sum(v.occlusion < 1.0 for v in result.people.values())
            if shown > preview_count:
                preview, preview_count = _annotated(result), shown
            if report is not None and (frame % 10 == 9 or frame == cfg.frames - 1):
                report(frame % 10 + 1)
    writer.release()
    return {"camera": name, "visits": visits, "preview": preview}


def _annotated(result: FrameRender) -> np.ndarray:
    """The frame with its ground-truth boxes and ids drawn on."""
    image = result.image.copy()
    for pid, (x0, y0, x1, y1) in result.boxes.items():
        cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 255), 1)
        cv2.putText(
            image,
            str(pid),
            (x0 + 2, max(10, y0 + 11)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (0, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return image


def cams_yaml(cfg: VideoConfig, layout: StreetLayout) -> str:
    """The `stream run` camera file for these videos (paths relative to the yaml file)."""
    body = {
        "cameras": [
            {
                "id": c.name,
                "source": f"{c.name}/video.mp4",
                "ground_truth": f"{c.name}/gt/gt.txt",
                "fps": cfg.fps,
            }
            for c in layout.cameras
        ],
        "detector": {"name": "ground_truth"},
        "tracker": {"name": "bytetrack"},
    }
    return "# written by `trainer synth video`\n" + yaml.safe_dump(body, sort_keys=False)


def write_videos(
    cfg: VideoConfig,
    out: Path,
    workers: int | None = None,
    show_progress: bool = True,
    preview: bool = False,
    args: dict | None = None,
) -> dict:
    """Render every camera into `out`; returns the metadata also written to `meta.json`."""
    out = Path(out)
    prepare_output(out)
    workers = max(1, min(workers or os.cpu_count() or 1, cfg.cameras))
    with progress_bar(show_progress) as progress:
        task = progress.add_task("rendering video frames", total=cfg.frames * cfg.cameras)

        def advance(frames: int) -> None:
            progress.advance(task, frames)

        if workers == 1:
            layout, street = build_world(cfg)
            results = [
                render_camera(cfg, layout, street, k, out, advance) for k in range(cfg.cameras)
            ]
        else:
            layout = world_layout(cfg)
            results = _render_in_pool(cfg, out, workers, advance)
    (out / "cams.yaml").write_text(cams_yaml(cfg, layout))
    if preview:
        names = [r["camera"] for r in results]
        cv2.imwrite(str(out / "preview.png"), frame_grid([r["preview"] for r in results], names))
    meta = _meta(cfg, layout, results, args)
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _render_in_pool(
    cfg: VideoConfig, out: Path, workers: int, advance: Callable[[int], None]
) -> list[dict]:
    """One process per camera (up to `workers`); frame counts come back through a queue."""
    progress_queue = spawn_context().Queue()

    def drain() -> None:
        while True:
            try:
                advance(progress_queue.get_nowait())
            except queue.Empty:
                return

    jobs = [(cfg, out, k) for k in range(cfg.cameras)]
    results = run_in_processes(
        _render_camera_job,
        jobs,
        workers,
        _init_worker,
        (cfg, progress_queue),
        on_result=lambda _: drain(),
        on_tick=drain,
    )
    drain()
    return results


def _meta(cfg: VideoConfig, layout: StreetLayout, results: list[dict], args: dict | None) -> dict:
    visits: dict[str, list[dict]] = {}
    for result in results:
        for pid, frames in sorted(result["visits"].items()):
            visits.setdefault(str(pid), []).append(
                {
                    "camera": result["camera"],
                    "first_frame": frames[0],
                    "last_frame": frames[-1],
                    "frames": len(frames),
                }
            )
    return {
        "generator": GENERATOR_VERSION,
        "seed": cfg.seed,
        "joint_names": list(JOINT_NAMES),
        "part_names": list(PART_NAMES),
        "joint_format": JOINT_FORMAT,
        "frames": cfg.frames,
        "fps": cfg.fps,
        "photo_textures": cfg.photo_textures,
        "look_strength": cfg.look_strength,
        "people_seed": cfg.people_seed,
        "image_size": list(cfg.size),
        "street": {"length_m": layout.length_m, "width_m": layout.width_m},
        "cameras": [
            {"name": c.name, "kind": c.kind, "pinhole": asdict(c.pinhole), "look": asdict(c.look)}
            for c in layout.cameras
        ],
        "objects": [asdict(o) for o in layout.objects],
        "people": {str(w.pid): {"visits": visits.get(str(w.pid), [])} for w in layout.walkers},
        "args": args if args is not None else asdict(cfg),
    }
