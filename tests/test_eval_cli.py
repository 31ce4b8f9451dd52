"""`trainer eval` end to end on a tiny synthetic set: the SPEC §8 output files and their keys."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_model import tiny_model_config

from reid_core import build_model, save
from reid_core.features import flip_average
from trainer.cli import main as trainer_main
from trainer.evaluation.evaluate import evaluate_model
from trainer.synth.reid_set import ReidSetConfig, write_reid_set

SMALL = {"input_size": [64, 32], "heads": {"num_parts": 3}}


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    cfg = ReidSetConfig(identities=10, cameras=2, seed=5, images_per_camera=(2, 3), size=(32, 64))
    write_reid_set(cfg, root, workers=1, show_progress=False)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save(build_model(tiny_model_config(**SMALL)).eval(), path)
    return path


def test_eval_writes_metrics_table_and_ranked_lists(
    synthetic_root: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    code = trainer_main(
        [
            "eval",
            "--checkpoint",
            str(checkpoint),
            "--dataset",
            "synthetic",
            "--root",
            str(synthetic_root),
            "--dataset",
            "market1501",  # the synthetic set is in the exact Market-1501 layout
            "--root",
            str(synthetic_root),
            "--out",
            str(out),
            "--batch-size",
            "16",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"synthetic", "market1501"}
    for entry in metrics.values():
        assert {"rank1", "rank5", "rank10", "mAP", "mINP"} <= set(entry)
        assert all(0.0 <= entry[k] <= 1.0 for k in ("rank1", "rank5", "rank10", "mAP", "mINP"))
        assert entry["rank1"] <= entry["rank5"] <= entry["rank10"]
        health = entry["part_health"]  # the model has K = 3 parts
        assert 0.0 <= health["background_fraction"] <= 1.0
        assert len(health["part_share"]) == len(health["spatial_entropy"]) == 3
    printed = capsys.readouterr().out
    assert "Synthetic: part health" in printed and "largest part's share" in printed
    assert "✓" in printed or "✗" in printed
    table = (out / "table.md").read_text()
    assert "| tiny |" in table and "Synthetic Rank-1" in table and "Market-1501 mAP" in table
    picture = cv2.imread(str(out / "ranked_lists.png"))
    assert picture is not None and picture.shape[0] > 64 and picture.shape[1] > 11 * 32

    again = tmp_path / "again"
    trainer_main(
        [
            "eval",
            "--checkpoint",
            str(checkpoint),
            "--dataset",
            "synthetic",
            "--root",
            str(synthetic_root),
            "--out",
            str(again),
            "--label",
            "second",
            "--distance",
            "global",
            "--compare",
            str(out),
        ]
    )
    rows = (again / "table.md").read_text().splitlines()
    assert rows[2].startswith("| second |") and rows[3].startswith("| eval |")


def test_flip_and_rerank_keep_metrics_in_range(synthetic_root: Path, checkpoint: Path) -> None:
    from reid_core import load

    model = load(checkpoint)
    plain = evaluate_model(model, "synthetic", synthetic_root, batch_size=16)
    flipped = evaluate_model(model, "synthetic", synthetic_root, batch_size=16, flip=True)
    reranked = evaluate_model(model, "synthetic", synthetic_root, batch_size=16, rerank=True)
    assert plain.metrics["num_valid_queries"] == flipped.metrics["num_valid_queries"] > 0
    assert not torch.equal(plain.query.global_features, flipped.query.global_features)
    assert 0.0 <= reranked.metrics["mAP"] <= 1.0
    # flip averaging keeps positions (keypoints) of the unflipped image
    assert torch.equal(flip_average(plain.query, flipped.query).keypoints, plain.query.keypoints)


def test_eval_measures_an_onnx_export_like_its_checkpoint(
    synthetic_root: Path, checkpoint: Path, tmp_path: Path
) -> None:
    """`trainer eval --checkpoint model.onnx`: what a worker serves, scored the same way."""
    from reid_core import load
    from reid_core.runtime.export import export_onnx

    onnx_path = export_onnx(load(checkpoint), tmp_path / "tiny.onnx")
    scores = {}
    for path in (checkpoint, onnx_path):
        out = tmp_path / path.suffix[1:]
        argv = ["eval", "--checkpoint", str(path), "--dataset", "synthetic"]
        assert trainer_main([*argv, "--root", str(synthetic_root), "--out", str(out)]) == 0
        scores[path.suffix] = json.loads((out / "metrics.json").read_text())["synthetic"]
    for key in ("rank1", "mAP", "mINP"):
        assert scores[".onnx"][key] == pytest.approx(scores[".safetensors"][key], abs=1e-6)
    assert scores[".onnx"]["part_health"]["background_fraction"] == pytest.approx(
        scores[".safetensors"]["part_health"]["background_fraction"], abs=1e-5
    )


def test_eval_needs_one_root_per_dataset(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="one --root per --dataset"):
        trainer_main(
            [
                "eval",
                "--checkpoint",
                str(checkpoint),
                "--dataset",
                "synthetic",
                "--dataset",
                "market1501",
                "--root",
                str(tmp_path),
            ]
        )


def _with_part_maps(source: Path, target: Path, labelled: bool) -> Path:
    """A copy of the synthetic set whose manifest names our own part maps (or none): upper
    quarter head, then torso, then legs, at twice the crop size (eval resizes them)."""
    shutil.copytree(source, target)
    rows = np.repeat(np.array([1, 3, 10, 14], np.uint8), 32)  # head, torso, legs (K = 3 groups)
    label_map = np.repeat(rows[:, None], 64, axis=1)  # 128×64
    lines = []
    for line in (target / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        entry.pop("part_map", None)
        if labelled:
            entry["part_map"] = f"test_maps/{Path(entry['path']).stem}.png"
            (target / "test_maps").mkdir(exist_ok=True)
            cv2.imwrite(str(target / entry["part_map"]), label_map)
        lines.append(json.dumps(entry))
    (target / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return target


def test_evaluate_model_reports_part_health(
    synthetic_root: Path, checkpoint: Path, tmp_path: Path
) -> None:
    from reid_core import load
    from reid_core.parts import part_group_names

    model = load(checkpoint)
    plain = _with_part_maps(synthetic_root, tmp_path / "plain", labelled=False)
    metrics = evaluate_model(model, "synthetic", plain, batch_size=16).metrics
    scalars = {
        "background_fraction",
        "largest_part_share",
        "mass_entropy",
        "spatial_entropy_mean",
        "spatial_entropy_max",
        "keypoint_spread",
        "visibility_mean",
        "confidence",
        "part_global_cosine",
        "part_part_cosine",
    }
    for name in scalars:
        assert isinstance(metrics[f"part_health/{name}"], float), name
    for name in ("part_share", "spatial_entropy", "visibility"):
        assert len(metrics[f"part_health/{name}"]) == 3
    assert "part_health/part_miou" not in metrics  # no label maps in this copy

    labelled = _with_part_maps(synthetic_root, tmp_path / "labelled", labelled=True)
    metrics = evaluate_model(model, "synthetic", labelled, batch_size=16).metrics
    assert 0.0 <= metrics["part_health/part_miou"] <= 1.0
    assert 0.0 <= metrics["part_health/part_purity"] <= 1.0
    assert 0.0 <= metrics["part_health/background_iou"] <= 1.0
    assert sorted(metrics["part_health/part_matching"]) == sorted(part_group_names(3))


def test_part_maps_that_cannot_be_read_are_named(
    synthetic_root: Path, checkpoint: Path, tmp_path: Path
) -> None:
    from reid_core import load

    root = _with_part_maps(synthetic_root, tmp_path / "broken", labelled=True)
    query = sorted((root / "occluded_query").glob("*.jpg"))[0]  # the default query split
    victim = root / "test_maps" / f"{query.stem}.png"
    victim.write_bytes(b"not a png")
    from trainer.data.image_dataset import UnreadableImageError

    with pytest.raises(UnreadableImageError, match=f"cannot decode part label map .*{victim.name}"):
        evaluate_model(load(checkpoint), "synthetic", root, batch_size=16)
