"""Static occluders: cars, pillars, bins, bushes, sign boards and railings (SPEC §6).

Each is drawn into its own box of any size from a style seed, so the same object can hide the
bottom of a crop (Occluded-Duke style) or stand in the street world of a video. The mask is
what occludes; some shapes have holes (railings, bushes), as real occluders do.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from trainer.synth.textures import Colour, layered_noise

OBJECT_KINDS = ("car", "pillar", "bin", "bush", "board", "railing")
BOTTOM_KINDS = ("car", "bin", "bush", "board", "railing")
"""Kinds that stand on the ground in front of a person and hide it from the bottom up."""

_CAR_COLOURS = [
    (190, 190, 195),
    (235, 235, 235),
    (25, 25, 28),
    (40, 50, 110),
    (40, 40, 150),
    (90, 90, 95),
    (40, 80, 40),
    (60, 110, 160),
]
_BIN_COLOURS = [(40, 90, 40), (90, 90, 90), (25, 25, 25), (130, 70, 30), (30, 120, 220)]
_BOARD_COLOURS = [(240, 240, 240), (40, 200, 230), (50, 50, 200), (160, 90, 30), (30, 30, 30)]
_METAL = [(60, 60, 60), (25, 25, 25), (40, 80, 40), (150, 150, 150)]


@dataclass
class ObjectPatch:
    """A drawn object: colour (None when only the shape was asked for) and its mask."""

    image: np.ndarray | None
    mask: np.ndarray


def _pick(rng: np.random.Generator, colours: list[tuple[int, int, int]]) -> Colour:
    c = np.asarray(colours[int(rng.integers(len(colours)))], np.float64)
    return tuple(float(v) for v in np.clip(c * rng.uniform(0.85, 1.15), 0, 255))  # type: ignore[return-value]


def _rect(mask: np.ndarray, x0: float, y0: float, x1: float, y1: float, value=1) -> None:
    cv2.rectangle(mask, (round(x0), round(y0)), (round(x1) - 1, round(y1) - 1), value, -1)


def _shade_rows(image: np.ndarray, top: float, bottom: float) -> None:
    image *= np.linspace(top, bottom, image.shape[0], dtype=np.float32)[:, None, None]


def _car(w: int, h: int, rng: np.random.Generator, colour: bool) -> ObjectPatch:
    mask = np.zeros((h, w), np.uint8)
    glass = np.zeros((h, w), np.uint8)
    side_view = w > 1.3 * h
    if side_view:
        r = 0.17 * h
        cabin = np.array(
            [[0.24 * w, 0.05 * h], [0.7 * w, 0.05 * h], [0.84 * w, 0.42 * h], [0.14 * w, 0.42 * h]]
        )
        cv2.fillPoly(mask, [np.round(cabin).astype(np.int32)], 1)
        _rect(mask, 0.0, 0.4 * h, w, h - 0.6 * r)
        inset = np.array(
            [[0.27 * w, 0.1 * h], [0.68 * w, 0.1 * h], [0.79 * w, 0.4 * h], [0.19 * w, 0.4 * h]]
        )
        cv2.fillPoly(glass, [np.round(inset).astype(np.int32)], 1)
        _rect(glass, 0.47 * w, 0.0, 0.5 * w, h, 0)
        wheels = [(0.2 * w, h - r), (0.8 * w, h - r)]
    else:
        r = 0.14 * h
        _rect(mask, 0.1 * w, 0.05 * h, 0.9 * w, 0.45 * h)
        _rect(mask, 0.0, 0.4 * h, w, h - 0.5 * r)
        _rect(glass, 0.15 * w, 0.1 * h, 0.85 * w, 0.4 * h)
        wheels = [(0.12 * w, h - r), (0.88 * w, h - r)]
    for cx, cy in wheels:
        cv2.circle(mask, (round(cx), round(cy)), max(1, round(r)), 2, -1)
    if not colour:
        return ObjectPatch(None, mask > 0)
    body = np.asarray(_pick(rng, _CAR_COLOURS), np.float32)
    image = np.broadcast_to(body, (h, w, 3)).copy()
    _shade_rows(image, 1.15, 0.7)
    image[int(0.48 * h) : int(0.5 * h) + 1] *= 1.25  # chrome/highlight line
    sky = np.linspace(0.9, 0.35, h, dtype=np.float32)[:, None, None] * np.array(
        [110, 90, 70], np.float32
    )
    image = np.where(glass[..., None] > 0, np.broadcast_to(sky, (h, w, 3)), image)
    image[mask == 2] = (20, 20, 22)
    for cx, cy in wheels:
        cv2.circle(image, (round(cx), round(cy)), max(1, round(0.5 * r)), (120, 120, 125), -1)
    lamp_x = 0.02 * w if rng.random() < 0.5 else 0.93 * w
    _rect(image, lamp_x, 0.45 * h, lamp_x + 0.05 * w, 0.55 * h, (170, 220, 235))
    return ObjectPatch(np.clip(image, 0, 255), mask > 0)


def _pillar(w: int, h: int, rng: np.random.Generator, colour: bool) -> ObjectPatch:
    mask = np.ones((h, w), bool)
    if not colour:
        return ObjectPatch(None, mask)
    base = np.array(
        _pick(rng, [(170, 170, 165), (140, 150, 160), (200, 195, 185), (90, 90, 95)]), np.float32
    )
    noise = layered_noise(h, w, max(2.0, w / 3.0), int(rng.integers(2**31)))
    image = base * (1.0 + 0.08 * noise[..., None])
    profile = 0.65 + 0.35 * np.sin(np.linspace(0.1, np.pi - 0.1, w, dtype=np.float32))
    image *= profile[None, :, None]
    if rng.random() < 0.5:  # a poster on the pillar
        y0 = rng.uniform(0.2, 0.5) * h
        poster = np.asarray(_pick(rng, _BOARD_COLOURS), np.float32)
        image[int(y0) : int(y0 + 0.25 * h)] = poster * profile[None, :, None]
    return ObjectPatch(np.clip(image, 0, 255), mask)


def _bin(w: int, h: int, rng: np.random.Generator, colour: bool) -> ObjectPatch:
    mask = np.zeros((h, w), np.uint8)
    _rect(mask, 0.08 * w, 0.12 * h, 0.92 * w, h)
    _rect(mask, 0.0, 0.03 * h, w, 0.15 * h, 2)
    if not colour:
        return ObjectPatch(None, mask > 0)
    body = np.asarray(_pick(rng, _BIN_COLOURS), np.float32)
    image = np.broadcast_to(body, (h, w, 3)).copy()
    ribs = (np.arange(w) % max(3, w // 6)) < max(1, w // 40)
    image[:, ribs] *= 0.7
    image[mask == 2] = body * 1.2
    _shade_rows(image, 1.1, 0.75)
    return ObjectPatch(np.clip(image, 0, 255), mask > 0)


def _bush(w: int, h: int, rng: np.random.Generator, colour: bool) -> ObjectPatch:
    mask = np.zeros((h, w), np.uint8)
    planter = rng.random() < 0.5
    top_of_leaves = h * (0.75 if planter else 1.0)
    for _ in range(int(rng.integers(7, 13))):
        cx = rng.uniform(0.12, 0.88) * w
        rx = rng.uniform(0.15, 0.3) * w
        ry = rng.uniform(0.25, 0.45) * h
        cy = rng.uniform(max(ry, 0.35 * h), top_of_leaves)
        cv2.ellipse(
            mask, (round(cx), round(cy)), (max(1, round(rx)), max(1, round(ry))), 0, 0, 360, 1, -1
        )
    if planter:
        _rect(mask, 0.0, 0.7 * h, w, h, 2)
    if not colour:
        return ObjectPatch(None, mask > 0)
    leaf = np.array(
        _pick(rng, [(40, 110, 50), (30, 80, 40), (60, 130, 90), (40, 90, 70)]), np.float32
    )
    noise = layered_noise(h, w, max(2.0, min(w, h) / 10.0), int(rng.integers(2**31)))
    image = leaf * (1.0 + 0.35 * noise[..., None])
    _shade_rows(image, 1.15, 0.7)
    image[mask == 2] = (150, 155, 160)
    return ObjectPatch(np.clip(image, 0, 255), mask > 0)


def _board(w: int, h: int, rng: np.random.Generator, colour: bool) -> ObjectPatch:
    mask = np.zeros((h, w), np.uint8)
    _rect(mask, 0.03 * w, 0.0, 0.97 * w, 0.7 * h)
    for x in (0.15 * w, 0.8 * w):
        _rect(mask, x, 0.7 * h, x + max(1.0, 0.05 * w), h, 2)
    if not colour:
        return ObjectPatch(None, mask > 0)
    paper = np.asarray(_pick(rng, _BOARD_COLOURS), np.float32)
    ink = np.asarray(_pick(rng, _BOARD_COLOURS), np.float32)
    image = np.broadcast_to(paper, (h, w, 3)).copy()
    for k in range(int(rng.integers(2, 6))):  # printed lines of text
        y = (0.1 + 0.12 * k) * h
        _rect(image, 0.12 * w, y, rng.uniform(0.4, 0.88) * w, y + 0.05 * h, tuple(ink.tolist()))
    if rng.random() < 0.5:  # a picture block
        _rect(image, 0.55 * w, 0.4 * h, 0.88 * w, 0.64 * h, _pick(rng, _CAR_COLOURS))
    image[mask == 2] = (50, 50, 50)
    border = max(1, round(0.02 * w))
    image[:border] *= 0.5
    image[:, :border] *= 0.5
    image[:, -border:] *= 0.5
    return ObjectPatch(np.clip(image, 0, 255), mask > 0)


def _railing(w: int, h: int, rng: np.random.Generator, colour: bool) -> ObjectPatch:
    mask = np.zeros((h, w), bool)
    bar = max(1, round(rng.uniform(0.025, 0.05) * w))
    gap = max(bar + 2, round(rng.uniform(0.08, 0.16) * w))
    mask[:, (np.arange(w) % gap) < bar] = True
    rail = max(1, round(0.06 * h))
    mask[:rail] = True
    mask[int(0.55 * h) : int(0.55 * h) + rail] = True
    if not colour:
        return ObjectPatch(None, mask)
    metal = np.asarray(_pick(rng, _METAL), np.float32)
    image = np.broadcast_to(metal, (h, w, 3)).copy()
    _shade_rows(image, 1.2, 0.8)
    return ObjectPatch(image, mask)


_DRAWERS = {
    "car": _car,
    "pillar": _pillar,
    "bin": _bin,
    "bush": _bush,
    "board": _board,
    "railing": _railing,
}


def draw_object(kind: str, width: int, height: int, seed: int, colour: bool = True) -> ObjectPatch:
    """Draw one `kind` object filling a `width`×`height` box; same seed → same object."""
    if kind not in _DRAWERS:
        raise ValueError(f"unknown occluder kind {kind!r}; expected one of {OBJECT_KINDS}")
    width, height = max(2, int(width)), max(2, int(height))
    patch = _DRAWERS[kind](width, height, np.random.default_rng(seed), colour)
    if patch.image is not None:
        patch.image = patch.image.astype(np.uint8)
    return patch
