"""`DragonflyConfig`: reads the official Dragonfly `config.json` on transformers 5.x.

The official config keeps the Llama fields at the top level *and* in `text_config`, and names the vision tower
only by `image_encoder` (a hub id such as `openai/clip-vit-large-patch14-336`, or, in the golden tiny checkpoints,
the relative subfolder `image_encoder`). The official model then downloaded CLIP inside its constructor. We never
download: the two official hub ids map to built-in CLIP hyper-parameters (their weights are inside every Dragonfly
checkpoint anyway), and a subfolder is read from disk by `from_pretrained`. The resolved vision config is kept in
`vision_config`, so a saved config is self-contained.

The Dragonfly variant (v1: CLIP ViT-B/32 at 224 px with zoom-in selection; v2: CLIP ViT-L/14 at 336 px with
pooling; see `models.variants`) is recorded in the `variant` field. The official config.json files have no such
field, so for them it is inferred from the official vision encoder — only for them: a vision tower that is not
exactly an official layout raises instead of silently taking the path of a variant with the same crop size.
A saved config writes `variant`, which the official code ignores (unknown fields become plain attributes).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers import CLIPVisionConfig, LlamaConfig, PreTrainedConfig

from models.variants import VARIANTS, UnknownVariantError, Variant, infer_variant, variant_named

__all__ = ["DragonflyConfig", "OFFICIAL_VISION_ENCODERS", "register", "vision_config_for"]

#: CLIP vision hyper-parameters of the official encoders (hub id → fields), from the variant table, so that nothing
#: is downloaded.
OFFICIAL_VISION_ENCODERS: dict[str, dict[str, Any]] = {v.image_encoder: dict(v.clip) for v in VARIANTS.values()}

_TEXT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_act",
    "max_position_embeddings",
    "initializer_range",
    "rms_norm_eps",
    "use_cache",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "tie_word_embeddings",
    "rope_theta",
    "attention_dropout",
    "attention_bias",
)


def vision_config_for(image_encoder: str | os.PathLike[str], base_dir: str | os.PathLike[str] | None = None) -> CLIPVisionConfig:
    """Resolve the official `image_encoder` field to a `CLIPVisionConfig` without touching the network.

    Args:
        image_encoder: a hub id of one of the two official encoders, an absolute folder, or a folder relative to
            `base_dir` (the checkpoint folder), holding a CLIP `config.json`.
        base_dir: the checkpoint folder a relative `image_encoder` refers to.

    Raises:
        ValueError: the name is neither a known hub id nor a folder with a readable CLIP config.
    """
    name = str(image_encoder)
    if name in OFFICIAL_VISION_ENCODERS:
        return CLIPVisionConfig(**OFFICIAL_VISION_ENCODERS[name])
    candidates = [Path(name)]
    if base_dir is not None and not Path(name).is_absolute():
        candidates.insert(0, Path(base_dir) / name)
    for folder in candidates:
        cfg_file = folder / "config.json"
        if cfg_file.is_file():
            try:
                data = json.loads(cfg_file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as err:
                raise ValueError(f"{cfg_file}: unreadable vision encoder config ({err})") from err
            if data.get("model_type") == "clip":  # a full CLIP config: keep its vision part
                data = data.get("vision_config", {})
            data.pop("model_type", None)
            data.pop("architectures", None)
            return CLIPVisionConfig(**data)
    known = ", ".join(OFFICIAL_VISION_ENCODERS)
    raise ValueError(
        f"image_encoder {name!r}: not one of the official encoders ({known}) and no CLIP config.json found in "
        f"{', '.join(str(c) for c in candidates)}; nothing is downloaded"
    )


class DragonflyConfig(PreTrainedConfig):
    """Configuration of a Dragonfly(-Med) checkpoint (v1 or v2).

    Args:
        text_config (`dict` or `LlamaConfig`, *optional*): the language model. Missing keys come from `LlamaConfig`
            defaults, as in the official code; `head_dim` is derived as hidden / heads when absent. RoPE scaling is
            applied only when `text_config` asks for it (the released checkpoints do not).
        vision_config (`dict` or `CLIPVisionConfig`, *optional*): the CLIP vision tower. When absent it is resolved
            from `image_encoder` (see `vision_config_for`).
        image_encoder (`str`, *optional*): the official field naming the CLIP encoder (hub id or subfolder).
        variant (`str`, *optional*): the Dragonfly variant ("v2", "v1"); inferred for the official layouts only.
        The remaining fields are the official top-level Llama fields; they only seed `text_config` when it is absent.

    Example:
        >>> cfg = DragonflyConfig(image_encoder="openai/clip-vit-large-patch14-336")
        >>> cfg.version, cfg.tokens_per_crop
        ('v2', 577)
    """

    model_type = "dragonfly"
    sub_configs_defaults = {"text_config": LlamaConfig, "vision_config": CLIPVisionConfig}

    text_config: Any = None
    vision_config: Any = None
    image_encoder: str | None = None
    variant: str | None = None
    text_pretrained_model_name_or_path: str | None = None
    vocab_size: int = 128256
    hidden_size: int = 4096
    intermediate_size: int = 14336
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 8
    hidden_act: str = "silu"
    max_position_embeddings: int = 8192
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-5
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = 128000
    eos_token_id: Any = 128001
    tie_word_embeddings: bool = False
    rope_theta: float = 500000.0
    rope_scaling: Any = None
    attention_dropout: float = 0.0
    attention_bias: bool = False
    image_size: int = 300
    patch_size: int = 30
    num_channels: int = 3

    def __post_init__(self, **kwargs: Any) -> None:
        if self.text_config is None:
            # Official behaviour: without text_config, a Llama config is built from the top-level fields.
            self.text_config = {k: getattr(self, k) for k in _TEXT_FIELDS}
            if self.rope_scaling is not None:
                self.text_config["rope_scaling"] = self.rope_scaling
        if isinstance(self.text_config, dict):
            text = dict(self.text_config)
            model_type = text.pop("model_type", "llama")
            if model_type != "llama":
                raise ValueError(f"text_config.model_type {model_type!r}: Dragonfly uses a Llama language model")
            self.text_config = LlamaConfig(**text)
        if (self.vision_config is None and self.image_encoder is not None
                and str(self.image_encoder) in OFFICIAL_VISION_ENCODERS):
            self.vision_config = vision_config_for(self.image_encoder)
        if isinstance(self.vision_config, dict):
            vision = dict(self.vision_config)
            vision.pop("model_type", None)
            self.vision_config = CLIPVisionConfig(**vision)
        if self.vision_config is None:
            # A subfolder encoder is resolved by `from_pretrained` (it knows the folder). A config built in code with a
            # relative path is resolved against the working directory, as the official code would.
            if self.image_encoder is not None and Path(str(self.image_encoder), "config.json").is_file():
                self.vision_config = vision_config_for(self.image_encoder)
            else:
                self.vision_config = CLIPVisionConfig(**VARIANTS["v2"].clip)  # placeholder until resolved
                self._vision_unresolved = True
        # Keep the top-level hidden size equal to the language model's: the official forward reshapes with it.
        self.hidden_size = self.text_config.hidden_size
        super().__post_init__(**kwargs)
        if not getattr(self, "_vision_unresolved", False):
            self.variant = self._resolve_variant().name

    def _resolve_variant(self) -> Variant:
        """The recorded variant, checked against the vision tower; else the inferred one (official layouts only)."""
        size, patch = self.vision_config.image_size, self.vision_config.patch_size
        if self.variant is None:
            return infer_variant(self.image_encoder, size, patch)
        variant = variant_named(self.variant)
        if (variant.crop_size, variant.patch_size) != (size, patch):
            raise UnknownVariantError(
                f"variant {variant.name!r} uses {variant.crop_size} px crops with patch size {variant.patch_size}, "
                f"but the vision encoder has image_size {size}, patch_size {patch}"
            )
        return variant

    def _resolve_against(self, folder: str | os.PathLike[str]) -> None:
        """Resolve an `image_encoder` subfolder against the checkpoint `folder` (no-op when already resolved)."""
        if not getattr(self, "_vision_unresolved", False) or self.image_encoder is None:
            return
        self.vision_config = vision_config_for(self.image_encoder, base_dir=folder)
        self._vision_unresolved = False
        try:
            self.variant = self._resolve_variant().name
        except UnknownVariantError as err:
            raise UnknownVariantError(f"{folder}: {err}") from None

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any) -> DragonflyConfig:
        """Load `config.json`; an `image_encoder` subfolder is resolved against the checkpoint folder, offline."""
        config = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        cfg = config[0] if isinstance(config, tuple) else config  # tuple: return_unused_kwargs=True
        cfg._resolve_against(pretrained_model_name_or_path)
        return config

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> Any:
        """`PreTrainedConfig.from_dict`; `AutoConfig.from_pretrained(folder)` passes the folder as `name_or_path`, and
        an `image_encoder` subfolder is resolved against it (a hub id: against its snapshot in the local cache)."""
        name_or_path = kwargs.get("name_or_path")
        config = super().from_dict(config_dict, **kwargs)
        cfg = config[0] if isinstance(config, tuple) else config
        if name_or_path and getattr(cfg, "_vision_unresolved", False):
            folder = Path(str(name_or_path))
            if not folder.is_dir():
                from models.checkpoint import resolve_checkpoint  # torch-free; finds a hub id's cached snapshot

                folder = resolve_checkpoint(str(name_or_path))
            cfg._resolve_against(folder)
        return config

    @property
    def variant_spec(self) -> Variant:
        """The `models.variants.Variant` this config describes (crop grids, pooling or zoom-in, token runs)."""
        if self.variant is None:
            raise UnknownVariantError(
                f"image_encoder {self.image_encoder!r} is not resolved yet; load the config with "
                "DragonflyConfig.from_pretrained(checkpoint_folder)"
            )
        return variant_named(self.variant)

    @property
    def version(self) -> str:
        """The variant's name: 'v2' (CLIP 336 px, pooling) or 'v1' (CLIP 224 px, zoom-in selection)."""
        return self.variant_spec.name

    @property
    def patch_grid(self) -> int:
        """Patches per side of one crop in the vision tower (24 for ViT-L/14@336, 7 for ViT-B/32@224)."""
        return self.variant_spec.patch_grid

    @property
    def tokens_per_crop(self) -> int:
        """Vision tokens per crop, CLS included (577 / 50)."""
        return self.variant_spec.tokens_per_crop

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.pop("_vision_unresolved", None)
        return out


def register() -> None:
    """Let `AutoConfig` read a Dragonfly `config.json` (idempotent).

    `AutoTokenizer.from_pretrained(checkpoint)` peeks at `config.json`; without the registration it builds a
    bare config from it and warns about the unknown model type. The full front door (`AutoModelForCausalLM`,
    `AutoProcessor` too) is `models.auto.register_auto_classes()`.
    """
    from transformers import AutoConfig

    AutoConfig.register(DragonflyConfig.model_type, DragonflyConfig, exist_ok=True)
