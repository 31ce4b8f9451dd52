"""The shared world of the multi-camera videos: a street, its cameras, objects and walkers.

The street runs along x (0..length), z goes across it (0 = near façade, where cameras hang).
Each camera watches its own stretch, from across the street (people seen from the side) or
along it (people walking towards it seen from the front, away from it from the back), so
neighbouring views overlap and people cross from one camera into the next (SPEC §6). Parked
cars, pillars, bins, planters, boards and railings stand between the cameras and the walkway
or beyond it. Every walker is routed so that it shows up in at least two cameras.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainer.synth.cameras import CameraLook, PinholeCamera, sample_look
from trainer.synth.occluders import OBJECT_KINDS
from trainer.synth.people import Appearance, sample_appearance
from trainer.synth.seeding import generator

STRETCH_M = 14.0  # street length each camera is responsible for
MARGIN_M = 15.0  # street before the first and after the last stretch
PERSON_HEIGHT_M = 1.75
STEP_CYCLE_M = 1.4  # one full walking cycle (two steps)
_CAMERA_CLEARANCE_M = 3.5
MIN_BOX_HEIGHT = 0.045  # of the frame height: a smaller person does not count as seen
# seed namespaces (video world); the renderer adds its own for frames
_LAYOUT, _CAMERAS, _OBJECTS, _WALKERS = 101, 102, 103, 104

# size (along x, across z, height) in metres
_OBJECT_SIZES = {
    "car": (4.2, 1.8, 1.5),
    "pillar": (0.6, 0.6, 4.0),
    "bin": (0.6, 0.6, 1.1),
    "bush": (1.6, 1.0, 1.2),
    "board": (1.0, 0.1, 1.6),
    "railing": (3.0, 0.05, 1.0),
}


@dataclass(frozen=True)
class StreetCamera:
    """One video camera: geometry, look and which objects its stretch of street holds."""

    name: str
    kind: str  # across | along_forward | along_backward
    pinhole: PinholeCamera
    look: CameraLook


@dataclass(frozen=True)
class WorldObject:
    """A static object standing on the street (a box of the given size, centred at x, z)."""

    kind: str
    x: float
    z: float
    size: tuple[float, float, float]
    seed: int

    def corners(self) -> np.ndarray:
        """The 8 corners of its box, [8, 3]."""
        length, depth, height = self.size
        xs = (self.x - length / 2, self.x + length / 2)
        zs = (self.z - depth / 2, self.z + depth / 2)
        return np.array([[x, y, z] for x in xs for y in (0.0, height) for z in zs])


@dataclass(frozen=True)
class Walker:
    """A person walking the street at constant speed with a gentle lane drift.

    At either end of the street (beyond every camera's stretch) the walker turns round, so
    nobody pops out of existence in view and people come back past the cameras facing the
    other way.
    """

    pid: int
    appearance: Appearance
    start_x: float
    direction: int  # +1 starts walking towards +x
    lane_z: float
    drift_amplitude: float
    drift_period_s: float
    phase0: float
    street_length_m: float

    @property
    def height_m(self) -> float:
        return PERSON_HEIGHT_M * self.appearance.height

    def _unfolded(self, times: np.ndarray) -> np.ndarray:
        """Position along an endless street; folding it back gives the turn-rounds."""
        travelled = self.start_x + self.direction * self.appearance.walking_speed * times
        return np.mod(travelled, 2 * self.street_length_m)

    def position(self, t: float) -> np.ndarray:
        return self.positions(np.array([t]))[0]

    def positions(self, times: np.ndarray) -> np.ndarray:
        """Ground points [T, 3] at the given times (seconds)."""
        unfolded = self._unfolded(times)
        x = np.where(
            unfolded <= self.street_length_m, unfolded, 2 * self.street_length_m - unfolded
        )
        z = self.lane_z + self.drift_amplitude * np.sin(2 * np.pi * times / self.drift_period_s)
        return np.stack([x, np.zeros_like(x), z], axis=1)

    def heading(self, t: float) -> np.ndarray:
        """Unit walking direction at time t."""
        returning = self._unfolded(np.array([t]))[0] > self.street_length_m
        along = self.direction * (-1 if returning else 1) * self.appearance.walking_speed
        dz = self.drift_amplitude * 2 * np.pi / self.drift_period_s
        dz *= np.cos(2 * np.pi * t / self.drift_period_s)
        v = np.array([along, 0.0, dz])
        return v / np.linalg.norm(v)

    def phase(self, t: float) -> float:
        """Walking-cycle phase: one cycle per STEP_CYCLE_M metres walked."""
        distance = self.appearance.walking_speed * t
        return float(self.phase0 + 2 * np.pi * distance / STEP_CYCLE_M)


@dataclass(frozen=True)
class StreetLayout:
    """Everything about the world except its textures (see scenes.Street)."""

    length_m: float
    width_m: float
    walkway: tuple[float, float]
    cameras: tuple[StreetCamera, ...]
    objects: tuple[WorldObject, ...]
    walkers: tuple[Walker, ...]


def person_boxes(camera: PinholeCamera, feet: np.ndarray, height_m: float):
    """Approximate image boxes [N, 4] (x0, y0, x1, y1) and depths [N] of standing people."""
    heads = feet + np.array([0.0, height_m, 0.0])
    foot_px, depth = camera.project(feet)
    head_px, _ = camera.project(heads)
    half_w = 0.2 * (foot_px[:, 1] - head_px[:, 1])
    boxes = np.stack(
        [foot_px[:, 0] - half_w, head_px[:, 1], foot_px[:, 0] + half_w, foot_px[:, 1]], axis=1
    )
    return boxes, depth


def seen_frames(camera: PinholeCamera, walker: Walker, times: np.ndarray) -> int:
    """Frames in which the walker is mostly inside the view and tall enough to count."""
    feet = walker.positions(times)
    boxes, depth = person_boxes(camera, feet, walker.height_m)
    x0, y0, x1, y1 = boxes.T
    inside_w = np.clip(np.minimum(x1, camera.width) - np.maximum(x0, 0.0), 0.0, None)
    inside_h = np.clip(np.minimum(y1, camera.height) - np.maximum(y0, 0.0), 0.0, None)
    seen = (
        (depth > 0.5)
        & (y1 - y0 >= MIN_BOX_HEIGHT * camera.height)
        & (inside_w * inside_h >= 0.6 * (x1 - x0) * (y1 - y0))
    )
    return int(np.count_nonzero(seen))


def _camera(
    rng, index: int, kind: str, width_m: float, size: tuple[int, int], look_strength: float = 1.0
) -> StreetCamera:
    """A camera watching stretch `index`, aimed at chest height of a walker in its middle."""
    centre_x = MARGIN_M + (index + 0.5) * STRETCH_M
    aim = np.array([centre_x + rng.uniform(-2, 2), 1.0, rng.uniform(7.0, width_m - 3.0)])
    if kind == "across":
        position = np.array([centre_x + rng.uniform(-3, 3), rng.uniform(3.0, 5.0), 0.4])
        hfov_range = (55.0, 75.0)
    else:
        back = -1.0 if kind == "along_forward" else 1.0
        position = np.array(
            [
                centre_x + back * rng.uniform(10.0, 14.0),
                rng.uniform(3.5, 5.5),
                rng.uniform(0.8, 2.0),
            ]
        )
        hfov_range = (45.0, 60.0)
    to_aim = aim - position
    horizontal = float(np.hypot(to_aim[0], to_aim[2]))
    yaw = float(np.degrees(np.arctan2(to_aim[2], to_aim[0])))
    tilt = float(np.degrees(np.arctan2(-to_aim[1], horizontal)) + rng.uniform(-3.0, 3.0))
    width, height = size
    hfov = np.radians(rng.uniform(*hfov_range))
    pinhole = PinholeCamera(
        position=tuple(float(v) for v in position),
        yaw_deg=yaw,
        tilt_deg=tilt,
        focal_px=float(width / 2 / np.tan(hfov / 2)),
        width=width,
        height=height,
    )
    return StreetCamera(f"cam{index + 1}", kind, pinhole, sample_look(rng, look_strength))


def _objects(
    rng: np.random.Generator, cameras: tuple[StreetCamera, ...], width_m: float
) -> list[WorldObject]:
    """Two to four objects per stretch, mostly between the cameras and the walkway.

    Nothing stands within `_CAMERA_CLEARANCE_M` of a camera: an object right in front of the
    lens would fill the view.
    """
    weights = rng.dirichlet([0.8] * len(OBJECT_KINDS))
    lenses = np.array([[c.pinhole.position[0], c.pinhole.position[2]] for c in cameras])
    objects = []
    for index in range(len(cameras)):
        centre_x = MARGIN_M + (index + 0.5) * STRETCH_M
        for _ in range(int(rng.integers(2, 5))):
            kind = str(OBJECT_KINDS[int(rng.choice(len(OBJECT_KINDS), p=weights))])
            size = _OBJECT_SIZES[kind]
            for _attempt in range(20):
                near = rng.random() < 0.7  # between the cameras and the walkway
                z = rng.uniform(1.5, 3.4) if near else rng.uniform(width_m - 2.0, width_m - 0.7)
                z = float(np.clip(z, size[1] / 2 + 0.2, width_m - size[1] / 2 - 0.2))
                x = float(centre_x + rng.uniform(-0.45, 0.45) * STRETCH_M)
                clearance = np.hypot(lenses[:, 0] - x, lenses[:, 1] - z).min() - size[0] / 2
                if clearance >= _CAMERA_CLEARANCE_M:
                    objects.append(WorldObject(kind, x, z, size, int(rng.integers(2**31))))
                    break
    return objects


def _route(
    rng: np.random.Generator,
    pid: int,
    app: Appearance,
    length_m: float,
    walkway: tuple[float, float],
    cameras: tuple[StreetCamera, ...],
    times: np.ndarray,
    fps: int,
) -> Walker:
    """Draw routes until one shows the walker in two cameras for >= 0.3 s each."""
    need = max(2, min(len(times) // 2, round(0.3 * fps)))
    for _ in range(300):
        walker = Walker(
            pid=pid,
            appearance=app,
            start_x=float(rng.uniform(MARGIN_M - 5.0, length_m - MARGIN_M + 5.0)),
            direction=1 if rng.random() < 0.5 else -1,
            lane_z=float(rng.uniform(*walkway)),
            drift_amplitude=float(rng.uniform(0.0, 0.6)),
            drift_period_s=float(rng.uniform(6.0, 20.0)),
            phase0=float(rng.uniform(0.0, 2 * np.pi)),
            street_length_m=length_m,
        )
        seen_in = sum(seen_frames(c.pinhole, walker, times) >= need for c in cameras)
        if seen_in >= 2:
            return walker
    raise ValueError(
        f"could not route person {pid} through two camera views within {len(times) / fps:.1f} s; "
        "use a longer --seconds"
    )


def build_layout(
    seed: int,
    n_cameras: int,
    n_people: int,
    seconds: float,
    fps: int,
    size: tuple[int, int],
    photo_textures: float = 0.0,
    look_strength: float = 1.0,
    people_seed: int | None = None,
) -> StreetLayout:
    """Lay out the street, its cameras, objects and walkers (deterministic in `seed`).
    ``photo_textures`` and ``look_strength``: a site that looks unlike the training world
    (clothes with photo textures, cameras that differ more; `stream harvest`'s benchmark);
    ``people_seed`` (default ``seed``) draws other people in the same street and cameras."""
    rng = generator(seed, _LAYOUT)
    width_m = float(rng.uniform(14.0, 18.0))
    length_m = 2 * MARGIN_M + n_cameras * STRETCH_M
    walkway = (4.5, width_m - 2.5)
    kinds = ["across", "along_forward", "along_backward"]
    order = [kinds[k % 3] for k in rng.permutation(max(3, n_cameras))][:n_cameras]
    cameras = tuple(
        _camera(generator(seed, _CAMERAS, k), k, kind, width_m, size, look_strength)
        for k, kind in enumerate(order)
    )
    objects = tuple(_objects(generator(seed, _OBJECTS), cameras, width_m))
    times = np.arange(max(2, round(seconds * fps))) / fps
    walkers = []
    for pid in range(1, n_people + 1):
        person_rng = generator(seed if people_seed is None else people_seed, _WALKERS, pid)
        app = sample_appearance(person_rng, photo_textures)
        walkers.append(_route(person_rng, pid, app, length_m, walkway, cameras, times, fps))
    return StreetLayout(length_m, width_m, walkway, cameras, objects, tuple(walkers))
