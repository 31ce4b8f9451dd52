"""Records, the three-split data set object and the folder checks every loader shares (SPEC §3).

Conventions, the same for every data set family:
- camera ids are 0-based (file name ``c1`` → camid 0; test-only sets: query 0, gallery 1);
- identity −1 is junk (dropped from train, kept in the gallery so evaluation ignores it) and
  identity 0 marks distractors (gallery only), as in Market-1501;
- train identities are relabelled 0..N−1 (sorted by their id on disk) for the classifier, once,
  in `ReIDDataset`, so no loader can get it wrong; query and gallery keep the ids on disk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
JUNK_PID = -1


class DatasetLayoutError(ValueError):
    """A data set folder does not have the published layout (message names folder and file)."""


@dataclass(frozen=True)
class ImageRecord:
    """One image: where it is, who it shows, which camera took it, and what else is known.

    ``extras`` carries per-image knowledge a data set may have beyond (pid, camid), e.g. the
    synthetic manifest's ``joints`` [[x, y, visible] × J] in crop pixels and ``occlusion``.
    """

    path: Path
    pid: int
    camid: int
    extras: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class ReIDDataset:
    """A re-ID data set as train / query / gallery record lists (SPEC §3).

    ``train`` is given with the identities found on disk; construction drops junk and relabels
    them 0..N−1 (``train_pid_labels`` maps disk id → label). ``joint_names`` names the rows of
    ``extras["joints"]`` when the data set has joints (needed to swap left/right on a flip).
    """

    name: str
    root: Path
    train: list[ImageRecord]
    query: list[ImageRecord]
    gallery: list[ImageRecord]
    joint_names: tuple[str, ...] | None = None
    train_pid_labels: dict[int, int] = field(init=False)

    def __post_init__(self) -> None:
        kept = [r for r in self.train if r.pid != JUNK_PID]
        self.train_pid_labels = {
            pid: label for label, pid in enumerate(sorted({r.pid for r in kept}))
        }
        self.train = [
            ImageRecord(r.path, self.train_pid_labels[r.pid], r.camid, r.extras) for r in kept
        ]

    @property
    def num_train_pids(self) -> int:
        return len(self.train_pid_labels)

    @property
    def num_train_cams(self) -> int:
        return len({r.camid for r in self.train})

    def splits(self) -> dict[str, list[ImageRecord]]:
        return {"train": self.train, "query": self.query, "gallery": self.gallery}

    def summary(self) -> Table:
        """Rich table (subset, #ids, #images, #cameras) to print before training or evaluation."""
        table = Table(title=f"{self.name} ({self.root})")
        for column in ("subset", "# ids", "# images", "# cameras"):
            table.add_column(column, justify="left" if column == "subset" else "right")
        for subset, records in self.splits().items():
            table.add_row(
                subset,
                str(len({r.pid for r in records})),
                str(len(records)),
                str(len({r.camid for r in records})),
            )
        return table


def find_dataset_root(
    root: Path | str,
    subfolders: Sequence[str],
    layouts: Sequence[Sequence[str]],
    dataset: str,
) -> tuple[Path, int]:
    """(folder, layout index): the first of ``root`` and ``root/<subfolder>`` that holds every
    entry of one of the published ``layouts`` (alternatives, e.g. MSMT17 V1 and V2).

    Published archives unpack with or without a top folder (``Market-1501-v15.09.15/``...);
    accept both. When none fits, name what was expected and what is missing where.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetLayoutError(f"{dataset}: data set root {root} is not a folder")
    candidates = [root, *(root / sub for sub in subfolders)]
    for index, required in enumerate(layouts):
        for candidate in candidates:
            if all((candidate / entry).exists() for entry in required):
                return candidate, index
    closest = max(
        ((c, required) for required in layouts for c in candidates),
        key=lambda pair: sum((pair[0] / e).exists() for e in pair[1]) / len(pair[1]),
    )
    missing = [e for e in closest[1] if not (closest[0] / e).exists()]
    expected = " or ".join(f"[{', '.join(required)}]" for required in layouts)
    inside = ", ".join(str(root / sub) for sub in subfolders)
    raise DatasetLayoutError(
        f"{dataset}: expected {expected} in {root}"
        + (f" (or in one of {inside})" if subfolders else "")
        + f"; the closest, {closest[0]}, lacks {', '.join(missing)}"
    )


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted, so 'the first bad file' is well defined."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def match_name(path: Path, pattern: re.Pattern[str], dataset: str, example: str) -> re.Match[str]:
    """Match a file name against the data set's naming or fail naming the file and the rule."""
    match = pattern.fullmatch(path.name)
    if match is None:
        raise DatasetLayoutError(
            f"{dataset}: file name {path.name!r} in {path.parent} does not follow the naming "
            f"{pattern.pattern} (e.g. {example})"
        )
    return match


def require_images(records: Sequence[ImageRecord], folder: Path, dataset: str) -> None:
    """An empty split folder is a broken download, not an empty split."""
    if not records:
        raise DatasetLayoutError(f"{dataset}: no images found in {folder}")
