"""Shipped models: the files under ``models/``, each with a card, found by name, checked by digest.

A shipped model is ``models/<name>.safetensors`` (fp16, no classifier heads:
`reid_core.checkpoint.save_for_inference`) beside ``models/<name>.json``, its card: the recipe
and data it was trained on, steps and wall time, the figures measured on it, the gallery
threshold calibrated for it, its licence and the file's SHA-256. ``models/<name>.md`` is the
same card for people. Every default that needs a model (`stream run`, `stream search`,
`stream demo`) takes `DEFAULT_MODEL` from here; ``OCCLUREID_MODELS`` points at another folder.
Nothing is downloaded: a missing or altered file is an error that says so.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MODELS_ENV = "OCCLUREID_MODELS"
DEFAULT_MODEL = "occlureid-mnv2-synth"


def models_dir() -> Path:
    """``$OCCLUREID_MODELS``, else the repository's ``models/`` folder."""
    override = os.environ.get(MODELS_ENV)
    return Path(override) if override else Path(__file__).resolve().parents[1] / "models"


class ModelCard(BaseModel):
    """The machine-readable card of a shipped model (``models/<name>.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    file: str = Field(description="the weights, relative to the card's folder")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    licence: str
    recipe: str = Field(description="the training config that produced it")
    data: dict[str, Any] = Field(description="the rendered set: identities, cameras, seed, world")
    steps: int = Field(ge=0)
    wall_time_s: float = Field(ge=0.0)
    threshold: float = Field(gt=0.0, description="the gallery's calibrated accept threshold")
    threshold_source: str
    figures: dict[str, Any] = Field(description="benchmarks measured on this file")
    created: str


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def available_models() -> list[str]:
    folder = models_dir()
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def read_card(name: str = DEFAULT_MODEL) -> ModelCard:
    """The card of shipped model ``name``; an unknown name lists the shipped ones."""
    path = models_dir() / f"{name}.json"
    if not path.is_file():
        shipped = ", ".join(available_models()) or "none"
        raise FileNotFoundError(
            f"no shipped model {name!r}: {path} does not exist (shipped: {shipped}; "
            f"{MODELS_ENV} selects another folder)"
        )
    try:
        return ModelCard.model_validate(json.loads(path.read_text()))
    except (ValueError, ValidationError) as error:
        raise ValueError(f"{path}: not a valid model card: {error}") from None


def carded_file(card_path: Path, file: str, sha256: str | None) -> Path:
    """The file a card names (relative to the card), present and, unless ``sha256`` is None,
    with that SHA-256: a shipped file altered or replaced without its card is refused."""
    path = card_path.parent / file
    if not path.is_file():
        raise FileNotFoundError(f"card {card_path.name} names {path}, which does not exist")
    if sha256 is not None and (digest := file_sha256(path)) != sha256:
        raise ValueError(
            f"{path}: SHA-256 {digest} does not match its card ({sha256}); the file was "
            "altered or replaced without its card"
        )
    return path


def shipped_model_path(name: str = DEFAULT_MODEL, verify: bool = True) -> Path:
    """The weights of shipped model ``name``, checked against its card's SHA-256."""
    card = read_card(name)
    return carded_file(models_dir() / f"{name}.json", card.file, card.sha256 if verify else None)


def cache_dir() -> Path:
    """Where files derived from shipped models go (``$XDG_CACHE_HOME/occlureid``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "occlureid"


def shipped_onnx_path(name: str = DEFAULT_MODEL) -> Path:
    """The shipped model as ONNX for the onnxruntime runtime: exported once from the checked
    weights into the cache, under a name that carries their digest (a replaced model is
    exported anew). The weights are checked on every call, cached export or not."""
    from reid_core.checkpoint import load
    from reid_core.runtime.export import export_onnx

    weights = shipped_model_path(name)
    path = cache_dir() / f"{name}-{read_card(name).sha256[:16]}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.onnx")
        export_onnx(load(weights), partial)
        partial.replace(path)  # concurrent workers each write their own, the last one wins
    return path


def load_shipped(name: str = DEFAULT_MODEL, map_location: str = "cpu"):
    """The shipped model, loaded (eval mode) after its digest check."""
    from reid_core.checkpoint import load

    return load(shipped_model_path(name), map_location)
