"""Procedural textures shared by clothing, backgrounds and occluders.

SPEC §6: synthetic re-ID sets transfer to real footage when clothing carries *textures* rather
than flat colours, so every garment is a `Pattern` (two colours, a period in body heights, a
kind). Patterns are laid out in body units, so the same person shows the same stripes at every
camera scale. Colours are BGR float triples (OpenCV order) in 0..255.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from trainer.synth.photos import photo_texture

Colour = tuple[float, float, float]

PATTERN_KINDS = (
    "plain",
    "hstripes",
    "vstripes",
    "checks",
    "dots",
    "diagonal",
    "melange",
    "photo",
)


@dataclass(frozen=True)
class Pattern:
    """A two-colour fabric pattern; `period` is measured in body heights (scale-free).

    ``photo``: the luminance detail of a shipped photograph (`trainer.synth.photos`, chosen
    by ``seed``) mixes base and accent; ``period`` is the body heights one photo width spans.
    """

    kind: str
    base: Colour
    accent: Colour
    period: float = 0.05
    duty: float = 0.5
    phase: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in PATTERN_KINDS:
            raise ValueError(f"unknown pattern kind {self.kind!r}; expected one of {PATTERN_KINDS}")


def pattern_image(
    pattern: Pattern,
    height: int,
    width: int,
    px_per_unit: float,
    origin: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Render `pattern` on a `height`×`width` canvas where one body height is `px_per_unit` px.

    `origin` is the canvas pixel the pattern is anchored to (a point on the body), so stripes
    stay put on the body whatever the canvas. The result may be a read-only broadcast view.
    """
    base = np.asarray(pattern.base, np.float32)
    accent = np.asarray(pattern.accent, np.float32)
    if pattern.kind == "plain":
        return np.broadcast_to(base, (height, width, 3))
    if pattern.kind == "photo":
        offset = (origin[0] + pattern.seed % 997, origin[1] + pattern.seed % 991)
        detail = photo_texture(pattern.seed, height, width, px_per_unit, pattern.period, offset)
        mix = np.clip(0.5 * detail + (pattern.duty - 0.5), 0.0, 1.0)[..., None]
        shading = np.clip(1.0 + 0.15 * detail, 0.6, 1.4)[..., None]
        return (base * (1.0 - mix) + accent * mix) * shading
    if pattern.kind == "melange":
        noise = value_noise(height, width, max(1.0, 0.004 * px_per_unit), pattern.seed)
        mix = np.clip(0.5 + 0.9 * noise, 0.0, 1.0)[..., None] * 0.35
        return base * (1.0 - mix) + accent * mix
    period_px = max(2.0, pattern.period * px_per_unit)
    rows = np.arange(height, dtype=np.float32)[:, None] - origin[1]
    cols = np.arange(width, dtype=np.float32)[None, :] - origin[0]
    v = (rows / period_px + pattern.phase) % 1.0
    u = (cols / period_px + pattern.phase) % 1.0
    if pattern.kind == "hstripes":
        on = np.broadcast_to(v < pattern.duty, (height, width))
    elif pattern.kind == "vstripes":
        on = np.broadcast_to(u < pattern.duty, (height, width))
    elif pattern.kind == "diagonal":
        on = ((u + v) % 1.0) < pattern.duty
    elif pattern.kind == "checks":
        # tartan-like: overlapping stripe bands, full accent where both cross
        weight = 0.5 * (u < pattern.duty) + 0.5 * (v < pattern.duty)
        return base + (accent - base) * weight[..., None].astype(np.float32)
    else:  # dots
        radius = 0.5 * np.sqrt(pattern.duty * 0.6)
        on = (u - 0.5) ** 2 + (v - 0.5) ** 2 < radius**2
    return np.where(on[..., None], accent, base).astype(np.float32)


def value_noise(height: int, width: int, cell_px: float, seed: int) -> np.ndarray:
    """Smooth zero-mean noise (about unit spread) with features of `cell_px` pixels."""
    if height <= 0 or width <= 0:  # a texture for an element clipped to nothing
        return np.zeros((max(height, 0), max(width, 0)), np.float32)
    rng = np.random.default_rng(seed)
    grid_h = max(2, int(np.ceil(height / cell_px)) + 1)
    grid_w = max(2, int(np.ceil(width / cell_px)) + 1)
    grid = rng.standard_normal((grid_h, grid_w)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def layered_noise(height: int, width: int, cell_px: float, seed: int) -> np.ndarray:
    """Two octaves of value noise: coarse blotches plus fine grain (plaster, asphalt, foliage)."""
    coarse = value_noise(height, width, cell_px, seed)
    fine = value_noise(height, width, max(1.0, cell_px / 4.0), seed + 1)
    return 0.7 * coarse + 0.3 * fine


def shade(colour: Colour, factor: float) -> Colour:
    """Scale a colour's brightness, clipped to the valid range."""
    return tuple(float(min(255.0, max(0.0, c * factor))) for c in colour)  # type: ignore[return-value]


def brick_wall(
    height: int, width: int, brick_px: float, colour: Colour, mortar: Colour, seed: int
) -> np.ndarray:
    """Running-bond bricks with per-brick colour variation (a common shop-front wall)."""
    rng = np.random.default_rng(seed)
    brick_h = max(3.0, brick_px / 3.0)
    rows = np.arange(height, dtype=np.float32)[:, None] / brick_h
    row_index = np.floor(rows).astype(np.int64)
    offset = (row_index % 2) * 0.5
    cols = np.arange(width, dtype=np.float32)[None, :] / brick_px + offset
    col_index = np.floor(cols).astype(np.int64)
    jitter = rng.uniform(0.8, 1.15, size=(int(row_index.max()) + 2, int(col_index.max()) + 2))
    tone = jitter[row_index, col_index].astype(np.float32)
    is_mortar = ((rows % 1.0) < 0.14) | ((cols % 1.0) < 0.05)
    wall = np.asarray(colour, np.float32) * tone[..., None]
    return np.where(is_mortar[..., None], np.asarray(mortar, np.float32), wall)


def tile_grid(
    height: int, width: int, tile_px: float, colour: Colour, grout: Colour, seed: int
) -> np.ndarray:
    """Square floor tiles with per-tile tone variation."""
    rng = np.random.default_rng(seed)
    rows = np.arange(height, dtype=np.float32)[:, None] / tile_px
    cols = np.arange(width, dtype=np.float32)[None, :] / tile_px
    tone = rng.uniform(0.88, 1.1, size=(int(rows.max()) + 2, int(cols.max()) + 2))
    tile_tone = tone[np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)]
    floor = np.asarray(colour, np.float32) * tile_tone[..., None].astype(np.float32)
    is_grout = ((rows % 1.0) < 0.06) | ((cols % 1.0) < 0.06)
    return np.where(is_grout[..., None], np.asarray(grout, np.float32), floor)
