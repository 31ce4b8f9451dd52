"""Cameras: what differs between the cameras of a network (SPEC §6).

`CameraLook` is the photometric side shared by crops and videos: exposure, white balance
(colour temperature), contrast, resolution (a low-resolution sensor upscaled like a detector
crop), lens blur, sensor noise and JPEG quality. `PinholeCamera` is the geometric side of a
video camera in the street world: where it stands, where it looks, its focal length.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from trainer.synth.figure import Lighting


@dataclass(frozen=True)
class CameraLook:
    """Per-camera image formation; `apply` turns a clean render into this camera's picture."""

    gain: float
    white_balance: tuple[float, float, float]  # B, G, R multipliers
    gamma: float
    resolution: float  # 1 = full detail; 0.4 = rendered at 40 % and upscaled
    blur_sigma: float
    noise_sigma: float  # in 0..255 grey levels
    jpeg_quality: int
    light_side: float  # which flank of people the light comes from, -1..1

    @property
    def lighting(self) -> Lighting:
        return Lighting(side=self.light_side)

    def apply(self, image: np.ndarray, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
        """Return this camera's uint8 picture of `image` (uint8 BGR); `gain` varies per shot."""
        h, w = image.shape[:2]
        out = cv2.LUT(image, self._tone_curve(gain))
        if self.resolution < 0.98:
            small = (max(8, round(w * self.resolution)), max(8, round(h * self.resolution)))
            low = cv2.resize(out, small, interpolation=cv2.INTER_AREA)
            out = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.blur_sigma > 0.05:
            out = cv2.GaussianBlur(out, (0, 0), self.blur_sigma)
        field = _noise_field(round(self.noise_sigma, 3), max(512, 2 * h), max(512, 2 * w))
        y = int(rng.integers(0, field.shape[0] - h + 1))
        x = int(rng.integers(0, field.shape[1] - w + 1))
        return cv2.add(out, field[y : y + h, x : x + w], dtype=cv2.CV_8U)

    def _tone_curve(self, gain: float) -> np.ndarray:
        """Exposure × white balance, then gamma, as one per-channel lookup table."""
        levels = np.arange(256, dtype=np.float64)[:, None] / 255.0
        scaled = np.clip(levels * np.asarray(self.white_balance) * (self.gain * gain), 0.0, 1.0)
        return np.round(255.0 * scaled**self.gamma).astype(np.uint8).reshape(256, 1, 3)


@lru_cache(maxsize=16)
def _noise_field(sigma: float, height: int, width: int) -> np.ndarray:
    """Gaussian sensor noise (int16 grey levels); each shot reads a random window of it."""
    rng = np.random.default_rng(int(sigma * 1000))
    noise = rng.standard_normal((height, width, 3), dtype=np.float32) * sigma
    return np.round(noise).astype(np.int16)


def sample_look(rng: np.random.Generator, strength: float = 1.0) -> CameraLook:
    """One camera's look: bright/dim, warm/cold, sharp/soft, clean/noisy, crisp/blocky.
    ``strength`` scales how far gain, colour cast and gamma stray from neutral (1: the
    training world's; 2: a site whose cameras differ twice as much — the same draws)."""
    temperature = rng.uniform(-1.0, 1.0) * strength  # -1 cold (blue), +1 warm (orange)
    tint = rng.uniform(-0.04, 0.04) * strength
    return CameraLook(
        gain=float(1.0 + (rng.uniform(0.75, 1.2) - 1.0) * strength),
        white_balance=(
            float(1.0 - 0.14 * temperature),
            float(1.0 + tint),
            float(1.0 + 0.14 * temperature),
        ),
        gamma=float(1.0 + (rng.uniform(0.85, 1.2) - 1.0) * strength),
        resolution=float(rng.choice([1.0, rng.uniform(0.45, 0.9)], p=[0.4, 0.6])),
        blur_sigma=float(rng.uniform(0.0, 1.1)),
        noise_sigma=float(rng.uniform(1.5, 7.0)),
        jpeg_quality=int(rng.integers(55, 96)),
        light_side=float(rng.uniform(-1.0, 1.0)),
    )


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of `image` (deterministic for a given libjpeg and quality)."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"OpenCV could not JPEG-encode an image of shape {image.shape}")
    return data.tobytes()


@dataclass(frozen=True)
class PinholeCamera:
    """A street camera: position (x along the street, y up, z across), yaw, downward tilt.

    Yaw 0 looks along +x, 90° across the street (+z). Right-handed world, y up.
    """

    position: tuple[float, float, float]
    yaw_deg: float
    tilt_deg: float
    focal_px: float
    width: int
    height: int

    @property
    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit forward, right and up vectors of the image plane."""
        yaw, tilt = np.radians(self.yaw_deg), np.radians(self.tilt_deg)
        horizontal = np.array([np.cos(yaw), 0.0, np.sin(yaw)])
        forward = np.cos(tilt) * horizontal + np.array([0.0, -np.sin(tilt), 0.0])
        right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        return forward, right, up

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points [N,3] → pixel coordinates [N,2] and depth along the optical axis [N]."""
        forward, right, up = self.axes
        rel = np.atleast_2d(points) - np.asarray(self.position)
        depth = rel @ forward
        safe = np.where(depth > 1e-6, depth, 1e-6)
        u = self.width / 2.0 + self.focal_px * (rel @ right) / safe
        v = self.height / 2.0 - self.focal_px * (rel @ up) / safe
        return np.stack([u, v], axis=1), depth

    def rays(self) -> np.ndarray:
        """Unit viewing ray of every pixel centre, [H, W, 3]."""
        forward, right, up = self.axes
        xs = (np.arange(self.width, dtype=np.float64) + 0.5 - self.width / 2.0) / self.focal_px
        ys = (np.arange(self.height, dtype=np.float64) + 0.5 - self.height / 2.0) / self.focal_px
        d = forward + xs[None, :, None] * right - ys[:, None, None] * up
        return d / np.linalg.norm(d, axis=2, keepdims=True)

    def view_angle_deg(self, position: np.ndarray, heading: np.ndarray) -> float:
        """Angle between a walker's heading and the direction to the camera (0 = facing it).

        Positive when the walker's forward points to the image right (figure.py convention).
        """
        to_camera = np.asarray(self.position) - position
        to_camera[1] = 0.0
        to_camera /= max(1e-9, float(np.linalg.norm(to_camera)))
        image_right = np.cross(-to_camera, np.array([0.0, 1.0, 0.0]))
        return float(np.degrees(np.arctan2(heading @ image_right, heading @ to_camera)))
