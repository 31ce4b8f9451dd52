"""Rendering one planned crop: backdrop, person, occluder fitted to a target, camera look.

A `CropSpec` says who, in which camera, from which side, how occluded; `render_crop` draws it
deterministically from the spec's seed. Occluders are *fitted*: an object rises from the
bottom (car, bin, bush, board, railing) or a pillar or passer-by slides in from the side until
the target share of the person is hidden, measured on the person's own mask (SPEC §6). Beside
the image comes the person's part label map: its body-part labels on its visible pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from trainer.synth.cameras import CameraLook, sample_look
from trainer.synth.compositing import Compositor, PersonVisibility, PlacedSprite
from trainer.synth.figure import FigureSprite, render_figure
from trainer.synth.occluders import BOTTOM_KINDS, OBJECT_KINDS, draw_object
from trainer.synth.people import Appearance, lookalike, sample_appearance
from trainer.synth.photos import photo_background
from trainer.synth.scenes import CropBackdrop
from trainer.synth.seeding import generator

# seed namespaces of the crop set: what a generator is for, so streams never collide
IDENTITY, DISTRACTOR, JUNK, CAMERA, EXTRA, RENDER, BACKDROP, PHOTO_BACKGROUND, LOOKALIKE = range(
    1, 10
)
OCCLUDED_QUERY_MIN = 0.3
_TARGET_DEPTH, _OCCLUDER_DEPTH, _CLUTTER_DEPTH = 10.0, 5.0, 20.0


@dataclass(frozen=True)
class CropSpec:
    """One planned crop: who, where, which split, how occluded. Everything else is seeded."""

    path: str
    split: str
    pid: int
    camid: int
    person: tuple[int, int]  # (namespace, number): which appearance
    view_angle: float
    phase: float
    gait: float
    stature: float  # person height / crop height
    occluder: str  # planned cause: none | object | person | border
    target_occlusion: float
    render_seed: int


@dataclass(frozen=True)
class CropCamera:
    """A crop camera: its look, which views it sees, which objects stand in its scene."""

    camid: int
    look: CameraLook
    view_weights: tuple[float, float, float]  # front, back, side
    object_weights: tuple[float, ...]  # over OBJECT_KINDS


@lru_cache(maxsize=64)
def crop_camera(seed: int, camid: int) -> CropCamera:
    """Camera `camid` of the set with this seed (the same in every process)."""
    rng = generator(seed, CAMERA, camid)
    return CropCamera(
        camid=camid,
        look=sample_look(rng),
        view_weights=tuple(float(v) for v in rng.dirichlet((0.9, 0.9, 0.9))),
        object_weights=tuple(float(v) for v in rng.dirichlet([0.8] * len(OBJECT_KINDS))),
    )


@lru_cache(maxsize=4096)
def appearance(seed: int, namespace: int, number: int, photo_textures: float = 0.0) -> Appearance:
    """The look of person `number` of a namespace (identity, distractor, junk, extra)."""
    return sample_appearance(generator(seed, namespace, number), photo_textures)


@lru_cache(maxsize=4096)
def identity_appearance(
    seed: int, pid: int, photo_textures: float, lookalikes: float, first_of_split: int
) -> Appearance:
    """The look of identity ``pid``: its own draw, or with chance ``lookalikes`` a look-alike
    (`trainer.synth.people.lookalike`) of an earlier identity of its split (pids
    ``first_of_split`` … pid − 1), so train look-alikes resemble train identities and test
    look-alikes test ones. At 0 every identity is its own draw, as before the switch."""
    own = appearance(seed, IDENTITY, pid, photo_textures)
    rng = generator(seed, LOOKALIKE, pid)
    if pid <= first_of_split or rng.random() >= lookalikes:
        return own
    model = appearance(seed, IDENTITY, int(rng.integers(first_of_split, pid)), photo_textures)
    return lookalike(rng, model, own)


@dataclass
class CropRender:
    """A rendered crop and what the renderer knows about its person.

    ``part_map`` (H×W uint8, aligned with ``image``): the target person's
    `trainer.synth.figure.BODY_PART_NAMES` label where its pixel shows in the crop
    (``visibility.visible_mask``), 0 elsewhere (background, occluders, other people).
    """

    image: np.ndarray
    visibility: PersonVisibility
    view: str
    part_map: np.ndarray

    def record(self, spec: CropSpec) -> dict:
        """The crop's manifest.jsonl entry."""
        return {
            "path": spec.path,
            "split": spec.split,
            "pid": spec.pid,
            "camid": spec.camid,
            "occlusion": round(self.visibility.occlusion, 4),
            "occluder": self.visibility.cause,
            "hidden_parts": self.visibility.hidden_parts,
            "joints": self.visibility.joints_list(),
            "view": self.view,
        }


class CropWorld:
    """Per-process caches of the cameras' backdrops; built lazily, deterministically.

    World v2 switches (`ReidSetConfig`): ``photo_textures`` is each garment's chance of a
    photo texture, ``photo_backgrounds`` each crop's chance of a real photo behind the people
    instead of its camera's drawn street (`trainer.synth.photos`), ``lookalikes`` each
    identity's chance of dressing like an earlier one of its split (identities
    1 … ``train_identities`` are train, the rest test; `identity_appearance`)."""

    def __init__(
        self,
        seed: int,
        size: tuple[int, int],
        photo_textures: float = 0.0,
        photo_backgrounds: float = 0.0,
        lookalikes: float = 0.0,
        train_identities: int = 0,
    ) -> None:
        self.seed = seed
        self.size = size
        self.photo_textures = photo_textures
        self.photo_backgrounds = photo_backgrounds
        self.lookalikes = lookalikes
        self.train_identities = train_identities
        self._backdrops: dict[int, CropBackdrop] = {}

    def person(self, namespace: int, number: int) -> Appearance:
        if namespace == IDENTITY and self.lookalikes > 0.0:
            first = 1 if number <= self.train_identities else self.train_identities + 1
            return identity_appearance(
                self.seed, number, self.photo_textures, self.lookalikes, first
            )
        return appearance(self.seed, namespace, number, self.photo_textures)

    def background(self, spec: CropSpec, rng: np.random.Generator) -> np.ndarray:
        """The crop's empty scene: a window of its camera's street (drawn with ``rng``, as in
        world v1), or a photo, slightly out of focus, from a stream of its own."""
        w, h = self.size
        street = self.backdrop(spec.camid).window(rng, w, h)
        if self.photo_backgrounds <= 0.0:
            return street
        photo_rng = generator(spec.render_seed, PHOTO_BACKGROUND)
        if photo_rng.random() >= self.photo_backgrounds:
            return street
        photo = photo_background(photo_rng, h, w)
        return cv2.GaussianBlur(photo, (0, 0), photo_rng.uniform(0.3, 1.5))

    def backdrop(self, camid: int) -> CropBackdrop:
        if camid not in self._backdrops:
            rng = generator(self.seed, BACKDROP, camid)
            self._backdrops[camid] = CropBackdrop.build(rng, *self.size)
        return self._backdrops[camid]


def _fit(coverage: Callable[[float], float], target: float, iterations: int = 10) -> float:
    """Smallest s in [0, 1] (to 2^-iterations) with coverage(s) >= target; coverage rises in s."""
    lo, hi = 0.0, 1.0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if coverage(mid) < target:
            lo = mid
        else:
            hi = mid
    return hi


def _own_mask(sprite: FigureSprite, x0: int, y0: int, shape: tuple[int, int]) -> np.ndarray:
    """The sprite's pixels as a frame-sized mask (the part inside the frame)."""
    mask = np.zeros(shape, bool)
    _paste_mask(mask, sprite.labels > 0, x0, y0)
    return mask


def _paste_mask(frame: np.ndarray, mask: np.ndarray, x0: int, y0: int) -> None:
    h, w = frame.shape
    mh, mw = mask.shape
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(w, x0 + mw), min(h, y0 + mh)
    if fx1 > fx0 and fy1 > fy0:
        frame[fy0:fy1, fx0:fx1] |= mask[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]


def _border_placement(
    sprite: FigureSprite,
    foot_x: float,
    foot_y: float,
    target: float,
    rng: np.random.Generator,
    shape: tuple[int, int],
) -> tuple[float, float]:
    """Shift the person out of the crop (bottom or one side) until `target` of it is cut."""
    h, w = shape
    total = sprite.pixel_count
    sh, sw = sprite.labels.shape
    direction = rng.choice(["bottom", "left", "right"], p=[0.5, 0.25, 0.25])

    def moved(s: float) -> tuple[float, float]:
        if direction == "bottom":
            return foot_x, foot_y + s * sh
        step = s * (w / 2.0 + sw / 2.0)
        return (foot_x - step, foot_y) if direction == "left" else (foot_x + step, foot_y)

    def cut(s: float) -> float:
        fx, fy = moved(s)
        x0, y0 = round(fx - sprite.anchor[0]), round(fy - sprite.anchor[1])
        return 1.0 - np.count_nonzero(_own_mask(sprite, x0, y0, shape)) / total

    return moved(_fit(cut, target))


def _object_occluder(
    comp: Compositor,
    target: PlacedSprite,
    camera: CropCamera,
    goal: float,
    rng: np.random.Generator,
    layer: int,
    kind: str | None = None,
) -> None:
    """Stand an object in front of the person so that about `goal` of it ends up hidden.

    `kind` defaults to one of the camera's usual objects.
    """
    h, w = comp.shape
    total = target.sprite.pixel_count
    own = _own_mask(target.sprite, target.x0, target.y0, (h, w))
    visible = comp.owner == target.layer
    if kind is None:
        weights = np.asarray(camera.object_weights)
        kind = OBJECT_KINDS[int(rng.choice(len(OBJECT_KINDS), p=weights))]
    seed = int(rng.integers(2**31))
    ys, xs = np.nonzero(own)
    person_top = int(ys.min()) if len(ys) else 0
    px0, px1 = (int(xs.min()), int(xs.max()) + 1) if len(xs) else (0, w)
    foot_x = 0.5 * (px0 + px1)
    widths = {
        "car": (1.4, 2.4),
        "railing": (1.2, 1.6),
        "bush": (0.6, 1.2),
        "bin": (0.4, 0.65),
        "board": (0.45, 0.8),
        "pillar": (0.25, 0.45),
    }
    width = rng.uniform(*widths[kind]) * w
    side = -1.0 if rng.random() < 0.5 else 1.0
    centre = foot_x + rng.uniform(-0.2, 0.2) * w
    bottom = h + rng.uniform(0.0, 0.05) * h

    def box(s: float, grow: float) -> tuple[int, int, int, int]:
        ow = width * grow
        if kind in BOTTOM_KINDS:
            top = h - s * (h - person_top)
            return round(centre - ow / 2), round(top), round(ow), max(2, round(bottom - top))
        inner = px0 + s * (px1 - px0) if side < 0 else px1 - s * (px1 - px0)
        x0 = inner - ow if side < 0 else inner
        return round(x0), -2, round(ow), h + 4

    def coverage(s: float, grow: float) -> float:
        x0, y0, bw, bh = box(s, grow)
        cover = np.zeros((h, w), bool)
        _paste_mask(cover, draw_object(kind, bw, bh, seed, colour=False).mask, x0, y0)
        return 1.0 - np.count_nonzero(visible & ~cover) / total

    grow = 1.0
    while coverage(1.0, grow) < goal and grow < 4.0:
        grow *= 1.4  # a narrow object cannot hide enough: widen it
    s = _fit(lambda v: coverage(v, grow), goal)
    x0, y0, bw, bh = box(s, grow)
    patch = draw_object(kind, bw, bh, seed)
    comp.paste(layer, "object", patch.image, patch.mask, x0, y0, _OCCLUDER_DEPTH)


def _person_occluder(
    comp: Compositor,
    target: PlacedSprite,
    camera: CropCamera,
    goal: float,
    rng: np.random.Generator,
    world: CropWorld,
    layer: int,
) -> None:
    """Another pedestrian, nearer the camera, steps in from one side."""
    h, w = comp.shape
    total = target.sprite.pixel_count
    visible = comp.owner == target.layer
    other = world.person(EXTRA, int(rng.integers(2**31)))
    stature = target.sprite.labels.shape[0] * rng.uniform(1.0, 1.2)
    sprite = render_figure(
        other,
        stature,
        float(rng.uniform(-180, 180)),
        rng.uniform(0, 6.3),
        lighting=camera.look.lighting,
    )
    foot_y = target.y0 + target.sprite.anchor[1] + rng.uniform(0.02, 0.12) * h
    target_x = target.x0 + target.sprite.anchor[0]
    side = -1.0 if rng.random() < 0.5 else 1.0
    reach = 0.5 * (sprite.labels.shape[1] + target.sprite.labels.shape[1])

    def foot_x(s: float) -> float:
        return target_x + side * (1.0 - s) * reach

    def coverage(s: float) -> float:
        x0, y0 = round(foot_x(s) - sprite.anchor[0]), round(foot_y - sprite.anchor[1])
        return 1.0 - np.count_nonzero(visible & ~_own_mask(sprite, x0, y0, (h, w))) / total

    comp.place(layer, sprite, foot_x(_fit(coverage, goal)), foot_y, _OCCLUDER_DEPTH)


def render_crop(spec: CropSpec, world: CropWorld) -> CropRender:
    """Render one planned crop (deterministic in `spec.render_seed`)."""
    w, h = world.size
    seed = world.seed
    rng = np.random.default_rng(spec.render_seed)
    camera = crop_camera(seed, spec.camid)
    comp = Compositor(world.background(spec, rng))
    stature = spec.stature * h
    foot_y = h - rng.uniform(0.02, 1.0) * max(1.0, h - stature - 2.0) * 0.5
    foot_x = w * (0.5 + rng.uniform(-0.06, 0.06))
    if rng.random() < 0.2:  # a passer-by behind the person (clutter, never an occluder)
        other = world.person(EXTRA, int(rng.integers(2**31)))
        behind = render_figure(
            other,
            stature * rng.uniform(0.75, 0.95),
            float(rng.uniform(-180, 180)),
            rng.uniform(0, 6.3),
            lighting=camera.look.lighting,
        )
        offset = (0.35 + 0.35 * rng.random()) * w * (-1 if rng.random() < 0.5 else 1)
        comp.place(2, behind, foot_x + offset, foot_y - rng.uniform(0.02, 0.1) * h, _CLUTTER_DEPTH)
    sprite = render_figure(
        world.person(*spec.person),
        stature,
        spec.view_angle,
        spec.phase,
        spec.gait,
        camera.look.lighting,
    )
    if spec.occluder == "border":
        foot_x, foot_y = _border_placement(
            sprite, foot_x, foot_y, spec.target_occlusion, rng, (h, w)
        )
    target = comp.place(1, sprite, foot_x, foot_y, _TARGET_DEPTH)
    if spec.occluder == "object":
        _object_occluder(comp, target, camera, spec.target_occlusion, rng, layer=3)
    elif spec.occluder == "person":
        _person_occluder(comp, target, camera, spec.target_occlusion, rng, world, layer=3)
    visibility = comp.measure(target)
    if spec.split == "occluded_query" and visibility.occlusion < OCCLUDED_QUERY_MIN:
        # a thin passer-by or a see-through railing hid too little: a car finishes the job
        _object_occluder(comp, target, camera, spec.target_occlusion, rng, layer=4, kind="car")
        visibility = comp.measure(target)
    image = camera.look.apply(comp.image, rng, gain=float(rng.uniform(0.93, 1.07)))
    return CropRender(
        image=image,
        visibility=visibility,
        view=sprite.view,
        part_map=target.part_map(visibility.visible_mask),
    )
