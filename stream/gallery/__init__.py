"""The Qdrant identity gallery: one interface (`Gallery`), two backends (SPEC §4).

- embedded default: a Qdrant Edge shard in a folder (`GalleryConfig(path=...)`);
- server: a Qdrant server through qdrant-client (`GalleryConfig(url=..., api_key=...)`).

The point layout is documented in `stream.gallery.records`, the backend line in
`stream.gallery.backend`, matching in `stream.gallery.gallery`.
"""

from stream.gallery.backend import GalleryError
from stream.gallery.config import GalleryConfig
from stream.gallery.gallery import Gallery
from stream.gallery.manifest import GalleryManifest, read_manifest, write_manifest
from stream.gallery.records import Appearance, GalleryHit, Match, Tracklet, TrackletRecord

__all__ = [
    "Appearance",
    "Gallery",
    "GalleryConfig",
    "GalleryError",
    "GalleryHit",
    "GalleryManifest",
    "Match",
    "Tracklet",
    "TrackletRecord",
    "read_manifest",
    "write_manifest",
]
