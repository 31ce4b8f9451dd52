"""Backgrounds: shop-lined streets for crops (a façade over a floor) and for video cameras.

A street is made of two façades (rows of shop fronts, brick, plaster and panel walls with posters
and windows) and a paved ground, all stored as textures in metres. A crop backdrop shows one
façade above a floor in simple perspective; a video camera ray-casts the same kind of street
through its pinhole model, so backgrounds differ between cameras yet stay consistent in a
camera (SPEC §6: textured, varied backgrounds).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from trainer.synth.cameras import PinholeCamera
from trainer.synth.textures import Colour, brick_wall, layered_noise, shade, tile_grid

_WALLS = [
    (200, 195, 185),
    (170, 175, 180),
    (225, 220, 210),
    (110, 80, 150),
    (150, 170, 190),
    (120, 120, 125),
    (180, 200, 210),
    (90, 100, 110),
    (160, 190, 160),
]
_BRICKS = [(60, 80, 160), (70, 90, 130), (110, 130, 170), (80, 80, 90)]
_SIGNS = [
    (40, 40, 200),
    (200, 120, 40),
    (40, 160, 40),
    (30, 30, 30),
    (220, 220, 220),
    (40, 200, 230),
    (150, 50, 150),
]
_GROUNDS = [(150, 150, 150), (120, 125, 130), (170, 175, 180), (110, 120, 150), (140, 160, 180)]


def _colour(rng: np.random.Generator, options: list[tuple[int, int, int]]) -> Colour:
    c = np.asarray(options[int(rng.integers(len(options)))], np.float64)
    return tuple(float(v) for v in np.clip(c * rng.uniform(0.8, 1.15), 0, 255))  # type: ignore[return-value]


def _fill(image: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour) -> None:
    h, w = image.shape[:2]
    ys, ye = max(0, round(y0)), min(h, round(y1))
    xs, xe = max(0, round(x0)), min(w, round(x1))
    if ye > ys and xe > xs:
        image[ys:ye, xs:xe] = colour


def _shop_window(image: np.ndarray, x0: float, y0: float, x1: float, y1: float, rng) -> None:
    """Glass with a sky reflection, shelves and goods behind it, and a frame."""
    h, w = image.shape[:2]
    ys, ye, xs, xe = max(0, round(y0)), min(h, round(y1)), max(0, round(x0)), min(w, round(x1))
    if ye - ys < 3 or xe - xs < 3:
        return
    rows = np.linspace(0.5, 0.25, ye - ys, dtype=np.float32)[:, None, None]
    glass = np.broadcast_to(rows * np.array([150, 120, 100], np.float32), (ye - ys, xe - xs, 3))
    region = glass.copy()
    for _ in range(int(rng.integers(2, 7))):  # goods on display
        gx = rng.uniform(0, xe - xs)
        gy = rng.uniform(0.3, 0.9) * (ye - ys)
        gw, gh = rng.uniform(0.05, 0.3) * (xe - xs), rng.uniform(0.05, 0.25) * (ye - ys)
        _fill(region, gx, gy, gx + gw, gy + gh, np.asarray(_colour(rng, _SIGNS)) * 0.6)
    streak = rng.uniform(0, xe - xs)
    cols = np.arange(xe - xs)[None, :] + np.arange(ye - ys)[:, None] * 0.6
    region += 40.0 * (np.abs(cols - streak) < 0.08 * (xe - xs))[..., None]
    image[ys:ye, xs:xe] = region
    frame = max(1, round(0.02 * (xe - xs)))
    image[ys:ye, xs : xs + frame] = image[ys:ye, xe - frame : xe] = (60, 60, 60)
    image[ys : ys + frame, xs:xe] = (60, 60, 60)


def facade(width_m: float, height_m: float, ppm: float, rng: np.random.Generator) -> np.ndarray:
    """A row of building fronts `width_m` long, ground at the bottom row; float32 BGR."""
    w, h = max(8, round(width_m * ppm)), max(8, round(height_m * ppm))
    image = np.zeros((h, w, 3), np.float32)
    x = 0.0
    while x < w:
        seg_w = rng.uniform(4.0, 14.0) * ppm
        x0, x1 = round(x), min(w, round(x + seg_w))
        kind = rng.choice(["bricks", "plaster", "panels", "shop", "shop"])
        wall = _colour(rng, _WALLS)
        seed = int(rng.integers(2**31))
        if kind == "bricks":
            tex = brick_wall(h, x1 - x0, 0.25 * ppm, _colour(rng, _BRICKS), shade(wall, 0.9), seed)
        elif kind == "panels":
            tex = np.broadcast_to(np.asarray(wall, np.float32), (h, x1 - x0, 3)).copy()
            seams = (np.arange(x1 - x0) % max(4, round(rng.uniform(0.6, 1.5) * ppm))) < max(
                1, round(0.03 * ppm)
            )
            tex[:, seams] *= 0.7
        else:
            noise = layered_noise(h, x1 - x0, max(2.0, 0.5 * ppm), seed)
            tex = np.asarray(wall, np.float32) * (1.0 + 0.06 * noise[..., None])
        image[:, x0:x1] = tex
        ground_y = h
        if kind == "shop":
            sign_colour = _colour(rng, _SIGNS)
            _fill(image, x0, ground_y - 3.3 * ppm, x1, ground_y - 2.8 * ppm, sign_colour)
            for k in range(int(rng.integers(1, 4))):
                tx = x0 + (0.1 + 0.25 * k) * (x1 - x0)
                _fill(
                    image,
                    tx,
                    ground_y - 3.2 * ppm,
                    tx + 0.15 * (x1 - x0),
                    ground_y - 2.95 * ppm,
                    shade(sign_colour, 2.0),
                )
            door = x0 + rng.uniform(0.05, 0.7) * (x1 - x0)
            _shop_window(
                image, x0 + 0.04 * (x1 - x0), ground_y - 2.6 * ppm, door, ground_y - 0.4 * ppm, rng
            )
            _fill(
                image,
                door + 0.1 * ppm,
                ground_y - 2.3 * ppm,
                door + 1.1 * ppm,
                ground_y,
                shade(wall, 0.4),
            )
            _shop_window(
                image,
                door + 1.3 * ppm,
                ground_y - 2.6 * ppm,
                x1 - 0.04 * (x1 - x0),
                ground_y - 0.4 * ppm,
                rng,
            )
        elif rng.random() < 0.6:  # posters
            for _ in range(int(rng.integers(1, 4))):
                px = rng.uniform(x0, max(x0 + 1, x1 - ppm))
                py = ground_y - rng.uniform(1.2, 2.4) * ppm
                _fill(
                    image,
                    px,
                    py,
                    px + rng.uniform(0.5, 1.2) * ppm,
                    py + rng.uniform(0.6, 1.0) * ppm,
                    _colour(rng, _SIGNS),
                )
        floor_h = 3.6
        while floor_h + 1.8 < height_m:  # upper-storey windows
            for wx in np.arange(x0 + 0.8 * ppm, x1 - 1.5 * ppm, rng.uniform(2.2, 3.2) * ppm):
                _fill(
                    image,
                    wx,
                    ground_y - (floor_h + 1.6) * ppm,
                    wx + 1.1 * ppm,
                    ground_y - floor_h * ppm,
                    (70, 60, 55),
                )
            floor_h += 3.2
        _fill(image, x0, ground_y - 0.15 * ppm, x1, ground_y, shade(wall, 0.55))  # skirting
        x += seg_w
    return image


def ground(width_m: float, depth_m: float, ppm: float, rng: np.random.Generator) -> np.ndarray:
    """Paving seen from above: x along the street, rows across it; float32 BGR."""
    w, h = max(8, round(width_m * ppm)), max(8, round(depth_m * ppm))
    base = _colour(rng, _GROUNDS)
    kind = rng.choice(["tiles", "pavers", "asphalt", "slabs"])
    seed = int(rng.integers(2**31))
    if kind == "tiles":
        image = tile_grid(h, w, rng.uniform(0.3, 0.6) * ppm, base, shade(base, 0.7), seed)
    elif kind == "pavers":
        image = brick_wall(h, w, 0.22 * ppm, base, shade(base, 0.75), seed)
    elif kind == "slabs":
        image = tile_grid(h, w, rng.uniform(1.0, 2.0) * ppm, base, shade(base, 0.8), seed)
    else:
        image = np.broadcast_to(np.asarray(base, np.float32), (h, w, 3)).copy()
    stains = layered_noise(h, w, max(2.0, 1.5 * ppm), seed + 7)
    return image * (1.0 + 0.07 * stains[..., None])


@dataclass
class CropBackdrop:
    """A camera's wide background strip for crops: façade above a floor in perspective."""

    image: np.ndarray  # uint8, taller and much wider than a crop

    @classmethod
    def build(cls, rng: np.random.Generator, crop_w: int, crop_h: int) -> CropBackdrop:
        """`crop_h` px ≈ 2 m at the person's distance; the wall stands a few metres behind."""
        height, width = round(crop_h * 1.3), crop_w * 12
        person_ppm = crop_h / 2.0
        wall_ppm = person_ppm * rng.uniform(0.4, 0.75)
        floor_y = round(height * rng.uniform(0.5, 0.75))
        wall = facade(width / wall_ppm, floor_y / wall_ppm, wall_ppm, rng)
        image = np.zeros((height, width, 3), np.float32)
        image[:floor_y] = cv2.resize(wall, (width, floor_y), interpolation=cv2.INTER_AREA)
        ground_ppm = 40.0
        floor = ground(width / wall_ppm + 4.0, 12.0, ground_ppm, rng)
        rows = np.arange(floor_y, height, dtype=np.float32)
        near_ppm = person_ppm * 1.4
        slope = (near_ppm - wall_ppm) / max(1.0, height - floor_y)
        ppm_row = wall_ppm + (rows - floor_y) * slope
        depth_m = np.log(ppm_row / wall_ppm) / max(slope, 1e-6)  # ∫ dy / ppm(y)
        xs = np.arange(width, dtype=np.float32)
        map_x = (xs[None, :] - width / 2.0) / ppm_row[:, None] + width / wall_ppm / 2.0 + 2.0
        map_y = np.broadcast_to(depth_m[:, None], map_x.shape)
        image[floor_y:] = cv2.remap(
            floor,
            (map_x * ground_ppm).astype(np.float32),
            (map_y * ground_ppm).astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_WRAP,
        )
        light = np.linspace(rng.uniform(0.9, 1.1), rng.uniform(0.8, 1.0), height, dtype=np.float32)
        image *= light[:, None, None]
        return cls(np.clip(image, 0, 255).astype(np.uint8))

    def window(self, rng: np.random.Generator, crop_w: int, crop_h: int) -> np.ndarray:
        """A random crop-sized piece of the strip (a copy)."""
        height, width = self.image.shape[:2]
        x = int(rng.integers(0, width - crop_w + 1))
        y = int(rng.integers(0, height - crop_h + 1))
        return self.image[y : y + crop_h, x : x + crop_w].copy()


@dataclass
class Street:
    """The video world's street: x along it (0..length), z across (0 = near façade)."""

    length_m: float
    width_m: float
    near_facade: np.ndarray
    far_facade: np.ndarray
    paving: np.ndarray
    near_height_m: float
    far_height_m: float
    ppm: float = 24.0
    margin_m: float = 30.0  # textures start this far before x = 0

    @classmethod
    def build(cls, rng: np.random.Generator, length_m: float, width_m: float) -> Street:
        ppm = 24.0
        span = length_m + 60.0
        near_h, far_h = rng.uniform(8.0, 14.0), rng.uniform(8.0, 16.0)
        return cls(
            length_m=length_m,
            width_m=width_m,
            near_facade=facade(span, near_h, ppm, rng),
            far_facade=facade(span, far_h, ppm, rng),
            paving=ground(span, width_m, ppm, rng),
            near_height_m=near_h,
            far_height_m=far_h,
            ppm=ppm,
        )

    def render(self, camera: PinholeCamera) -> np.ndarray:
        """Ray-cast the street as `camera` sees it (uint8), with distance-matched texture blur."""
        rays = camera.rays()
        origin = np.asarray(camera.position)
        h, w = rays.shape[:2]
        best = np.full((h, w), np.inf)
        coords = np.zeros((h, w, 2))
        source = np.full((h, w), -1, np.int8)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_ground = -origin[1] / rays[..., 1]
            hit = origin + t_ground[..., None] * rays
            ok = (rays[..., 1] < 0) & (hit[..., 2] >= 0) & (hit[..., 2] <= self.width_m)
            self._take(best, coords, source, ok, t_ground, hit[..., 0], hit[..., 2], 0)
            for index, (plane_z, top) in enumerate(
                ((0.0, self.near_height_m), (self.width_m, self.far_height_m)), start=1
            ):
                t = (plane_z - origin[2]) / rays[..., 2]
                hit = origin + t[..., None] * rays
                ok = (t > 0) & (hit[..., 1] >= 0) & (hit[..., 1] <= top)
                self._take(best, coords, source, ok, t, hit[..., 0], top - hit[..., 1], index)
        sky_rows = np.linspace(1.0, 0.75, h, dtype=np.float32)[:, None, None]
        image = np.broadcast_to(sky_rows * np.array([235, 215, 200], np.float32), (h, w, 3))
        image = image.copy()
        footprint = np.where(np.isfinite(best), best, 1.0) * self.ppm / camera.focal_px
        textures = (self.paving, self.near_facade, self.far_facade)
        for index, texture in enumerate(textures):
            where = source == index
            if not where.any():
                continue
            map_x = ((coords[..., 0] + self.margin_m) * self.ppm).astype(np.float32)
            map_y = (coords[..., 1] * self.ppm).astype(np.float32)
            level_of = np.clip(np.log2(np.maximum(footprint, 1.0)), 0, 4).round()
            for level in range(5):
                pick = where & (level_of == level)
                if not pick.any():
                    continue
                blurred = cv2.GaussianBlur(texture, (0, 0), 0.6 * 2**level) if level else texture
                sampled = cv2.remap(
                    blurred, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP
                )
                image[pick] = sampled[pick]
        return np.clip(image, 0, 255).astype(np.uint8)

    @staticmethod
    def _take(best, coords, source, ok, t, a, b, index) -> None:
        closer = ok & (t < best)
        best[closer] = t[closer]
        coords[..., 0][closer] = a[closer]
        coords[..., 1][closer] = b[closer]
        source[closer] = index
