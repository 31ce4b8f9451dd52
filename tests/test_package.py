"""The package's shape: import boundaries, entry points and the ReIDFeatures contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reid_core import ReIDFeatures


def test_reid_core_imports_neither_trainer_nor_stream() -> None:
    code = (
        "import sys, reid_core, reid_core.cli; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('trainer', 'stream')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("entry_point", ["trainer", "stream"])
def test_entry_points_explain_themselves(entry_point: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", entry_point, "--help"], check=True, capture_output=True, text=True
    ).stdout
    assert f"usage: {entry_point}" in out
    assert "COMMAND" in out


def _features(batch: int, parts: int = 3, dim: int = 8) -> ReIDFeatures:
    g = torch.Generator().manual_seed(batch)
    return ReIDFeatures(
        global_features=torch.randn(batch, dim, generator=g),
        part_features=torch.randn(batch, parts, dim, generator=g),
        visibility=torch.rand(batch, parts, generator=g),
        keypoints=torch.rand(batch, parts, 2, generator=g) * 2 - 1,
        jacobians=torch.eye(2).expand(batch, parts, 2, 2).clone(),
        segmentation=torch.softmax(torch.randn(batch, parts + 1, 4, 2, generator=g), dim=1),
    )


def test_features_index_and_concatenate_every_field_together() -> None:
    a, b = _features(4), _features(2)
    both = ReIDFeatures.cat([a, b])
    assert len(both) == 6 and both.num_parts == 3 and both.dim == 8
    picked = both[[5, 0]]
    assert torch.equal(picked.global_features[0], b.global_features[1])
    assert torch.equal(picked.segmentation[1], a.segmentation[0])
    assert torch.equal(both[-1].keypoints, b.keypoints[1:])
    assert len(both[1:3]) == 2 and len(both[2]) == 1


def test_features_reject_inconsistent_shapes() -> None:
    good = _features(2).as_dict()
    with pytest.raises(ValueError, match="visibility"):
        ReIDFeatures(**{**good, "visibility": torch.rand(2, 4)})
    with pytest.raises(ValueError, match="batch"):
        ReIDFeatures(**{**good, "keypoints": torch.rand(3, 3, 2)})
    with pytest.raises(ValueError, match="segmentation"):
        ReIDFeatures(**{**good, "segmentation": torch.rand(2, 3, 4, 2)})


def test_a_camera_stage_process_does_not_import_torch() -> None:
    """Camera processes read configs through reid_core.config: that must stay light (torch
    cost each camera process ~700 MB and 2.5 s before reid_core's names loaded lazily)."""
    probe = "import sys, stream.camera, stream.config; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_the_readme_python_block_runs_as_written() -> None:
    """The README's Python example, executed as a user would paste it."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the documented snippet
    features, dist = namespace["features"], namespace["dist"]
    assert features.global_features.shape[0] == 2 and dist.shape == (2, 2)
    assert float(dist[0, 0]) < float(dist[0, 1])


def test_every_command_the_readme_shows_answers_help() -> None:
    """Each `trainer X` / `stream X` in the README's shell blocks exists and explains itself."""
    import contextlib
    import io
    import re

    from stream.cli import parser as stream_parser
    from trainer.cli import main as trainer_main

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    shell = "\n".join(re.findall(r"```bash\n(.*?)```", readme, flags=re.S))
    commands = sorted(set(re.findall(r"(?:^|[\s(])(trainer|stream) ([a-z][a-z-]*)", shell)))
    assert ("stream", "harvest") in commands and ("trainer", "extract") in commands
    for entry, command in commands:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
            if entry == "stream":
                stream_parser().parse_args([command, "--help"])
            else:
                trainer_main([command, "--help"])
        assert exit_.value.code == 0, (entry, command)
        assert f"usage: {entry} {command}" in out.getvalue()
