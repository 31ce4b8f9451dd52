"""Articulated walking figures: skeleton, pose cycle, view projection, per-part label masks.

A figure is a 3-D stick skeleton in body units (stature 1, y up, x to the person's left, z
forward) posed by a walking cycle, turned by the view angle (0 = facing the camera, ±90° = side,
180° = back) and projected orthographically. Limbs, torso, head, hair, hat and bags are drawn
as filled shapes in depth order into a *label map*; colours, fabric textures and shading come
afterwards from the label map. So every pixel knows which body part it shows, which is what the
occlusion ratio, the hidden parts (SPEC §6) and the ground-truth joints are computed from.

The fine labels (`Fine`) are reduced two ways: to the coarse `PART_NAMES` labels (occlusion
bookkeeping, `FigureSprite.labels`) and to the body-part labels of the per-pixel part label maps
(`FigureSprite.body_parts`, vocabulary `BODY_PART_NAMES` = `reid_core.parts.BODY_PARTS`). R_/L_
and right_/left_ are the person's own right and left (x < 0 is the person's right) in the
skeleton, the draw list, the joints and both label maps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np

from trainer.synth.people import Appearance, Logo
from trainer.synth.textures import Colour, pattern_image, shade

JOINT_NAMES = (
    "head",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
)
PART_NAMES = ("head", "torso", "left_arm", "right_arm", "left_leg", "right_leg")
BODY_PART_NAMES = (
    "background",
    "head",
    "neck",
    "torso",
    "right_upper_arm",
    "right_lower_arm",
    "right_hand",
    "left_upper_arm",
    "left_lower_arm",
    "left_hand",
    "right_upper_leg",
    "right_lower_leg",
    "right_foot",
    "left_upper_leg",
    "left_lower_leg",
    "left_foot",
    "carried",
)
"""Labels 0..16 of `FigureSprite.body_parts`: `reid_core.parts.BODY_PARTS`, repeated here so
that rendering processes do not import torch (importing any `reid_core` module does); a test
keeps the two equal."""
ACCESSORY_LABEL = len(PART_NAMES) + 1
"""Coarse label of bags: the person's own pixels, but no body part."""

_SHIFT = 4  # OpenCV fixed-point drawing: coordinates carry 4 fractional bits
_ONE = 1 << _SHIFT


class Fine(IntEnum):
    """Fine labels: what colours a pixel. Each maps to one coarse part (or the accessory)."""

    FACE = 1
    HAIR = 2
    HAT = 3
    NECK = 4
    TORSO = 5
    SHIRT_BAND = 6
    R_UPPER_ARM = 7
    R_FOREARM = 8
    R_HAND = 9
    L_UPPER_ARM = 10
    L_FOREARM = 11
    L_HAND = 12
    R_THIGH = 13
    R_SHIN = 14
    R_FOOT = 15
    L_THIGH = 16
    L_SHIN = 17
    L_FOOT = 18
    R_SKIRT = 19
    L_SKIRT = 20
    BAG = 21
    STRAP = 22


_FINE_TO_PART = {
    **dict.fromkeys((Fine.FACE, Fine.HAIR, Fine.HAT, Fine.NECK), "head"),
    **dict.fromkeys((Fine.TORSO, Fine.SHIRT_BAND), "torso"),
    **dict.fromkeys((Fine.R_UPPER_ARM, Fine.R_FOREARM, Fine.R_HAND), "right_arm"),
    **dict.fromkeys((Fine.L_UPPER_ARM, Fine.L_FOREARM, Fine.L_HAND), "left_arm"),
    **dict.fromkeys((Fine.R_THIGH, Fine.R_SHIN, Fine.R_FOOT, Fine.R_SKIRT), "right_leg"),
    **dict.fromkeys((Fine.L_THIGH, Fine.L_SHIN, Fine.L_FOOT, Fine.L_SKIRT), "left_leg"),
}
_COARSE_LUT = np.zeros(256, np.uint8)
for _fine, _part in _FINE_TO_PART.items():
    _COARSE_LUT[_fine] = PART_NAMES.index(_part) + 1
_COARSE_LUT[Fine.BAG] = _COARSE_LUT[Fine.STRAP] = ACCESSORY_LABEL
_FINE_TO_BODY_PART = {
    **dict.fromkeys((Fine.FACE, Fine.HAIR, Fine.HAT), "head"),
    Fine.NECK: "neck",
    **dict.fromkeys((Fine.TORSO, Fine.SHIRT_BAND), "torso"),
    **dict.fromkeys((Fine.BAG, Fine.STRAP), "carried"),
}
for _side, _s in (("right", "R"), ("left", "L")):
    _FINE_TO_BODY_PART.update(
        {
            Fine[f"{_s}_UPPER_ARM"]: f"{_side}_upper_arm",
            Fine[f"{_s}_FOREARM"]: f"{_side}_lower_arm",
            Fine[f"{_s}_HAND"]: f"{_side}_hand",
            Fine[f"{_s}_THIGH"]: f"{_side}_upper_leg",
            Fine[f"{_s}_SKIRT"]: f"{_side}_upper_leg",
            Fine[f"{_s}_SHIN"]: f"{_side}_lower_leg",
            Fine[f"{_s}_FOOT"]: f"{_side}_foot",
        }
    )
_BODY_PART_LUT = np.zeros(256, np.uint8)
"""Fine label → `reid_core.parts.BODY_PARTS` label (0 stays background)."""
for _fine, _name in _FINE_TO_BODY_PART.items():
    _BODY_PART_LUT[_fine] = BODY_PART_NAMES.index(_name)
# pieces of one limb or garment share a seam group: no drawn seam at knees and elbows
_SEAM_GROUP = np.arange(256, dtype=np.uint8)
for _a, _b in (
    (Fine.R_FOREARM, Fine.R_UPPER_ARM),
    (Fine.L_FOREARM, Fine.L_UPPER_ARM),
    (Fine.R_SHIN, Fine.R_THIGH),
    (Fine.L_SHIN, Fine.L_THIGH),
    (Fine.L_SKIRT, Fine.R_SKIRT),
    (Fine.NECK, Fine.FACE),
):
    _SEAM_GROUP[_a] = _b


def view_name(view_angle_deg: float) -> str:
    """front / back / side from the angle between the person's facing and the camera."""
    c = float(np.cos(np.radians(view_angle_deg)))
    if c > np.cos(np.radians(45)):
        return "front"
    if c < -np.cos(np.radians(45)):
        return "back"
    return "side"


@dataclass(frozen=True)
class Lighting:
    """Light on the figure: `side` in [-1, 1] brightens one flank, `top` the upper body."""

    side: float = 0.0
    top: float = 0.08


@dataclass
class FigureSprite:
    """A rendered figure: colour, coarse part labels (0 = empty), joints, ground anchor (px),
    and the same pixels' `BODY_PART_NAMES` labels (`body_parts`, 0 = empty)."""

    image: np.ndarray
    labels: np.ndarray
    joints: np.ndarray
    anchor: tuple[float, float]
    view: str
    body_parts: np.ndarray

    @property
    def pixel_count(self) -> int:
        return int(np.count_nonzero(self.labels))


# ------------------------------------------------------------------------------------------
# Skeleton and walking cycle


def _rot_sagittal(angle: float) -> np.ndarray:
    """Unit limb direction hanging down, swung forward by `angle` (radians)."""
    return np.array([0.0, -np.cos(angle), np.sin(angle)])


def skeleton(app: Appearance, phase: float, gait: float = 1.0) -> dict[str, np.ndarray]:
    """Named 3-D points of the posed body (body units, feet on y = 0).

    Walking cycle: hips swing ±22°·stride in antiphase, the knee flexes during the swing phase
    (peak about 55° early in the swing), arms swing opposite to the same-side leg with a little
    elbow flexion. `gait` = 0 gives a standing pose.
    """
    b = app.build
    hip_amp = np.radians(22.0) * app.stride * gait
    arm_amp = np.radians(20.0) * app.arm_swing * gait
    pts: dict[str, np.ndarray] = {}
    pts["neck"] = np.array([0.0, 0.845, 0.015 * gait])
    pts["head"] = np.array([0.0, 0.925, 0.02 * gait])
    for side, sign, leg_phase in (("right", -1.0, phase), ("left", 1.0, phase + np.pi)):
        hip_angle = hip_amp * np.sin(leg_phase)
        swing = max(0.0, float(np.cos(leg_phase + np.pi / 6.0)))
        knee_flex = np.radians(5.0) + np.radians(50.0) * swing**2 * gait
        hip = np.array([sign * 0.05 * b, 0.52, 0.0])
        knee = hip + 0.245 * _rot_sagittal(hip_angle)
        ankle = knee + 0.235 * _rot_sagittal(hip_angle - knee_flex)
        foot_pitch = 0.4 * (hip_angle - knee_flex) * gait
        toe = ankle + np.array([0.0, -0.03 - 0.08 * np.sin(max(0.0, -foot_pitch)), 0.1])
        heel = ankle + np.array([0.0, -0.03, -0.03])
        arm_angle = -arm_amp * np.sin(leg_phase)
        elbow_flex = np.radians(12.0) + np.radians(20.0) * max(0.0, float(np.sin(arm_angle)))
        shoulder = np.array([sign * 0.11 * b, 0.805, 0.01 * gait])
        abduct = np.array([sign * 0.08, 0.0, 0.0])
        elbow = shoulder + 0.175 * (_rot_sagittal(arm_angle) + abduct)
        wrist = elbow + 0.15 * (_rot_sagittal(arm_angle + elbow_flex) + 0.5 * abduct)
        hand = wrist + 0.035 * _rot_sagittal(arm_angle + elbow_flex)
        pts.update(
            {
                f"{side}_hip": hip,
                f"{side}_knee": knee,
                f"{side}_ankle": ankle,
                f"{side}_toe": toe,
                f"{side}_heel": heel,
                f"{side}_shoulder": shoulder,
                f"{side}_elbow": elbow,
                f"{side}_wrist": wrist,
                f"{side}_hand": hand,
            }
        )
    # the lower foot carries the body: it touches the ground (gives the vertical bob)
    ground = min(pts[k][1] for k in ("right_toe", "right_heel", "left_toe", "left_heel"))
    lift = np.array([0.0, ground - 0.022, 0.0])
    return {name: p - lift for name, p in pts.items()}


# ------------------------------------------------------------------------------------------
# Drawing primitives (into the fine label map, fixed-point coordinates)


def _fx(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, np.float64) * _ONE).astype(np.int32)


def _capsule(labels: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float, rb: float, value: int):
    d = b - a
    length = float(np.hypot(*d))
    normal = np.array([-d[1], d[0]]) / length if length > 1e-6 else np.array([1.0, 0.0])
    quad = np.stack([a + normal * ra, b + normal * rb, b - normal * rb, a - normal * ra])
    cv2.fillConvexPoly(labels, _fx(quad), int(value), cv2.LINE_8, _SHIFT)
    for centre, radius in ((a, ra), (b, rb)):
        cv2.circle(
            labels,
            tuple(_fx(centre)),
            max(1, round(radius * _ONE)),
            int(value),
            -1,
            cv2.LINE_8,
            _SHIFT,
        )


def _ellipse(labels: np.ndarray, centre: np.ndarray, rx: float, ry: float, value: int) -> None:
    axes = (max(1, round(rx * _ONE)), max(1, round(ry * _ONE)))
    cv2.ellipse(
        labels, tuple(_fx(centre)), axes, 0.0, 0.0, 360.0, int(value), -1, cv2.LINE_8, _SHIFT
    )


def _polygon(labels: np.ndarray, points: np.ndarray, value: int) -> None:
    cv2.fillPoly(labels, [_fx(points)], int(value), cv2.LINE_8, _SHIFT)


@dataclass
class _Projector:
    """Orthographic projection of body points for one view angle and pixel stature."""

    cos: float
    sin: float
    scale: float
    origin: np.ndarray

    def __call__(self, p: np.ndarray) -> np.ndarray:
        u = p[0] * self.cos + p[2] * self.sin
        return self.origin + self.scale * np.array([u, -p[1]])

    def depth(self, p: np.ndarray) -> float:
        """Towards the camera is positive."""
        return float(-p[0] * self.sin + p[2] * self.cos)

    def half_width(self, lateral: float, depth: float) -> float:
        """Projected half width (px) of an elliptic cross-section with these half axes."""
        return self.scale * float(np.hypot(lateral * self.cos, depth * self.sin))


_Draw = Callable[[np.ndarray], None]


def _head_region(labels: np.ndarray, centre: np.ndarray, rx: float, ry: float):
    """Window slices and normalised coordinates (u, w) around the head for mask maths."""
    x0 = max(0, int(centre[0] - 1.3 * rx) - 1)
    x1 = min(labels.shape[1], int(centre[0] + 1.3 * rx) + 2)
    y0 = max(0, int(centre[1] - 1.3 * ry) - 1)
    y1 = min(labels.shape[0], int(centre[1] + 1.3 * ry) + 2)
    u = (np.arange(x0, x1)[None, :] - centre[0]) / rx
    w = (np.arange(y0, y1)[:, None] - centre[1]) / ry
    return (slice(y0, y1), slice(x0, x1)), u, w


def _hair_cap(labels, centre, rx, ry, cos_v, sin_v, coverage_front: float, value: int) -> None:
    """Hair/hat over the skull: covers more of the head the more we see its back (§6 looks)."""
    window, u, w = _head_region(labels, centre, rx * 1.1, ry * 1.07)
    inside = u**2 + (w + 0.05) ** 2 < 1.0
    back = 0.5 * (1.0 - cos_v)
    threshold = coverage_front + (0.75 - coverage_front) * back - 0.9 * u * sin_v
    region = labels[window]
    region[inside & (w < threshold)] = value


def _torso_outline(proj: _Projector, b: float, extra: float, lean: float) -> np.ndarray:
    rows = (  # (height, lateral half axis, depth half axis)
        (0.835, 0.07 * b + extra, 0.05 + extra),
        (0.81, 0.125 * b + extra, 0.065 + extra),
        (0.64, 0.102 * b + extra, 0.07 + extra),
        (0.50, 0.1 * b + extra, 0.075 + extra),
    )
    left, right = [], []
    for y, lat, dep in rows:
        centre = proj(np.array([0.0, y, lean * (y - 0.5) / 0.33]))
        hw = proj.half_width(lat, dep)
        left.append(centre - np.array([hw, 0.0]))
        right.append(centre + np.array([hw, 0.0]))
    return np.array(right + left[::-1])


def _box_outline(proj: _Projector, centre3: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Projected outline (a rectangle in image) of an axis-aligned body-frame box."""
    c = proj(centre3)
    hw = proj.scale * (abs(half[0] * proj.cos) + abs(half[2] * proj.sin))
    hh = proj.scale * half[1]
    return np.array([c + (-hw, -hh), c + (hw, -hh), c + (hw, hh), c + (-hw, hh)])


def _draw_list(
    app: Appearance, pts: dict[str, np.ndarray], proj: _Projector
) -> list[tuple[float, _Draw]]:
    """All body shapes as (depth towards the camera, draw function); drawn far to near."""
    b = app.build
    r = b**0.6
    sleeve = 0.006 if app.jacket is not None else 0.0
    trouser = 0.004 if app.bottom == "trousers" else -0.003
    items: list[tuple[float, _Draw]] = []

    def add(depth: float, draw: _Draw) -> None:
        items.append((depth, draw))

    def limb(
        a: str,
        bname: str,
        ra: float,
        rb: float,
        value: int,
        bias: float = 0.0,
        deepest: float = np.inf,
    ) -> None:
        pa, pb = pts[a], pts[bname]
        depth = min(deepest, proj.depth(0.5 * (pa + pb)) + bias)
        ca, cb = proj(pa), proj(pb)
        add(depth, lambda lab: _capsule(lab, ca, cb, ra * proj.scale, rb * proj.scale, value))

    lean = float(pts["neck"][2])
    torso_poly = _torso_outline(proj, b, sleeve, lean)
    add(-0.02, lambda lab: _polygon(lab, torso_poly, Fine.TORSO))
    if app.jacket is not None and app.jacket_open and proj.cos > 0.15:
        band = []
        for y in (0.8, 0.5):
            centre = proj(np.array([0.0, y, lean * (y - 0.5) / 0.33 + 0.07]))
            band.append((centre, 0.028 * b * proj.cos * proj.scale))
        band_poly = np.array(
            [
                band[0][0] + (band[0][1], 0),
                band[1][0] + (band[1][1], 0),
                band[1][0] - (band[1][1], 0),
                band[0][0] - (band[0][1], 0),
            ]
        )
        add(-0.019, lambda lab: _polygon(lab, band_poly, Fine.SHIRT_BAND))

    for side, upper, fore, hand_label in (
        ("right", Fine.R_UPPER_ARM, Fine.R_FOREARM, Fine.R_HAND),
        ("left", Fine.L_UPPER_ARM, Fine.L_FOREARM, Fine.L_HAND),
    ):
        limb(f"{side}_shoulder", f"{side}_elbow", (0.03 + sleeve) * r, (0.025 + sleeve) * r, upper)
        limb(f"{side}_elbow", f"{side}_wrist", (0.024 + sleeve) * r, 0.019 * r, fore)
        limb(f"{side}_wrist", f"{side}_hand", 0.02 * r, 0.022 * r, hand_label, 0.001)
    for side, thigh, shin, foot in (
        ("right", Fine.R_THIGH, Fine.R_SHIN, Fine.R_FOOT),
        ("left", Fine.L_THIGH, Fine.L_SHIN, Fine.L_FOOT),
    ):
        # thighs go under the shirt hem (the torso is drawn at depth -0.02)
        limb(
            f"{side}_hip",
            f"{side}_knee",
            (0.052 + trouser) * r,
            (0.04 + trouser) * r,
            thigh,
            deepest=-0.021,
        )
        limb(f"{side}_knee", f"{side}_ankle", (0.038 + trouser) * r, (0.027 + trouser) * r, shin)
        limb(f"{side}_heel", f"{side}_toe", 0.024, 0.02, foot, 0.002)

    if app.bottom == "skirt":
        hem_y = 0.5 - app.skirt_length
        flare = 0.11 * b + 0.25 * app.skirt_length
        waist_c = proj(np.array([0.0, 0.58, 0.0]))
        hem_c = proj(np.array([0.0, hem_y, 0.0]))
        waist_hw = proj.half_width(0.1 * b, 0.08)
        hem_hw = proj.half_width(flare, 0.8 * flare)
        facing = 1.0 if proj.cos >= 0 else -1.0  # the person's left is on the image right
        for sign, value in ((-1.0, Fine.R_SKIRT), (1.0, Fine.L_SKIRT)):
            # split at the body's centre line: each half belongs to one leg
            offset = sign * facing
            poly = np.array(
                [waist_c, waist_c + (offset * waist_hw, 0), hem_c + (offset * hem_hw, 0), hem_c]
            )
            # over the thighs, under the shirt hem
            add(-0.0205, lambda lab, poly=poly, value=value: _polygon(lab, poly, value))

    head_c = proj(pts["head"])
    head_rx = proj.half_width(0.056 * app.head_size, 0.064 * app.head_size)
    head_ry = 0.068 * app.head_size * proj.scale
    neck_a, neck_b = proj(pts["neck"]), proj(pts["neck"] + np.array([0.0, 0.05, 0.0]))
    add(
        -0.011,
        lambda lab: _capsule(
            lab, neck_a, neck_b, 0.024 * r * proj.scale, 0.024 * r * proj.scale, Fine.NECK
        ),
    )
    if app.hair_style == "long":
        top = pts["head"] + np.array([0.0, 0.0, -0.03])
        hair_poly = _box_outline(
            proj,
            top + np.array([0, -0.085, -0.015]),
            np.array([0.058 * app.head_size, 0.085, 0.02]),
        )
        add(
            proj.depth(top + np.array([0, 0, -0.03])),
            lambda lab: _polygon(lab, hair_poly, Fine.HAIR),
        )

    def head(lab: np.ndarray) -> None:
        _ellipse(lab, head_c, head_rx, head_ry, Fine.FACE)
        if app.hair_style != "bald":
            _hair_cap(lab, head_c, head_rx, head_ry, proj.cos, proj.sin, -0.4, Fine.HAIR)
        if app.hat == "beanie":
            _hair_cap(
                lab,
                head_c - (0, 0.1 * head_ry),
                head_rx * 1.05,
                head_ry,
                proj.cos,
                proj.sin,
                -0.35,
                Fine.HAT,
            )
        elif app.hat == "cap":
            _hair_cap(
                lab,
                head_c - (0, 0.12 * head_ry),
                head_rx * 1.04,
                head_ry * 0.95,
                proj.cos,
                proj.sin,
                -0.45,
                Fine.HAT,
            )

    add(0.0, head)
    if app.hair_style == "bun":
        bun = pts["head"] + np.array([0.0, 0.06, -0.04])
        bun_c = proj(bun)
        add(
            proj.depth(bun),
            lambda lab: _ellipse(lab, bun_c, 0.03 * proj.scale, 0.028 * proj.scale, Fine.HAIR),
        )
    if app.hat == "cap":
        brim = pts["head"] + np.array([0.0, 0.035, 0.075])
        brim_poly = _box_outline(proj, brim, np.array([0.05, 0.008, 0.03]))
        add(proj.depth(brim), lambda lab: _polygon(lab, brim_poly, Fine.HAT))

    _add_bag(app, pts, proj, add)
    return items


def _add_bag(
    app: Appearance,
    pts: dict[str, np.ndarray],
    proj: _Projector,
    add: Callable[[float, _Draw], None],
) -> None:
    """Backpack on the back (straps on the chest), shoulder bag at the hip, or handbag."""
    if app.bag == "none":
        return
    b = app.build
    if app.bag == "backpack":
        centre = np.array([0.0, 0.68, -0.115])
        outline = _box_outline(proj, centre, np.array([0.08 * b, 0.1, 0.045]))
        add(proj.depth(centre), lambda lab: _polygon(lab, outline, Fine.BAG))
        if proj.cos > 0.2:  # shoulder straps seen on the chest
            for sign in (-1.0, 1.0):
                a = proj(np.array([sign * 0.07 * b, 0.82, 0.07]))
                c = proj(np.array([sign * 0.085 * b, 0.6, 0.08]))
                add(
                    0.09,
                    lambda lab, a=a, c=c: _capsule(
                        lab, a, c, 0.01 * proj.scale, 0.01 * proj.scale, Fine.STRAP
                    ),
                )
        return
    side = app.bag_side
    if app.bag == "handbag":
        hand = pts["left_hand" if side > 0 else "right_hand"]
        centre = hand + np.array([0.0, -0.05, 0.0])
        outline = _box_outline(proj, centre, np.array([0.025, 0.05, 0.07]))
        add(proj.depth(centre) + 0.01, lambda lab: _polygon(lab, outline, Fine.BAG))
        return
    centre = np.array([side * 0.14 * b, 0.52, 0.0])
    outline = _box_outline(proj, centre, np.array([0.03, 0.06, 0.08]))
    add(proj.depth(centre) + 0.005, lambda lab: _polygon(lab, outline, Fine.BAG))
    top = proj(np.array([-side * 0.08 * b, 0.83, 0.0]))
    bottom = proj(centre + np.array([0.0, 0.06, 0.0]))
    strap_depth = 0.08 * abs(proj.cos)
    add(
        strap_depth,
        lambda lab: _capsule(lab, top, bottom, 0.009 * proj.scale, 0.009 * proj.scale, Fine.STRAP),
    )


# ------------------------------------------------------------------------------------------
# Colour, texture, shading


def _garment_sources(app: Appearance) -> dict[int, str | Colour]:
    """Fine label → garment texture key ('top', 'jacket', 'bottom') or a plain colour."""
    upper = "jacket" if app.jacket is not None else "top"
    covered_forearm = app.jacket is not None or app.long_sleeves
    thigh = "bottom" if app.bottom != "skirt" else app.legwear
    shin = "bottom" if app.bottom == "trousers" else app.legwear
    return {
        Fine.FACE: app.skin,
        Fine.NECK: app.skin,
        Fine.R_HAND: app.skin,
        Fine.L_HAND: app.skin,
        Fine.HAIR: app.hair,
        Fine.HAT: app.hat_colour,
        Fine.TORSO: upper,
        Fine.SHIRT_BAND: "top",
        Fine.R_UPPER_ARM: upper,
        Fine.L_UPPER_ARM: upper,
        Fine.R_FOREARM: upper if covered_forearm else app.skin,
        Fine.L_FOREARM: upper if covered_forearm else app.skin,
        Fine.R_THIGH: thigh,
        Fine.L_THIGH: thigh,
        Fine.R_SHIN: shin,
        Fine.L_SHIN: shin,
        Fine.R_FOOT: app.shoes,
        Fine.L_FOOT: app.shoes,
        Fine.R_SKIRT: "bottom",
        Fine.L_SKIRT: "bottom",
        Fine.BAG: app.bag_colour,
        Fine.STRAP: shade(app.bag_colour, 0.7),
    }


_GARMENTS = ("top", "jacket", "bottom")


def _colourise(app: Appearance, fine: np.ndarray, scale: float, anchor: np.ndarray) -> np.ndarray:
    """Plain colours by lookup table, then each garment's texture over its own bounding box."""
    lut = np.zeros((256, 3), np.float32)
    garment_of = np.zeros(256, np.uint8)  # 0 = plain colour, k = _GARMENTS[k - 1]
    for label, source in _garment_sources(app).items():
        if isinstance(source, str):
            garment_of[int(label)] = _GARMENTS.index(source) + 1
        else:
            lut[int(label)] = source
    image = lut[fine]
    garment_map = garment_of[fine]
    patterns = (app.top, app.jacket, app.bottom_pattern)
    for k, pattern in enumerate(patterns, start=1):
        mask = (garment_map == k).view(np.uint8)
        x, y, w, h = cv2.boundingRect(mask)
        if pattern is None or w == 0:
            continue
        texture = pattern_image(pattern, h, w, scale, (anchor[0] - x, anchor[1] - y))
        np.copyto(image[y : y + h, x : x + w], texture, where=mask[y : y + h, x : x + w, None] > 0)
    return image


def _draw_logo(
    image: np.ndarray, fine: np.ndarray, logo: Logo, proj: _Projector, app: Appearance
) -> None:
    """Print the logo on the chest or back when that side faces the camera, foreshortened."""
    facing = -proj.cos if logo.on_back else proj.cos
    if facing < 0.3 or (app.jacket is not None and not (app.jacket_open and not logo.on_back)):
        return
    target = Fine.SHIRT_BAND if app.jacket is not None else Fine.TORSO
    z = -0.075 if logo.on_back else 0.075
    centre = proj(np.array([0.0, 0.7, z]))
    radius = 0.5 * logo.size * 0.22 * app.build * proj.scale
    if app.jacket is not None:
        radius = min(radius, 0.028 * app.build * proj.scale)
    rx, ry = radius * facing, radius
    if rx < 1.0:
        return
    mask = np.zeros(fine.shape, np.uint8)
    if logo.shape == "circle":
        _ellipse(mask, centre, rx, ry, 1)
    elif logo.shape == "square":
        _polygon(mask, centre + np.array([(-rx, -ry), (rx, -ry), (rx, ry), (-rx, ry)]), 1)
    elif logo.shape == "triangle":
        _polygon(mask, centre + np.array([(0, -ry), (rx, ry), (-rx, ry)]), 1)
    else:  # bars: a printed word
        for k in range(3):
            y = centre[1] - ry + k * ry * 0.8
            _polygon(
                mask,
                np.array(
                    [
                        (centre[0] - rx, y),
                        (centre[0] + rx, y),
                        (centre[0] + rx, y + 0.45 * ry),
                        (centre[0] - rx, y + 0.45 * ry),
                    ]
                ),
                1,
            )
    paint = (mask > 0) & (fine == target)
    image[paint] = logo.colour


def _draw_face(
    image: np.ndarray,
    fine: np.ndarray,
    head_c: np.ndarray,
    head_rx: float,
    head_ry: float,
    proj: _Projector,
    app: Appearance,
) -> None:
    """Eyes, when the face is towards the camera and big enough to show them."""
    if proj.cos < 0.3 or head_ry < 7:
        return
    eye_colour = shade(app.skin, 0.3)
    for sign in (-1.0, 1.0):
        c = head_c + np.array(
            [sign * 0.35 * head_rx * proj.cos + 0.3 * head_rx * proj.sin, -0.05 * head_ry]
        )
        x, y = int(round(c[0])), int(round(c[1]))
        r = max(1, int(round(0.09 * head_ry)))
        patch = (slice(max(0, y - r + 1), y + r), slice(max(0, x - r + 1), x + r))
        face = fine[patch] == Fine.FACE
        image[patch][face] = eye_colour


def _shade(image: np.ndarray, fine: np.ndarray, scale: float, lighting: Lighting) -> np.ndarray:
    """Rounded-limb shading, dark seams where parts meet, top light and a lit flank."""
    solid = (fine > 0).astype(np.float32)
    sigma = max(0.8, 0.012 * scale)
    rounded = cv2.GaussianBlur(solid, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    factor = 0.72 + 0.28 * np.clip(rounded * 1.6, 0.0, 1.0)
    group = _SEAM_GROUP[fine]
    seam = np.zeros(fine.shape, bool)
    seam[:, 1:] |= group[:, 1:] != group[:, :-1]
    seam[1:, :] |= group[1:, :] != group[:-1, :]
    factor = np.where(seam & (fine > 0), factor * 0.8, factor)
    h, w = fine.shape
    rows = np.linspace(1.0 + lighting.top, 1.0 - lighting.top, h, dtype=np.float32)[:, None]
    cols = np.linspace(-lighting.side, lighting.side, w, dtype=np.float32)[None, :] * 0.15
    factor = factor * rows * (1.0 + cols)
    return np.clip(image * factor[..., None], 0, 255)


# ------------------------------------------------------------------------------------------


def render_figure(
    app: Appearance,
    stature_px: float,
    view_angle_deg: float,
    phase: float,
    gait: float = 1.0,
    lighting: Lighting | None = None,
) -> FigureSprite:
    """Draw one person `stature_px` pixels tall (heel to crown) seen at `view_angle_deg`.

    Returns a tight sprite; joints and anchor (ground point between the feet) are in sprite
    pixel coordinates (OpenCV convention: pixel centres on integers).
    """
    if not stature_px > 4:
        raise ValueError(f"stature_px must be > 4 pixels, got {stature_px}")
    lighting = lighting or Lighting()
    theta = np.radians(view_angle_deg)
    pts = skeleton(app, phase, gait)
    margin = 0.3 * stature_px + 4
    size_w = int(np.ceil(2 * margin + 0.3 * stature_px))
    size_h = int(np.ceil(stature_px * 1.12 + 8))
    origin = np.array([size_w / 2.0, stature_px * 1.05 + 4])
    proj = _Projector(float(np.cos(theta)), float(np.sin(theta)), float(stature_px), origin)
    fine = np.zeros((size_h, size_w), np.uint8)
    items = _draw_list(app, pts, proj)
    for _, draw in sorted(items, key=lambda item: item[0]):
        draw(fine)
    # everything after this works on the tight box of the drawn figure
    x0, y0, w, h = cv2.boundingRect(fine)
    fine = np.ascontiguousarray(fine[y0 : y0 + h, x0 : x0 + w])
    proj.origin = origin - (x0, y0)
    image = _colourise(app, fine, stature_px, proj(pts["neck"]))
    if app.logo is not None:
        _draw_logo(image, fine, app.logo, proj, app)
    head_rx = proj.half_width(0.056 * app.head_size, 0.064 * app.head_size)
    head_ry = 0.068 * app.head_size * stature_px
    _draw_face(image, fine, proj(pts["head"]), head_rx, head_ry, proj, app)
    image = _shade(image, fine, stature_px, lighting)
    return FigureSprite(
        image=image.astype(np.uint8),
        labels=_COARSE_LUT[fine],
        joints=np.array([proj(pts[name]) for name in JOINT_NAMES], np.float32),
        anchor=(float(proj.origin[0]), float(proj.origin[1])),
        view=view_name(view_angle_deg),
        body_parts=_BODY_PART_LUT[fine],
    )
