"""Identity appearance: what makes one synthetic person recognisable across cameras.

SPEC §6: identity lies in the *combination* of clothing colours, textures, hair, accessories and
body shape. Every colour comes from a small palette (weighted like everyday clothing: much black,
grey, navy and denim) with per-identity jitter, so many identities share any given colour and
only the combination tells them apart; no single pixel gives an identity away.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from trainer.synth.textures import Colour, Pattern, shade


def _bgr(rgb: tuple[int, int, int]) -> Colour:
    return (float(rgb[2]), float(rgb[1]), float(rgb[0]))


# (RGB, weight) palettes; converted to BGR once.
_TOPS = [
    ((25, 25, 28), 13),
    ((235, 235, 230), 10),
    ((128, 128, 128), 8),
    ((185, 185, 185), 5),
    ((30, 40, 80), 8),
    ((40, 90, 180), 6),
    ((130, 170, 220), 5),
    ((180, 30, 35), 7),
    ((110, 25, 35), 3),
    ((40, 130, 60), 4),
    ((30, 70, 40), 3),
    ((110, 110, 50), 3),
    ((230, 200, 50), 4),
    ((230, 120, 40), 3),
    ((230, 140, 170), 5),
    ((110, 60, 140), 4),
    ((110, 70, 45), 4),
    ((210, 190, 150), 5),
    ((30, 130, 130), 3),
]
_BOTTOMS = [
    ((22, 22, 25), 24),
    ((50, 80, 130), 18),
    ((100, 130, 170), 6),
    ((110, 110, 112), 10),
    ((30, 38, 70), 8),
    ((180, 160, 110), 10),
    ((100, 70, 45), 5),
    ((230, 230, 225), 3),
    ((35, 65, 40), 3),
    ((210, 190, 150), 4),
    ((160, 35, 40), 2),
    ((100, 100, 50), 2),
]
_JACKETS = [
    ((20, 20, 22), 25),
    ((30, 38, 75), 12),
    ((95, 95, 98), 12),
    ((95, 62, 40), 10),
    ((200, 180, 140), 8),
    ((40, 65, 45), 8),
    ((100, 100, 55), 6),
    ((150, 30, 35), 5),
    ((45, 85, 160), 6),
    ((230, 230, 225), 4),
]
_SHOES = [
    ((20, 20, 20), 40),
    ((235, 235, 235), 25),
    ((120, 120, 120), 10),
    ((100, 65, 40), 12),
    ((170, 35, 35), 4),
    ((40, 70, 150), 5),
    ((200, 180, 140), 4),
]
_BAGS = [
    ((22, 22, 25), 35),
    ((110, 110, 112), 10),
    ((30, 38, 75), 10),
    ((110, 70, 40), 12),
    ((170, 40, 40), 7),
    ((200, 180, 140), 8),
    ((40, 100, 60), 6),
    ((50, 90, 170), 6),
    ((220, 140, 170), 3),
]
_SKIN = [
    (255, 224, 196),
    (241, 194, 150),
    (224, 172, 120),
    (198, 134, 86),
    (141, 95, 60),
    (92, 62, 45),
]
_HAIR = [
    ((28, 24, 22), 40),
    ((60, 40, 28), 22),
    ((110, 75, 45), 14),
    ((200, 170, 110), 9),
    ((165, 165, 160), 8),
    ((135, 65, 35), 7),
]
_TIGHTS = [((25, 25, 28), 3), ((60, 50, 45), 1), ((200, 200, 200), 1)]

HAIR_STYLES = ("short", "long", "bun", "bald")
HATS = ("none", "cap", "beanie")
BAGS = ("none", "backpack", "shoulder_bag", "handbag")
BOTTOMS = ("trousers", "shorts", "skirt")
LOGO_SHAPES = ("circle", "square", "triangle", "bars")


@dataclass(frozen=True)
class Logo:
    """A print on the shirt, front or back: visible only from that side (view-dependent cue)."""

    shape: str
    colour: Colour
    size: float  # fraction of torso width
    on_back: bool


@dataclass(frozen=True)
class Appearance:
    """Everything needed to draw one identity the same way in every camera."""

    skin: Colour
    hair: Colour
    hair_style: str
    hat: str
    hat_colour: Colour
    top: Pattern
    long_sleeves: bool
    logo: Logo | None
    jacket: Pattern | None
    jacket_open: bool
    bottom: str
    bottom_pattern: Pattern
    skirt_length: float  # body heights below the hip line
    legwear: Colour  # bare legs (skin) or tights under shorts / skirt
    shoes: Colour
    bag: str
    bag_colour: Colour
    bag_side: int  # +1 carried on the left, -1 on the right
    build: float  # width factor
    height: float  # relative stature (video world scale)
    head_size: float
    stride: float
    arm_swing: float
    walking_speed: float  # metres per second


def _pick(rng: np.random.Generator, options: list[tuple[tuple[int, int, int], int]]) -> int:
    weights = np.array([w for _, w in options], np.float64)
    return int(rng.choice(len(options), p=weights / weights.sum()))


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int], spread: float = 1.0) -> Colour:
    """Per-identity variation of a palette colour: brightness and a small hue shift."""
    gain = rng.uniform(1.0 - 0.15 * spread, 1.0 + 0.15 * spread)
    shifted = np.asarray(rgb, np.float64) * gain + rng.normal(0.0, 9.0 * spread, 3)
    return _bgr(tuple(int(v) for v in np.clip(shifted, 0, 255)))


def _palette_colour(
    rng: np.random.Generator, options: list[tuple[tuple[int, int, int], int]]
) -> Colour:
    return _jitter(rng, options[_pick(rng, options)][0])


def _pattern(
    rng: np.random.Generator,
    options: list[tuple[tuple[int, int, int], int]],
    kinds: tuple[str, ...],
    kind_weights: tuple[float, ...],
) -> Pattern:
    base_index = _pick(rng, options)
    accent_index = _pick(rng, _TOPS)
    if options is _TOPS and accent_index == base_index:  # a pattern must show on its fabric
        accent_index = (accent_index + 1 + int(rng.integers(len(_TOPS) - 1))) % len(_TOPS)
    accent_rgb = _TOPS[accent_index][0]
    weights = np.asarray(kind_weights, np.float64)
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    period = {"checks": (0.03, 0.08), "dots": (0.025, 0.05)}.get(kind, (0.018, 0.06))
    return Pattern(
        kind=kind,
        base=_jitter(rng, options[base_index][0]),
        accent=_jitter(rng, accent_rgb),
        period=float(rng.uniform(*period)),
        duty=float(rng.uniform(0.3, 0.6)),
        phase=float(rng.uniform(0.0, 1.0)),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def _choice(rng: np.random.Generator, names: tuple[str, ...], weights: tuple[float, ...]) -> str:
    p = np.asarray(weights, np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _photo_fabric(rng: np.random.Generator, pattern: Pattern) -> Pattern:
    """The same garment colours with a photograph's grain: half tonal (accent a shade of the
    base), half two-colour; one photo width spans a quarter to a whole body height."""
    accent = pattern.accent if rng.random() < 0.5 else shade(pattern.base, rng.uniform(0.5, 1.5))
    return replace(
        pattern,
        kind="photo",
        accent=accent,
        period=float(rng.uniform(0.25, 1.0)),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def sample_appearance(rng: np.random.Generator, photo_textures: float = 0.0) -> Appearance:
    """Draw one identity. The same generator state always gives the same person.

    ``photo_textures``: the chance that each garment (top, jacket, bottom) wears a photo
    texture instead (world v2). Its draws come after all others, so at 0 the person is the
    same as before and at any value the same identities keep their colours and shapes."""
    top = _pattern(
        rng,
        _TOPS,
        ("plain", "hstripes", "vstripes", "checks", "dots", "diagonal", "melange"),
        (0.35, 0.15, 0.07, 0.12, 0.08, 0.05, 0.18),
    )
    logo = None
    if rng.random() < 0.25:
        logo = Logo(
            shape=LOGO_SHAPES[int(rng.integers(len(LOGO_SHAPES)))],
            colour=_palette_colour(rng, _TOPS),
            size=float(rng.uniform(0.3, 0.6)),
            on_back=bool(rng.random() < 0.35),
        )
    jacket = None
    if rng.random() < 0.25:
        jacket = _pattern(rng, _JACKETS, ("plain", "melange", "checks"), (0.7, 0.2, 0.1))
    bottom = _choice(rng, BOTTOMS, (0.72, 0.14, 0.14))
    bottom_pattern = _pattern(
        rng,
        _BOTTOMS,
        ("plain", "melange", "checks", "vstripes", "hstripes", "dots"),
        (0.55, 0.25, 0.07, 0.05, 0.04 if bottom == "skirt" else 0.0, 0.04),
    )
    skin = _jitter(rng, _SKIN[int(rng.integers(len(_SKIN)))], spread=0.4)
    hair_style = _choice(rng, HAIR_STYLES, (0.5, 0.3, 0.12, 0.08))
    bag = _choice(rng, BAGS, (0.45, 0.3, 0.18, 0.07))
    appearance = Appearance(
        skin=skin,
        hair=_palette_colour(rng, _HAIR),
        hair_style=hair_style,
        hat=_choice(rng, HATS, (0.85, 0.09, 0.06)),
        hat_colour=_palette_colour(rng, _TOPS),
        top=top,
        long_sleeves=bool(rng.random() < 0.55),
        logo=logo,
        jacket=jacket,
        jacket_open=bool(rng.random() < 0.5),
        bottom=bottom,
        bottom_pattern=bottom_pattern,
        skirt_length=float(rng.uniform(0.18, 0.3)),
        legwear=skin if rng.random() < 0.65 else _palette_colour(rng, _TIGHTS),
        shoes=_palette_colour(rng, _SHOES),
        bag=bag,
        bag_colour=_palette_colour(rng, _BAGS),
        bag_side=1 if rng.random() < 0.5 else -1,
        build=float(rng.uniform(0.85, 1.2)),
        height=float(rng.uniform(0.92, 1.08)),
        head_size=float(rng.uniform(0.92, 1.08)),
        stride=float(rng.uniform(0.8, 1.2)),
        arm_swing=float(rng.uniform(0.6, 1.3)),
        walking_speed=float(rng.uniform(1.0, 1.6)),
    )
    if photo_textures <= 0.0:
        return appearance
    garments = {
        "top": appearance.top,
        "jacket": appearance.jacket,
        "bottom_pattern": appearance.bottom_pattern,
    }
    photo = {
        name: _photo_fabric(rng, pattern)
        for name, pattern in garments.items()
        if pattern is not None and rng.random() < photo_textures
    }
    return replace(appearance, **photo)


# What a look-alike may wear differently from the person it resembles (`lookalike`): garment
# groups, each drawn whole. The body (skin, build, height, gait) is always its own.
LOOKALIKE_GROUPS: dict[str, tuple[str, ...]] = {
    "top": ("top", "logo", "long_sleeves"),
    "jacket": ("jacket", "jacket_open"),
    "bottom": ("bottom", "bottom_pattern", "skirt_length", "legwear"),
    "hair": ("hair", "hair_style", "hat", "hat_colour"),
    "bag": ("bag", "bag_colour", "bag_side"),
}
BODY_FIELDS = ("skin", "build", "height", "head_size", "stride", "arm_swing", "walking_speed")


def _shows_a_difference(group: str, model: Appearance, own: Appearance) -> bool:
    """Whether taking ``own``'s draw of a group changes what is drawn (no jacket and no bag
    look the same whatever their colours)."""
    if group == "jacket":
        return model.jacket is not None or own.jacket is not None
    if group == "bag":
        return model.bag != "none" or own.bag != "none"
    return True


def lookalike(rng: np.random.Generator, model: Appearance, own: Appearance) -> Appearance:
    """``own`` dressed like ``model`` except in one or two garment groups (`LOOKALIKE_GROUPS`,
    among those where the two draws look different), which keep ``own``'s draw. Real crowds
    dress alike (a street in winter: dark coats, jeans), so telling two people apart often
    rests on trousers, a bag or hair; in a world where every outfit is drawn independently,
    the whole-outfit colour alone separates almost everyone and a model never has to look
    further."""
    groups = [g for g in LOOKALIKE_GROUPS if _shows_a_difference(g, model, own)]
    count = 1 + int(rng.random() < 0.5)
    chosen = rng.choice(groups, size=count, replace=False)
    own_fields = [*BODY_FIELDS, *(name for group in chosen for name in LOOKALIKE_GROUPS[group])]
    return replace(model, **{name: getattr(own, name) for name in own_fields})
