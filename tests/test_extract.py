"""`trainer extract`: features of a folder of crops, row for row, as the embedder gives them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_model import tiny_model_config

from reid_core import build_model, save
from reid_core.runtime import EmbedderConfig
from trainer.cli import main as trainer_main


def test_extract_writes_the_embedders_features_in_file_order(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    torch.manual_seed(0)
    model = save(build_model(tiny_model_config(input_size=[64, 32])), tmp_path / "m.safetensors")
    folder = tmp_path / "crops"
    folder.mkdir()
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (96 + 8 * i, 40, 3), dtype=np.uint8) for i in range(5)]
    for i, crop in enumerate(crops):
        cv2.imwrite(str(folder / f"p{i}.png"), crop)
    extra = tmp_path / "extra.png"
    cv2.imwrite(str(extra), crops[0])
    out = tmp_path / "f.npz"
    argv = [
        "extract",
        "--images",
        str(folder),
        str(extra),
        "--model",
        str(model),
        "--out",
        str(out),
    ]
    assert trainer_main([*argv, "--batch-size", "2"]) == 0
    assert "5 crops" not in capsys.readouterr().out  # six: the folder's five and the file
    saved = np.load(out)
    assert [Path(p).name for p in saved["paths"]] == [*(f"p{i}.png" for i in range(5)), "extra.png"]
    expected = EmbedderConfig(runtime="torch", model=model).open().embed([*crops, crops[0]])
    np.testing.assert_allclose(saved["global"], expected.global_features.numpy(), atol=1e-5)
    np.testing.assert_allclose(saved["parts"], expected.part_features.numpy(), atol=1e-5)
    assert saved["visibility"].shape == (6, expected.num_parts)
    np.testing.assert_allclose(saved["global"][0], saved["global"][5], atol=1e-6)
    assert trainer_main(["extract", "--images", str(folder), "--out", str(tmp_path / "f.txt")]) == 2
    # the same features as parquet: one row per image, read back with pyarrow
    import pyarrow.parquet as pq

    table_path = tmp_path / "f.parquet"
    assert trainer_main([*argv[:-1], str(table_path)]) == 0
    table = pq.read_table(table_path)
    assert table.column_names == ["path", "global", "parts", "visibility"]
    assert table.schema.metadata[b"num_parts"] == str(expected.num_parts).encode()
    assert table.column("path").to_pylist() == saved["paths"].tolist()
    np.testing.assert_allclose(
        np.array(table.column("global").to_pylist()), saved["global"], atol=1e-6
    )
    np.testing.assert_allclose(
        np.array(table.column("parts").to_pylist()), saved["parts"], atol=1e-6
    )
