"""bench/real_probe.py: the probe-set cut (frames, rows, split), the HSV baseline, the scoring,
and one whole run on a tiny fake MOTChallenge sequence; the real TUD-Campus clip when present."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from trainer.evaluation import real_probe as probe_lib

ROOT = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location("real_probe", ROOT / "bench" / "real_probe.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("real_probe", module)
    spec.loader.exec_module(module)
    return module


real_probe = _load_bench()

SIZE = (240, 320)  # (height, width) of the fake frames
FRAMES = 21  # MOT frames 1..21; every 5th: 1, 6, 11, 16, 21
RED, GREEN, BLUE, YELLOW = (230, 20, 20), (20, 200, 20), (20, 20, 230), (230, 220, 20)
# pid → (top colour, bottom colour): 1 and 2 share colours in swapped stripes
PEOPLE = {1: (RED, BLUE), 2: (BLUE, RED), 3: (GREEN, YELLOW)}


def _person_box(pid: int, frame: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) in 0-based pixels: each person walks right by 2 px a frame."""
    return 10 + 90 * (pid - 1) + 2 * (frame - 1) // 5, 40, 30, 80


def _fake_sequence(folder: Path) -> Path:
    """A MOT15-layout sequence: three 80-px people in every frame, a 40-px one (too short), one
    in frame 3 only (not a sampled frame), a conf-0 row, one seen in a single sampled frame,
    and one box hanging over the left edge (clipped: 80 px tall, 20 px wide)."""
    (folder / "img1").mkdir(parents=True)
    (folder / "gt").mkdir()
    (folder / "seqinfo.ini").write_text(
        "[Sequence]\nname=Fake\nimDir=img1\nframeRate=25\n"
        f"seqLength={FRAMES}\nimWidth={SIZE[1]}\nimHeight={SIZE[0]}\nimExt=.jpg\n"
    )
    rows = []
    for frame in range(1, FRAMES + 1):
        image = np.full((*SIZE, 3), 128, np.uint8)  # RGB
        for pid, (top, bottom) in PEOPLE.items():
            x, y, w, h = _person_box(pid, frame)
            image[y : y + h // 2, x : x + w] = top
            image[y + h // 2 : y + h, x : x + w] = bottom
            rows.append(f"{frame},{pid},{x + 1},{y + 1},{w},{h},1,-1,-1,-1")
        rows.append(f"{frame},4,280,150,20,40,1,-1,-1,-1")  # 40 px: too short
        rows.append(f"{frame},5,200,140,30,90,0,-1,-1,-1")  # conf 0: not scored
        rows.append(f"{frame},6,-9,140,30,80,1,-1,-1,-1")  # clipped to x 0..20, kept
        if frame == 3:
            rows.append(f"{frame},7,200,140,30,90,1,-1,-1,-1")  # never a sampled frame
        if frame == 11:
            rows.append(f"{frame},8,200,140,30,90,1,-1,-1,-1")  # one kept frame only
        cv2.imwrite(str(folder / "img1" / f"{frame:06d}.jpg"), image[:, :, ::-1])
    (folder / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def fake_sequence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fake_sequence(tmp_path_factory.mktemp("real_probe") / "Fake")


def test_split_track_first_and_last_40_percent() -> None:
    assert probe_lib.split_track(1).tolist() == [0]
    assert probe_lib.split_track(2).tolist() == [1, 2]
    assert probe_lib.split_track(3).tolist() == [1, 0, 2]
    assert probe_lib.split_track(5).tolist() == [1, 1, 0, 2, 2]
    assert probe_lib.split_track(10).tolist() == [1] * 4 + [0] * 2 + [2] * 4


def test_cut_probe_set_frames_rows_and_split(fake_sequence: Path) -> None:
    crops, pids, camids, frames = probe_lib.cut_probe_set(fake_sequence, every=5, min_height=64)
    assert set(frames.tolist()) <= {1, 6, 11, 16, 21}
    assert sorted(set(pids.tolist())) == [1, 2, 3, 6]  # 4 short, 5 conf 0, 7 and 8 too few
    for pid in (1, 2, 3, 6):
        mine = pids == pid
        assert frames[mine & (camids == 1)].tolist() == [1, 6]  # first 40 %: queries
        assert frames[mine & (camids == 2)].tolist() == [16, 21]  # last 40 %: gallery
    assert list(camids) == sorted(camids)  # queries first
    assert all(crop.shape == (80, 30, 3) for crop, pid in zip(crops, pids, strict=True) if pid != 6)
    assert all(crop.shape == (80, 20, 3) for crop, pid in zip(crops, pids, strict=True) if pid == 6)
    first = crops[int(np.flatnonzero(pids == 1)[0])]  # RGB: red on top, blue below
    assert np.abs(first[20, 15].astype(int) - RED).max() < 40
    assert np.abs(first[60, 15].astype(int) - BLUE).max() < 40
    _, pids_low, _, _ = probe_lib.cut_probe_set(fake_sequence, every=5, min_height=30)
    assert 4 in pids_low.tolist()


def test_hsv_baseline_ranks_the_right_person_first(fake_sequence: Path) -> None:
    crops, pids, camids, _ = probe_lib.cut_probe_set(fake_sequence)
    keep = pids != 6  # a grey sliver of the border person would only add noise
    crops = [c for c, k in zip(crops, keep, strict=True) if k]
    pids, camids = pids[keep], camids[keep]
    features = probe_lib.hsv_stripe_features(crops)
    assert features.shape == (len(crops), 6, 128)
    np.testing.assert_allclose(features.sum(-1), 1.0, atol=1e-5)
    query = camids == 1
    distance = probe_lib.hsv_stripe_distance(features[query], features[~query])
    assert distance.min() >= 0 and distance.max() <= 1
    assert (pids[~query][distance.argmin(1)] == pids[query]).all()  # 1 and 2: stripes matter
    metrics = probe_lib.score(distance, pids[query], pids[~query], camids[query], camids[~query])
    assert metrics["rank1"] == 1.0 and metrics["mAP"] == 1.0


def test_missing_sequence_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gt/gt.txt") as error:
        probe_lib.cut_probe_set(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(error.value)


def test_mobilenet_features_are_unit_vectors(fake_sequence: Path) -> None:
    crops = probe_lib.cut_probe_set(fake_sequence).crops[:4]
    features = probe_lib.mobilenet_features(crops)
    assert features.shape == (4, 1280)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)


def test_whole_run_with_a_checkpoint(
    fake_sequence: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reid_core

    checkpoint = reid_core.save(
        reid_core.build_model(
            {"_base_": str(ROOT / "configs/model/demo_cpu.yaml"), "backbone": {"weights": "random"}}
        ),
        tmp_path / "run" / "tiny.safetensors",
    )
    out = tmp_path / "out"
    argv = ["real_probe.py", "--data", str(fake_sequence), "--checkpoint", str(checkpoint)]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(out)])
    assert real_probe.main() == 0
    results = json.loads((out / "results.json").read_text())
    assert results["counts"] == {"identities": 4, "queries": 8, "gallery": 8, "frames": 4}
    methods = [row["method"] for row in results["rows"]]
    assert methods[2:] == ["run/tiny (global)", "run/tiny (occlusion-aware)"]  # folder/stem
    assert results["rows"][0]["rank1"] >= 0.75  # HSV stripes
    health = results["rows"][2]["part_health"]  # demo_cpu: K = 6 parts
    assert 0 < health["largest_part_share"] <= 1 and 0 <= health["background_fraction"] <= 1
    assert 0 <= health["spatial_entropy_mean"] <= 1
    assert results["rows"][0].get("part_health") is None
    assert set(results["target"]) >= {"map_margin_points", "occlusion_aware_not_worse"}
    assert results["ranked_lists"]["row"] in methods[2:]
    assert (out / "ranked_lists.png").is_file() and len(list((out / "crops").glob("*.jpg"))) == 16
    assert "run/tiny (occlusion-aware)" in (out / "table.md").read_text()


def test_real_tud_campus_counts_are_plausible() -> None:
    data = probe_lib.DEFAULT_DATA  # ../shared/data/mot15-TUD-Campus next to the repository
    if not (data / "gt" / "gt.txt").is_file():
        pytest.skip(f"shared real footage not present at {data}")
    crops, pids, camids, frames = probe_lib.cut_probe_set(data)
    assert 5 <= len(set(pids.tolist())) <= 8  # 8 people in the clip
    assert (camids == 1).sum() == (camids == 2).sum() >= 20  # symmetric 40 / 40 split
    assert ((frames - 1) % 5 == 0).all() and frames.max() <= 71
    assert all(crop.shape[0] >= 64 and crop.shape[2] == 3 for crop in crops)
    for pid in set(pids.tolist()):  # every person has a query and a gallery entry
        assert {1, 2} == set(camids[pids == pid].tolist())
        assert (
            frames[(pids == pid) & (camids == 1)].max()
            < frames[(pids == pid) & (camids == 2)].min()
        )
