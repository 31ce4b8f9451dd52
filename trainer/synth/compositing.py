"""Z-buffered compositing that remembers who owns every pixel, and what that says about people.

Each layer (person, static object) is pasted at one depth; the frame keeps a depth buffer and an
owner map. A person's *amodal* pixels are those of its own sprite (self-occlusion already
resolved, possibly outside the frame); the ones not owned by it in the final frame are hidden by
an occluder or cut by the image border. SPEC §6: occlusion ratio = hidden / own pixels; a body
part is hidden when more than half of its pixels are (a part with no pixel of its own in this
view, such as the far arm behind the torso in a side view, counts as hidden: it cannot be seen);
a joint is visible when it lies inside the image and nothing nearer covers it. A person's part
label map (`part_map`) holds its body-part labels on exactly its visible pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainer.synth.figure import ACCESSORY_LABEL, PART_NAMES, FigureSprite

BACKGROUND = -1
OCCLUDER_KINDS = ("none", "object", "person", "border")


@dataclass
class PlacedSprite:
    """A sprite at an integer offset in a frame (its top-left pixel is (x0, y0))."""

    layer: int
    sprite: FigureSprite
    x0: int
    y0: int
    depth: float

    @property
    def box(self) -> tuple[int, int, int, int]:
        """Amodal extent (x0, y0, x1, y1), exclusive ends, possibly outside the frame."""
        h, w = self.sprite.labels.shape
        return self.x0, self.y0, self.x0 + w, self.y0 + h

    @property
    def joints(self) -> np.ndarray:
        return self.sprite.joints + np.array([self.x0, self.y0], np.float32)

    def part_map(self, visible_mask: np.ndarray) -> np.ndarray:
        """Frame-sized uint8 map of the sprite's body-part labels (`FigureSprite.body_parts`)
        where `visible_mask` (its `PersonVisibility.visible_mask`) is set, 0 elsewhere."""
        out = np.zeros(visible_mask.shape, np.uint8)
        clipped = _clip(visible_mask.shape, self.x0, self.y0, *self.sprite.body_parts.shape)
        if clipped is not None:
            frame, patch = clipped
            out[frame] = self.sprite.body_parts[patch]
        out[~visible_mask] = 0
        return out


@dataclass
class PersonVisibility:
    """What the renderer knows about one person in one frame."""

    occlusion: float
    cause: str
    hidden_parts: list[str]
    joints: np.ndarray  # [14, 3] x, y, visible
    visible_mask: np.ndarray  # frame-sized bool: the person's pixels that show
    own_pixels: int  # amodal pixel count

    def joints_list(self, decimals: int = 1) -> list[list[float]]:
        return [
            [round(float(x), decimals), round(float(y), decimals), int(v)]
            for x, y, v in self.joints
        ]


def _clip(frame_shape: tuple[int, int], x0: int, y0: int, h: int, w: int):
    """Overlap of a (h, w) patch at (x0, y0) with the frame: (frame slices, patch slices)."""
    fh, fw = frame_shape
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(fw, x0 + w), min(fh, y0 + h)
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    frame = (slice(fy0, fy1), slice(fx0, fx1))
    patch = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
    return frame, patch


class Compositor:
    """One frame under construction: colour, depth buffer, owner map, layer kinds."""

    def __init__(
        self,
        image: np.ndarray,
        depth: np.ndarray | None = None,
        owner: np.ndarray | None = None,
        kinds: dict[int, str] | None = None,
    ) -> None:
        self.image = image
        shape = image.shape[:2]
        self.depth = np.full(shape, np.inf, np.float32) if depth is None else depth
        self.owner = np.full(shape, BACKGROUND, np.int32) if owner is None else owner
        self.kinds: dict[int, str] = dict(kinds or {})

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[:2]

    def paste(
        self,
        layer: int,
        kind: str,
        patch: np.ndarray,
        mask: np.ndarray,
        x0: int,
        y0: int,
        depth: float,
    ) -> None:
        """Draw `patch` where `mask` is set and nothing nearer is already drawn."""
        if kind not in ("object", "person"):
            raise ValueError(f"layer kind must be 'object' or 'person', got {kind!r}")
        self.kinds[layer] = kind
        clipped = _clip(self.shape, x0, y0, *mask.shape)
        if clipped is None:
            return
        frame, part = clipped
        draw = mask[part] & (depth < self.depth[frame])
        np.copyto(self.image[frame], patch[part], where=draw[..., None])
        self.depth[frame][draw] = depth
        self.owner[frame][draw] = layer

    def place(
        self, layer: int, sprite: FigureSprite, foot_x: float, foot_y: float, depth: float
    ) -> PlacedSprite:
        """Paste a person so that its ground anchor lands on (foot_x, foot_y)."""
        placed = PlacedSprite(
            layer,
            sprite,
            round(foot_x - sprite.anchor[0]),
            round(foot_y - sprite.anchor[1]),
            depth,
        )
        self.paste(layer, "person", sprite.image, sprite.labels > 0, placed.x0, placed.y0, depth)
        return placed

    def measure(self, placed: PlacedSprite) -> PersonVisibility:
        """Occlusion ratio, its main cause, hidden parts and joint visibility of one person."""
        labels = placed.sprite.labels
        own_total = int(np.count_nonzero(labels))
        totals = np.bincount(labels.ravel(), minlength=ACCESSORY_LABEL + 1)
        visible_mask = np.zeros(self.shape, bool)
        visible_counts = np.zeros_like(totals)
        hidden_by: dict[str, int] = dict.fromkeys(OCCLUDER_KINDS[1:], 0)
        clipped = _clip(self.shape, placed.x0, placed.y0, *labels.shape)
        in_frame = 0
        if clipped is not None:
            frame, part = clipped
            own = labels[part] > 0
            in_frame = int(np.count_nonzero(own))
            owners = self.owner[frame]
            shows = own & (owners == placed.layer)
            visible_mask[frame] = shows
            visible_counts = np.bincount(labels[part][shows], minlength=ACCESSORY_LABEL + 1)
            hiders, counts = np.unique(owners[own & ~shows], return_counts=True)
            for hider, count in zip(hiders.tolist(), counts.tolist(), strict=True):
                hidden_by[self.kinds.get(hider, "object")] += count
        hidden_by["border"] = own_total - in_frame
        shown = int(np.count_nonzero(visible_mask))
        occlusion = 1.0 - shown / own_total if own_total else 1.0
        cause = "none" if shown == own_total else max(hidden_by, key=hidden_by.__getitem__)
        hidden_parts = [
            name
            for k, name in enumerate(PART_NAMES, start=1)
            if totals[k] == 0 or (totals[k] - visible_counts[k]) > 0.5 * totals[k]
        ]
        return PersonVisibility(
            occlusion=occlusion,
            cause=cause,
            hidden_parts=hidden_parts,
            joints=self._joint_visibility(placed),
            visible_mask=visible_mask,
            own_pixels=own_total,
        )

    def _joint_visibility(self, placed: PlacedSprite) -> np.ndarray:
        joints = placed.joints
        h, w = self.shape
        xi = np.round(joints[:, 0]).astype(int)
        yi = np.round(joints[:, 1]).astype(int)
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        nearest = np.full(len(joints), np.inf, np.float32)
        nearest[inside] = self.depth[yi[inside], xi[inside]]
        visible = inside & (nearest >= placed.depth)
        return np.concatenate([joints, visible[:, None].astype(np.float32)], axis=1)
