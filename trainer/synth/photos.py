"""Natural photographs that installed packages ship: fabric detail and real backgrounds.

World v2 (SPEC §6, issue "a shipped model"): flat palette clothes and drawn façades teach a
model image statistics that real footage does not have. Real photographs bring them in, and
the only ones this machine has offline are the sample images inside the wheels of
scikit-image and scikit-learn (and matplotlib's one sample photo). Each is listed below with
its licence; all are public domain / CC0 except scikit-learn's two (CC BY 2.0, credited).

Photos are found by package *directory* (``importlib.util.find_spec`` does not import the
package), read with OpenCV, and cached per process. Textures are the photos' luminance
detail (a high-pass, unit spread), so a garment keeps its identity colours and gains a natural
grain; backgrounds are the colour photos themselves.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

PHOTO_PACKAGES = "scikit-image, scikit-learn"


@dataclass(frozen=True)
class Photo:
    """One shipped photograph: where it lies inside which package, and its licence."""

    package: str  # import name of the package directory that holds it
    path: str  # relative to that directory
    texture: bool  # its luminance detail is used as fabric
    background: bool  # the colour photo is used as a crop's background
    licence: str


PHOTOS: tuple[Photo, ...] = (
    Photo("skimage", "data/brick.png", True, False, "CC0 (CC0Textures Bricks25)"),
    Photo("skimage", "data/grass.png", True, False, "CC0 (DeviantArt linolafett)"),
    Photo("skimage", "data/gravel.png", True, False, "CC0 (CC0Textures Gravel04)"),
    Photo("skimage", "data/text.png", True, False, "public domain"),
    Photo("skimage", "data/camera.png", True, False, "CC0 (Lav Varshney)"),
    Photo("skimage", "data/coins.png", True, False, "no known copyright restrictions"),
    Photo("skimage", "data/chelsea.png", True, True, "CC0 (Stefan van der Walt)"),
    Photo("skimage", "data/coffee.png", True, True, "CC0 (Rachel Michetti)"),
    Photo("skimage", "data/astronaut.png", True, True, "public domain (NASA)"),
    Photo("skimage", "data/rocket.jpg", False, True, "public domain (SpaceX)"),
    Photo("sklearn", "datasets/images/china.jpg", True, True, "CC BY 2.0, danielbuechele"),
    Photo("sklearn", "datasets/images/flower.jpg", True, True, "CC BY 2.0, vultilion"),
    Photo("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", False, True, "public domain"),
)


def _package_dir(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def photo_path(photo: Photo) -> Path | None:
    """The photo's file on this machine, or None when its package is not installed."""
    root = _package_dir(photo.package)
    if root is None:
        return None
    path = root / photo.path
    return path if path.is_file() else None


def _detail(image: np.ndarray) -> np.ndarray:
    """Luminance minus its blur, scaled to unit spread: the grain without the light."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    detail = grey - cv2.GaussianBlur(grey, (0, 0), 24.0)
    return detail / max(float(detail.std()), 1e-3)


@dataclass(frozen=True)
class PhotoLibrary:
    """The photos found on this machine: fabric detail maps and background photos (BGR)."""

    textures: tuple[np.ndarray, ...]
    backgrounds: tuple[np.ndarray, ...]
    sources: tuple[Photo, ...]

    def texture(self, index: int) -> np.ndarray:
        return self.textures[index % len(self.textures)]

    def background(self, index: int) -> np.ndarray:
        return self.backgrounds[index % len(self.backgrounds)]


@lru_cache(maxsize=1)
def photo_library() -> PhotoLibrary:
    """Every listed photo that is installed (cached per process); an error names what to
    install when none is."""
    textures, backgrounds, sources = [], [], []
    for photo in PHOTOS:
        path = photo_path(photo)
        if path is None:
            continue
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path}: OpenCV could not read this photo")
        sources.append(photo)
        if photo.texture:
            textures.append(_detail(image))
        if photo.background:
            backgrounds.append(image)
    if not textures or not backgrounds:
        raise FileNotFoundError(
            "the synthetic world's photo textures and backgrounds need the sample photos that "
            f"{PHOTO_PACKAGES} ship (pip install scikit-image scikit-learn); none of "
            f"{', '.join(f'{p.package}/{p.path}' for p in PHOTOS)} was found"
        )
    return PhotoLibrary(tuple(textures), tuple(backgrounds), tuple(sources))


def photo_texture(
    index: int, height: int, width: int, px_per_unit: float, period: float, origin: tuple
) -> np.ndarray:
    """Detail map ``index`` tiled over a height×width canvas, one photo width spanning
    ``period`` body heights and anchored at ``origin`` (so it stays put on the body)."""
    detail = photo_library().texture(index)
    scale = max(period * px_per_unit, 8.0) / detail.shape[1]
    tile = cv2.resize(detail, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    rows = (np.arange(height) - int(round(origin[1]))) % tile.shape[0]
    cols = (np.arange(width) - int(round(origin[0]))) % tile.shape[1]
    return tile[rows[:, None], cols[None, :]]


def photo_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random crop of a background photo, at a random scale, maybe mirrored (uint8 BGR)."""
    library = photo_library()
    photo = library.background(int(rng.integers(len(library.backgrounds))))
    scale = max(height / photo.shape[0], width / photo.shape[1]) * rng.uniform(1.0, 2.5)
    size = (max(width, round(photo.shape[1] * scale)), max(height, round(photo.shape[0] * scale)))
    resized = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
    y = int(rng.integers(0, resized.shape[0] - height + 1))
    x = int(rng.integers(0, resized.shape[1] - width + 1))
    window = resized[y : y + height, x : x + width]
    return np.ascontiguousarray(window[:, ::-1] if rng.random() < 0.5 else window)
