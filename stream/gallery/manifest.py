"""Which model built an embedded gallery: a small JSON file beside the shard.

A gallery's vectors are only comparable with the model that made them, so the worker records
the embedder (runtime + model file) and the gallery settings in `<path>/occlureid.json`, and
`stream search` embeds its query with the same model.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from reid_core.runtime.embedder import EmbedderConfig
from stream.gallery.backend import GalleryError
from stream.gallery.config import GalleryConfig

MANIFEST_NAME = "occlureid.json"


class GalleryManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gallery: GalleryConfig
    embedder: EmbedderConfig


def write_manifest(folder: Path, gallery: GalleryConfig, embedder: EmbedderConfig) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST_NAME
    manifest = GalleryManifest(gallery=gallery, embedder=embedder)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(manifest.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
    return path


def read_manifest(folder: Path) -> GalleryManifest | None:
    """The manifest in ``folder``, None when there is none; a broken one is a clear error."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return GalleryManifest.model_validate_json(path.read_text())
    except ValidationError as error:
        raise GalleryError(f"{path}: not a valid gallery manifest: {error}") from None
