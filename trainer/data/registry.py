"""Data sets by the names of SPEC §8 (``trainer eval --dataset NAME``, training configs)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer.data.base import ReIDDataset
from trainer.data.folder import load_folder
from trainer.data.market import load_dukemtmcreid, load_market1501, load_occluded_duke
from trainer.data.msmt17 import load_msmt17
from trainer.data.partial import load_occluded_reid, load_partial_ilids, load_partial_reid
from trainer.data.synthetic import load_synthetic

DATASET_LOADERS: dict[str, Callable[..., ReIDDataset]] = {
    "market1501": load_market1501,
    "dukemtmcreid": load_dukemtmcreid,
    "msmt17": load_msmt17,
    "occluded_duke": load_occluded_duke,
    "occluded_reid": load_occluded_reid,
    "partial_reid": load_partial_reid,
    "partial_ilids": load_partial_ilids,
    "synthetic": load_synthetic,
    "folder": load_folder,
}
DATASET_NAMES = tuple(DATASET_LOADERS)


def dataset_options(name: str) -> tuple[str, ...]:
    """The keyword options a data set accepts besides its root (e.g. msmt17: include_val)."""
    parameters = inspect.signature(_loader(name)).parameters
    return tuple(p for p in parameters if p != "root")


def build_dataset(name: str, root: Path | str, **options: Any) -> ReIDDataset:
    """Load data set ``name`` from ``root``; unknown names and options are named in the error."""
    loader = _loader(name)
    unknown = sorted(set(options) - set(dataset_options(name)))
    if unknown:
        valid = ", ".join(dataset_options(name)) or "none"
        raise ValueError(f"data set {name!r} has no option {', '.join(unknown)} (options: {valid})")
    return loader(root, **options)


def _loader(name: str) -> Callable[..., ReIDDataset]:
    if name not in DATASET_LOADERS:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    return DATASET_LOADERS[name]
