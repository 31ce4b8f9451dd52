"""World v2 (issue "a shipped model"): photo textures and photo backgrounds from the sample
photos installed packages ship, and look-alike identities, switchable without changing the
world-v1 people or crops."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from reid_core.cli import build_parser, run
from trainer.synth import photos
from trainer.synth.crop_render import IDENTITY, CropWorld, render_crop
from trainer.synth.people import BODY_FIELDS, LOOKALIKE_GROUPS, sample_appearance
from trainer.synth.photos import photo_background, photo_library, photo_texture
from trainer.synth.reid_set import ReidSetConfig, plan_crops
from trainer.synth.seeding import generator
from trainer.synth.textures import Pattern, pattern_image

GARMENTS = ("top", "jacket", "bottom_pattern")


def test_the_shipped_photos_are_found_with_their_licences() -> None:
    library = photo_library()
    assert len(library.textures) >= 5 and len(library.backgrounds) >= 3
    for detail in library.textures:  # a high-pass of unit spread: grain without the light
        assert detail.dtype == np.float32
        assert abs(float(detail.mean())) < 0.2 and float(detail.std()) == pytest.approx(1.0)
    for image in library.backgrounds:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert all(photo.licence for photo in library.sources)


def test_missing_photos_name_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = photos.Photo("no_such_package_xyz", "data/a.png", True, True, "CC0")
    monkeypatch.setattr(photos, "PHOTOS", (missing,))
    photo_library.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="scikit-image.*no_such_package_xyz/data/a.png"):
            photo_library()
    finally:
        photo_library.cache_clear()


def test_a_photo_texture_stays_put_on_the_body() -> None:
    """Moving the anchor by (dx, dy) moves the grain by exactly (dx, dy)."""
    first = photo_texture(3, 40, 30, 100.0, 0.5, (0.0, 0.0))
    moved = photo_texture(3, 40, 30, 100.0, 0.5, (4.0, 6.0))
    assert np.array_equal(moved[6:, 4:], first[:-6, :-4])
    assert float(first.std()) > 0.3  # grain, not a flat colour


def test_a_photo_pattern_mixes_only_its_own_colours() -> None:
    base, accent = (40.0, 60.0, 200.0), (200.0, 180.0, 20.0)
    pattern = Pattern("photo", base, accent, period=0.6, duty=0.5, seed=11)
    image = pattern_image(pattern, 64, 32, 120.0)
    assert image.shape == (64, 32, 3)
    # every pixel is a shaded mix of base and accent: blue falls as red rises
    assert np.corrcoef(image[..., 0].ravel(), image[..., 2].ravel())[0, 1] < -0.5
    assert image.min() >= 0.0 and image.max() <= 1.4 * 200.0 + 1e-3


def test_photo_textures_keep_every_identity_and_at_zero_change_nothing() -> None:
    for number in range(20):
        v1 = sample_appearance(generator(0, 1, number))
        assert sample_appearance(generator(0, 1, number), 0.0) == v1
        v2 = sample_appearance(generator(0, 1, number), 1.0)
        for name in GARMENTS:
            old, new = getattr(v1, name), getattr(v2, name)
            assert (old is None) == (new is None)
            if new is not None:
                assert new.kind == "photo" and new.base == old.base
        same = {n: getattr(v1, n) for n in GARMENTS}
        assert replace(v2, **same) == v1  # shapes, colours, gait: the same person


def test_photo_backgrounds_change_the_scene_not_the_person() -> None:
    cfg = ReidSetConfig(identities=4, cameras=2, seed=3, size=(64, 128))
    specs = plan_crops(cfg)[:6]
    v1, v2 = cfg.world(), replace(cfg, photo_backgrounds=1.0).world()
    assert isinstance(v2, CropWorld) and v2.photo_backgrounds == 1.0
    for spec in specs:
        before, after = render_crop(spec, v1), render_crop(spec, v2)
        assert np.array_equal(before.part_map, after.part_map)
        assert before.visibility.occlusion == after.visibility.occlusion
        scene = before.part_map == 0
        assert np.abs(before.image[scene].astype(int) - after.image[scene]).mean() > 10.0
    assert np.array_equal(render_crop(specs[0], v1).image, render_crop(specs[0], cfg.world()).image)


def test_a_photo_background_is_a_mirrored_or_plain_window_of_the_right_size() -> None:
    rng = np.random.default_rng(0)
    windows = [photo_background(rng, 128, 64) for _ in range(8)]
    assert all(w.shape == (128, 64, 3) and w.dtype == np.uint8 for w in windows)
    assert len({w.tobytes() for w in windows}) == 8


def test_cli_renders_world_v2_and_names_bad_values(tmp_path: Path, capsys) -> None:
    out = tmp_path / "v2"
    args = ["synth", "reid", "--identities", "4", "--cameras", "2", "--out", str(out)]
    args += ["--workers", "1", "--quiet", "--size", "64x128"]
    parser = build_parser("trainer", "test", ["trainer.synth.cli"])
    assert run(parser, [*args, "--photo-textures", "1.5"]) == 2
    assert "photo_textures must be in [0, 1], got 1.5" in capsys.readouterr().err
    world = ["--photo-textures", "0.5", "--photo-backgrounds", "0.5", "--lookalikes", "0.25"]
    assert run(parser, [*args, *world]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["world"]["photo_textures"] == 0.5 and meta["world"]["photo_backgrounds"] == 0.5
    assert meta["world"]["lookalikes"] == 0.25
    credited = {entry["file"]: entry["licence"] for entry in meta["world"]["photos"]}
    assert "sklearn/datasets/images/china.jpg" in credited
    assert credited["sklearn/datasets/images/china.jpg"].startswith("CC BY 2.0")
    assert len(list((out / "bounding_box_train").glob("*.jpg"))) > 0


def test_a_big_training_set_keeps_fewer_test_identities() -> None:
    cfg = ReidSetConfig(identities=10, cameras=3, seed=1, test_identities=3)
    assert cfg.train_identities == 7
    specs = plan_crops(cfg)
    train = {s.pid for s in specs if s.split == "train"}
    test = {s.pid for s in specs if s.split in ("query", "gallery") and s.pid > 0}
    assert train == set(range(1, 8)) and test == {8, 9, 10}
    with pytest.raises(ValueError, match="test_identities must be in"):
        ReidSetConfig(identities=10, cameras=3, test_identities=10)


def _differing_groups(a, b) -> set[str]:
    return {
        group
        for group, names in LOOKALIKE_GROUPS.items()
        if any(getattr(a, n) != getattr(b, n) for n in names)
    }


def test_lookalikes_copy_an_earlier_identity_of_their_split_but_one_or_two_garments() -> None:
    cfg = ReidSetConfig(identities=40, cameras=2, seed=2, test_identities=16, lookalikes=0.5)
    world, plain = cfg.world(), replace(cfg, lookalikes=0.0).world()
    own = {pid: plain.person(IDENTITY, pid) for pid in range(1, 41)}
    assert own == {pid: ReidSetConfig(40, 2, seed=2).world().person(IDENTITY, pid) for pid in own}
    resembled = []
    for pid in range(1, 41):
        person = world.person(IDENTITY, pid)
        if person == own[pid]:
            continue
        # its body is its own; its clothes are an earlier identity's of the same split but for
        # one or two garment groups, which are its own draw
        assert all(getattr(person, n) == getattr(own[pid], n) for n in BODY_FIELDS)
        first = 1 if pid <= cfg.train_identities else cfg.train_identities + 1
        models = [m for m in range(first, pid) if 1 <= len(_differing_groups(person, own[m])) <= 2]
        assert models, f"identity {pid} resembles no earlier identity of its split"
        kept_own = _differing_groups(person, own[models[0]])
        assert all(
            getattr(person, n) == getattr(own[pid], n)
            for group in kept_own
            for n in LOOKALIKE_GROUPS[group]
        )
        resembled.append(pid)
    assert 12 <= len(resembled) <= 28  # about half of the 38 that have an earlier identity
    assert 1 not in resembled and cfg.train_identities + 1 not in resembled
    with pytest.raises(ValueError, match="lookalikes must be in"):
        ReidSetConfig(identities=4, cameras=2, lookalikes=1.5)
