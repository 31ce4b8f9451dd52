"""The synthetic world (SPEC §6): determinism, Market layout, ground truth that matches pixels."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from reid_core.cli import build_parser, run
from reid_core.parts import BODY_PART_INDEX, BODY_PARTS
from trainer.synth.cameras import encode_jpeg
from trainer.synth.compositing import Compositor
from trainer.synth.crop_render import CropWorld, appearance, crop_camera, render_crop
from trainer.synth.figure import (
    _BODY_PART_LUT,
    BODY_PART_NAMES,
    JOINT_NAMES,
    PART_NAMES,
    Fine,
    Lighting,
    render_figure,
)
from trainer.synth.occluders import draw_object
from trainer.synth.reid_set import (
    SPLIT_DIRS,
    ReidSetConfig,
    encode_part_map,
    plan_crops,
    write_reid_set,
)
from trainer.synth.video import CameraRenderer, VideoConfig, build_world, write_videos

MARKET_NAME = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
REID = ReidSetConfig(identities=6, cameras=2, seed=5)
VIDEO = VideoConfig(cameras=2, people=3, seconds=3, seed=7, size=(320, 180))


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _manifest(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reid_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reid") / "set"
    write_reid_set(REID, root, workers=1, show_progress=False)
    return root


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("video") / "clip"
    write_videos(VIDEO, root, workers=1, show_progress=False)
    return root


def test_reid_set_same_seed_same_bytes_any_workers_other_seed_differs(
    reid_set: Path, tmp_path: Path
) -> None:
    write_reid_set(REID, tmp_path / "again", workers=2, show_progress=False)
    other = ReidSetConfig(identities=6, cameras=2, seed=6)
    write_reid_set(other, tmp_path / "other", workers=1, show_progress=False)
    reference = _hashes(reid_set)
    assert len(reference) > 60
    assert _hashes(tmp_path / "again") == reference
    different = _hashes(tmp_path / "other")
    assert different["manifest.jsonl"] != reference["manifest.jsonl"]
    crops = {h for name, h in reference.items() if name.endswith(".jpg")}
    assert crops.isdisjoint(h for name, h in different.items() if name.endswith(".jpg"))


def test_video_same_seed_same_bytes_other_seed_differs(videos: Path, tmp_path: Path) -> None:
    # OpenCV's mp4v writer is deterministic: whole files are compared, not decoded frames
    write_videos(VIDEO, tmp_path / "again", workers=2, show_progress=False)
    other = VideoConfig(cameras=2, people=3, seconds=3, seed=8, size=(320, 180))
    write_videos(other, tmp_path / "other", workers=1, show_progress=False)
    reference = _hashes(videos)
    assert {"cams.yaml", "meta.json", "cam1/video.mp4", "cam2/gt/gt.txt"} <= set(reference)
    assert _hashes(tmp_path / "again") == reference
    different = _hashes(tmp_path / "other")
    for name in ("cam1/video.mp4", "cam2/video.mp4", "cam1/gt/gt.txt", "meta.json"):
        assert different[name] != reference[name]


def test_market_layout_splits_and_labels(reid_set: Path) -> None:
    records = _manifest(reid_set)
    folders = {
        "bounding_box_train": "train",
        "bounding_box_test": "gallery",
        "query": "query",
        "occluded_query": "occluded_query",
    }
    parsed: dict[str, list[tuple[int, int]]] = {split: [] for split in folders.values()}
    for folder, split in folders.items():
        for path in (reid_set / folder).iterdir():
            match = MARKET_NAME.match(path.name)
            assert match, f"not a Market-1501 name: {path.name}"
            pid, cam = int(match.group(1)), int(match.group(2))
            assert 1 <= cam <= REID.cameras
            parsed[split].append((pid, cam))
    assert sum(len(v) for v in parsed.values()) == len(records)
    train_ids = {pid for pid, _ in parsed["train"]}
    test_ids = {pid for pid, _ in parsed["gallery"] if pid > 0}
    assert train_ids == {1, 2, 3} and test_ids == {4, 5, 6}
    assert {pid for pid, _ in parsed["gallery"]} >= {0, -1}  # distractors and junk
    for pid, cam in parsed["query"] + parsed["occluded_query"]:
        assert pid in test_ids
        assert any(g == pid and c != cam for g, c in parsed["gallery"]), (pid, cam)
    assert {pid for pid, _ in parsed["occluded_query"]} == test_ids
    for record in records:
        name = Path(record["path"]).name
        assert int(MARKET_NAME.match(name).group(1)) == record["pid"]
        assert len(record["joints"]) == len(JOINT_NAMES)
        assert all(len(j) == 3 and j[2] in (0, 1) for j in record["joints"])
        assert set(record["hidden_parts"]) <= set(PART_NAMES)
        assert record["view"] in ("front", "back", "side")
        assert record["occluder"] in ("none", "object", "person", "border")
        assert (record["occluder"] == "none") == (record["occlusion"] == 0.0)
        if record["split"] == "occluded_query":
            assert record["occlusion"] >= 0.3
    meta = json.loads((reid_set / "meta.json").read_text())
    assert meta["joint_names"] == list(JOINT_NAMES) and meta["part_names"] == list(PART_NAMES)
    assert meta["counts"] == {s: len(parsed[s]) for s in folders.values()}
    queries = [r for r in records if r["split"] == "query"]
    assert sum(r["occlusion"] == 0.0 for r in queries) >= 0.6 * len(queries)  # mostly holistic


def test_manifest_occlusion_matches_rendered_masks(reid_set: Path) -> None:
    records = {r["path"]: r for r in _manifest(reid_set)}
    specs = plan_crops(REID)
    world = CropWorld(REID.seed, REID.size)
    occluded = [s for s in specs if records[s.path]["occlusion"] > 0]
    checked = occluded[:6] + [s for s in specs if records[s.path]["occlusion"] == 0][:2]
    assert {records[s.path]["occluder"] for s in occluded} >= {"object", "person"}
    for spec in checked:
        render = render_crop(spec, world)
        quality = crop_camera(REID.seed, spec.camid).look.jpeg_quality
        assert encode_jpeg(render.image, quality) == (reid_set / spec.path).read_bytes()
        vis = render.visibility
        from_masks = 1.0 - np.count_nonzero(vis.visible_mask) / vis.own_pixels
        assert records[spec.path]["occlusion"] == pytest.approx(from_masks, abs=1e-4)
        h, w = vis.visible_mask.shape
        for x, y, v in records[spec.path]["joints"]:
            if v:  # a visible joint lies in the crop
                assert 0 <= round(x) < w and 0 <= round(y) < h
    border = [s for s in specs if records[s.path]["occluder"] == "border"]
    for spec in border[:3]:  # a person cut by the crop edge has joints flagged outside
        joints = np.asarray(records[spec.path]["joints"])
        outside = (joints[:, 0] < -0.5) | (joints[:, 0] > REID.size[0] - 0.5)
        outside |= (joints[:, 1] < -0.5) | (joints[:, 1] > REID.size[1] - 0.5)
        assert not joints[outside, 2].any()


def _part_map(root: Path, record: dict) -> np.ndarray:
    labels = cv2.imread(str(root / record["part_map"]), cv2.IMREAD_UNCHANGED)
    assert labels is not None and labels.dtype == np.uint8 and labels.ndim == 2
    return labels


def test_body_part_vocabulary_and_the_persons_right_and_left() -> None:
    # the renderer's copy of the vocabulary (it does not import torch) is reid_core's
    assert BODY_PART_NAMES == BODY_PARTS
    assert all(_BODY_PART_LUT[label] > 0 for label in Fine)  # every drawn pixel is a body part
    app = appearance(3, 1, 1)
    for view, right_on_image_left in ((0.0, True), (180.0, False)):
        sprite = render_figure(app, 120.0, view, 0.4, gait=0.0, lighting=Lighting())
        assert sprite.body_parts.shape == sprite.labels.shape
        assert np.array_equal(sprite.body_parts > 0, sprite.labels > 0)
        xs = {
            side: np.nonzero(
                np.isin(
                    sprite.body_parts,
                    [
                        BODY_PART_INDEX[f"{side}_{p}"]
                        for p in (
                            "upper_arm",
                            "lower_arm",
                            "hand",
                            "upper_leg",
                            "lower_leg",
                            "foot",
                        )
                    ],
                )
            )[1].mean()
            for side in ("right", "left")
        }
        # facing the camera, the person's right shows on the image's left; from behind, right
        assert (xs["right"] < xs["left"]) == right_on_image_left, (view, xs)
        joints = dict(zip(JOINT_NAMES, sprite.joints.tolist(), strict=True))
        for joint in ("shoulder", "wrist", "hip", "ankle"):
            right, left = joints[f"right_{joint}"][0], joints[f"left_{joint}"][0]
            assert (right < left) == right_on_image_left, (view, joint)


def test_part_map_follows_the_persons_paste_exactly() -> None:
    sprite = render_figure(appearance(3, 1, 2), 90.0, 30.0, 1.0)
    h, w = sprite.labels.shape
    comp = Compositor(np.zeros((h + 10, w + 6, 3), np.uint8))
    # the person hangs off the top-left corner; a post stands in front of part of it
    placed = comp.place(1, sprite, sprite.anchor[0] - 5, sprite.anchor[1] - 7, 10.0)
    assert (placed.x0, placed.y0) == (-5, -7)
    post = draw_object("pillar", 8, h + 10, 0)
    comp.paste(2, "object", post.image, post.mask, w // 2, 0, 5.0)
    visibility = comp.measure(placed)
    part_map = placed.part_map(visibility.visible_mask)
    assert part_map.shape == comp.shape and part_map.dtype == np.uint8
    assert np.array_equal(part_map > 0, visibility.visible_mask)
    assert np.array_equal(part_map > 0, comp.owner == 1)
    ys, xs = np.nonzero(part_map)
    assert np.array_equal(part_map[ys, xs], sprite.body_parts[ys + 7, xs + 5])
    assert np.array_equal(comp.image[ys, xs], sprite.image[ys + 7, xs + 5])
    assert 0 < len(ys) < np.count_nonzero(sprite.body_parts)


def test_part_maps_are_the_visible_pixels_written_losslessly(reid_set: Path) -> None:
    records = {r["path"]: r for r in _manifest(reid_set)}
    meta = json.loads((reid_set / "meta.json").read_text())
    assert meta["body_part_names"] == list(BODY_PARTS)
    maps = sorted(p.relative_to(reid_set).as_posix() for p in (reid_set / "part_maps").rglob("*.*"))
    assert maps == sorted(r["part_map"] for r in records.values())
    assert {p.name for p in (reid_set / "part_maps").iterdir()} == set(SPLIT_DIRS.values())
    for path, record in records.items():
        folder, name = path.split("/")
        assert record["part_map"] == f"part_maps/{folder}/{name[:-4]}.png"
        labels = _part_map(reid_set, record)
        assert labels.shape == (REID.size[1], REID.size[0])
        assert labels.max() < len(BODY_PARTS)
        assert (np.count_nonzero(labels) == 0) == (record["occlusion"] == 1.0)
    specs = plan_crops(REID)
    world = CropWorld(REID.seed, REID.size)
    occluded = [s for s in specs if records[s.path]["occluder"] in ("object", "person")]
    border = [s for s in specs if records[s.path]["occluder"] == "border"]
    holistic = [s for s in specs if records[s.path]["occlusion"] == 0]
    for spec in occluded[:6] + border[:2] + holistic[:2]:
        render = render_crop(spec, world)
        assert (
            encode_part_map(render.part_map)
            == (reid_set / records[spec.path]["part_map"]).read_bytes()
        )
        vis = render.visibility
        # labelled exactly where the person shows: hidden body pixels (and occluders) are 0
        assert np.array_equal(render.part_map > 0, vis.visible_mask)
        shown = np.count_nonzero(render.part_map)
        assert shown == pytest.approx(
            vis.own_pixels * (1.0 - records[spec.path]["occlusion"]), abs=1
        )
        if records[spec.path]["occlusion"] > 0:
            assert shown < vis.own_pixels
        else:
            assert shown == vis.own_pixels


_JOINT_PARTS = {  # body parts a joint's neighbourhood must show ({side} = the joint's side)
    "head": ("head", "neck"),
    "neck": ("neck", "head", "torso"),
    "shoulder": ("torso", "{side}_upper_arm"),
    "elbow": ("{side}_upper_arm", "{side}_lower_arm"),
    # a handbag is held in the hand, a shoulder bag hangs at the hip
    "wrist": ("{side}_lower_arm", "{side}_hand", "carried"),
    "hip": ("torso", "{side}_upper_leg", "carried"),
    "knee": ("{side}_upper_leg", "{side}_lower_leg"),
    "ankle": ("{side}_lower_leg", "{side}_foot"),
}


def test_part_maps_agree_with_the_joints(reid_set: Path) -> None:
    """Every visible joint's 7×7 neighbourhood shows the body part the joint belongs to.

    A joint's visible flag says nothing nearer *in another layer* covers it: it does not count
    self-occlusion. Joints of the body's far side (away from the camera) hide behind the torso
    and the near limbs wherever they cross (measured on 385 crops: far elbows 70-90 %, far
    knees and ankles 85-95 %), so only the near side's joints and the centre line are held to
    it; a swap of right and left would fail them at once.
    """
    records = {r["path"]: r for r in _manifest(reid_set)}
    radius = 3
    agree: dict[str, list[bool]] = {name: [] for name in JOINT_NAMES}
    for spec in plan_crops(REID):
        record = records[spec.path]
        labels = _part_map(reid_set, record)
        near = "right" if np.sin(np.radians(spec.view_angle)) > 0 else "left"
        for name, (x, y, visible) in zip(JOINT_NAMES, record["joints"], strict=True):
            side, _, kind = name.rpartition("_") if "_" in name else ("", "", name)
            if not visible or side not in ("", near):
                continue
            xi, yi = round(x), round(y)
            window = labels[
                max(0, yi - radius) : yi + radius + 1, max(0, xi - radius) : xi + radius + 1
            ]
            expected = [BODY_PART_INDEX[p.format(side=side)] for p in _JOINT_PARTS[kind]]
            agree[name].append(bool(np.isin(window, expected).any()))
    for name, hits in agree.items():
        assert len(hits) >= 8, (name, len(hits))
        assert np.mean(hits) >= 0.9, (name, f"{sum(hits)}/{len(hits)}")


def test_gt_boxes_enclose_every_visible_pixel(videos: Path) -> None:
    layout, street = build_world(VIDEO)
    rows: dict[tuple[int, int], tuple[int, int, int, int, float]] = {}
    for line in (videos / "cam1" / "gt" / "gt.txt").read_text().splitlines():
        frame, pid, x, y, w, h, conf, cls, vis = line.split(",")
        assert (conf, cls) == ("1", "1")
        rows[int(frame), int(pid)] = (int(x), int(y), int(w), int(h), float(vis))
    renderer = CameraRenderer(VIDEO, layout, street, 0)
    people_seen = 0
    for frame in (0, VIDEO.frames // 2, VIDEO.frames - 1):
        result = renderer.render(frame)
        for pid, visibility in result.people.items():
            x, y, w, h, vis = rows[frame + 1, pid]
            ys, xs = np.nonzero(visibility.visible_mask)
            # MOT boxes are 1-based: column c lies in [x - 1, x - 1 + w)
            assert xs.min() >= x - 1 and xs.max() < x - 1 + w
            assert ys.min() >= y - 1 and ys.max() < y - 1 + h
            assert vis == pytest.approx(1.0 - visibility.occlusion, abs=1e-4)
            people_seen += 1
        expected = {pid for (f, pid) in rows if f == frame + 1}
        assert set(result.people) == expected
    assert people_seen >= 2


def test_video_files_and_every_person_in_two_cameras(videos: Path) -> None:
    meta = json.loads((videos / "meta.json").read_text())
    for pid in ("1", "2", "3"):
        assert len(meta["people"][pid]["visits"]) >= 2, meta["people"][pid]
    cams = (videos / "cams.yaml").read_text()
    assert cams.startswith("# written by `trainer synth video`")
    for k in (1, 2):
        folder = videos / f"cam{k}"
        info = (folder / "seqinfo.ini").read_text()
        assert f"seqLength={VIDEO.frames}" in info and "imWidth=320" in info
        capture = cv2.VideoCapture(str(folder / "video.mp4"))
        frames = 0
        while capture.read()[0]:
            frames += 1
        assert frames == VIDEO.frames
        gt = (folder / "gt" / "gt.txt").read_text().splitlines()
        joints = (folder / "gt" / "joints.jsonl").read_text().splitlines()
        assert len(gt) == len(joints) > 0
        first = json.loads(joints[0])
        assert [first["frame"], first["id"]] == [int(v) for v in gt[0].split(",")[:2]]
        assert len(first["joints"]) == len(JOINT_NAMES)


def test_cli_renders_both_products_and_names_bad_input(tmp_path: Path, capsys) -> None:
    parser = build_parser("trainer", "test", ["trainer.synth.cli"])
    reid_out = tmp_path / "reid"
    code = run(
        parser,
        [
            "synth",
            "reid",
            "--out",
            str(reid_out),
            "--identities",
            "4",
            "--cameras",
            "2",
            "--seed",
            "1",
            "--workers",
            "1",
            "--quiet",
            "--images-per-camera",
            "2-3",
            "--preview",
        ],
    )
    assert code == 0
    sheet = cv2.imread(str(reid_out / "preview.png"))
    assert sheet is not None and sheet.shape[0] == 2 * REID.size[1]  # two test identities
    assert json.loads((reid_out / "meta.json").read_text())["args"]["identities"] == 4
    video_out = tmp_path / "video"
    code = run(
        parser,
        [
            "synth",
            "video",
            "--out",
            str(video_out),
            "--cameras",
            "2",
            "--people",
            "2",
            "--seconds",
            "2",
            "--seed",
            "1",
            "--size",
            "160x96",
            "--workers",
            "1",
            "--quiet",
            "--preview",
            "--write-frames",
        ],
    )
    assert code == 0
    assert cv2.imread(str(video_out / "preview.png")).shape == (96, 320, 3)
    assert len(list((video_out / "cam2" / "img1").glob("*.jpg"))) == 20
    assert (
        run(
            parser,
            ["synth", "reid", "--out", str(tmp_path / "x"), "--identities", "4", "--cameras", "1"],
        )
        == 2
    )
    assert "cameras must be in 2..9" in capsys.readouterr().err
    assert (
        run(
            parser, ["synth", "reid", "--out", str(reid_out), "--identities", "4", "--cameras", "2"]
        )
        == 2
    )
    assert "not empty" in capsys.readouterr().err


def test_a_shifted_site_keeps_its_street_and_changes_what_was_asked() -> None:
    """`trainer synth video --look-strength / --photo-textures / --people-seed`: strength 1 is
    the training world itself; other people walk the same street past the same cameras."""
    from trainer.synth.video import world_layout

    base = VideoConfig(cameras=3, people=4, seconds=2, seed=5)
    plain = world_layout(base)
    assert world_layout(VideoConfig(**{**base.__dict__, "look_strength": 1.0})) == plain
    stronger = world_layout(VideoConfig(**{**base.__dict__, "look_strength": 2.0}))
    for camera, shifted in zip(plain.cameras, stronger.cameras, strict=True):
        assert shifted.pinhole == camera.pinhole
        assert abs(shifted.look.gain - 1) == pytest.approx(2 * abs(camera.look.gain - 1))
        assert abs(shifted.look.white_balance[0] - 1) == pytest.approx(
            2 * abs(camera.look.white_balance[0] - 1)
        )
    others = world_layout(VideoConfig(**{**base.__dict__, "people_seed": 9}))
    assert others.cameras == plain.cameras and others.objects == plain.objects
    assert [w.appearance for w in others.walkers] != [w.appearance for w in plain.walkers]
    textured = world_layout(VideoConfig(**{**base.__dict__, "photo_textures": 1.0}))
    assert textured.cameras == plain.cameras
    assert [w.appearance for w in textured.walkers] != [w.appearance for w in plain.walkers]
    with pytest.raises(ValueError, match="look_strength"):
        VideoConfig(**{**base.__dict__, "look_strength": 5.0})
