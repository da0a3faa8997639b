"""`DragonflyForCausalLM` on transformers 5.x: transformers' own Llama and CLIP, the official key names.

Module tree (and therefore state-dict keys) is that of the official checkpoints:
`language_model` (`LlamaForCausalLM`), `image_encoder` (`CLIPVisionModel`), `vision_embed_tokens` (`nn.Linear`).
transformers 5 dropped the `vision_model.` level inside `CLIPVisionModel`; the official files store
`image_encoder.vision_model.*`. transformers' own CLIP key conversion maps the files on load and save, and
`state_dict()` / `load_state_dict()` are wrapped with the same rename (see `_official_key` / `_module_key`), so code
outside `from_pretrained` (conversion, checks) sees exactly the official names.

The image path (official algorithm, see ../shared/reference/dragonfly-notes.md):
CLIP `hidden_states[-2]` (CLS kept) → `vision_embed_tokens` → v2: global crop all tokens, each other crop CLS + 4×4
average pool; v1: zoom-in selection of 12 of 24 high crops → scattered into the placeholder positions given by
`image_patches_indices`. Images are encoded only when the current chunk of the sequence (by cache position)
contains placeholder positions, so `generate()` and an engine's prefix cache work with any cache class.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionModel, GenerationMixin, LlamaForCausalLM, PreTrainedModel
from transformers.cache_utils import Cache
from transformers.modeling_outputs import CausalLMOutputWithPast

from models._compat import cache_kwargs
from models.configuration_dragonfly import DragonflyConfig, register
from models.processing_dragonfly import DragonflyProcessor
from models.strict import loading_info_problems, weights_error
from models.variants import n_image_tokens

register()

__all__ = ["DragonflyForCausalLM", "DragonflyPreTrainedModel", "ZoomSelection"]

_VISION_PREFIX = "image_encoder."
# While transformers' own loader runs it must see the module's key names (it applies CLIP's key conversion itself).
_LOADER = threading.local()
_OFFICIAL_VISION_PREFIX = "image_encoder.vision_model."


def _official_key(key: str) -> str:
    """Module key → official checkpoint key (`image_encoder.X` → `image_encoder.vision_model.X`)."""
    if key.startswith(_VISION_PREFIX) and not key.startswith(_OFFICIAL_VISION_PREFIX):
        return _OFFICIAL_VISION_PREFIX + key[len(_VISION_PREFIX) :]
    return key


def _module_key(key: str) -> str:
    """Official checkpoint key → module key (inverse of `_official_key`)."""
    if key.startswith(_OFFICIAL_VISION_PREFIX):
        return _VISION_PREFIX + key[len(_OFFICIAL_VISION_PREFIX) :]
    return key


def _disable_unsupported_bnb_cpu_packing(model: nn.Module) -> None:
    """bitsandbytes 0.50 on an AVX512-BF16 CPU repacks 4-bit weights on first use and asserts that the output size is
    a multiple of 32 and the input size a multiple of the quantisation block; small layers (the tiny test
    checkpoints' 8-wide k/v projections, 16-wide inputs) then crash. Such layers keep the generic 4-bit kernel
    (same maths, no repacking). Real 8B layers (4096 / 1024 / 14336) are unaffected.
    """
    for module in model.modules():
        if not hasattr(module, "support_avx512bf16_for_cpu"):
            continue
        state = getattr(getattr(module, "weight", None), "quant_state", None)
        block = int(getattr(state, "blocksize", 64) or 64)
        if module.out_features % 32 or module.in_features % block:
            module.support_avx512bf16_for_cpu = False


class ZoomSelection:
    """What the v1 zoom-in step decided for one image (kept for inspection and tests).

    Attributes:
        scores: `[4, n_high]` raw dot products of mean embeddings (every pair, before the region mask).
        allowed: `[4, n_high]` bool, the high crops each medium region may choose.
        selected: `[4 * zoom_top_k]` kept high-crop indices, sorted ascending (`zoom_top_k` from the variant).
    """

    def __init__(self, scores: torch.Tensor, allowed: torch.Tensor, selected: torch.Tensor) -> None:
        self.scores = scores
        self.allowed = allowed
        self.selected = selected


class DragonflyPreTrainedModel(PreTrainedModel):
    """Class-level facts shared by Dragonfly models (config class, attention back-ends, no-split modules)."""

    config_class = DragonflyConfig
    config: DragonflyConfig
    base_model_prefix = "dragonfly"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaDecoderLayer", "CLIPEncoderLayer"]
    _skip_keys_device_placement = ["past_key_values", "cache"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Official init for the projector (N(0, initializer_range), zero bias); sub-models init themselves."""
        projector = getattr(self, "vision_embed_tokens", None)
        if projector is not None and module is projector:
            projector.weight.normal_(mean=0.0, std=self.config.initializer_range)
            if projector.bias is not None:
                projector.bias.zero_()
        else:
            super()._init_weights(module)


class DragonflyForCausalLM(DragonflyPreTrainedModel, GenerationMixin):
    """Dragonfly(-Med) v1/v2: CLIP crops → projected visual tokens scattered into a Llama prompt.

    `forward` takes the processor's outputs (`input_ids`, `attention_mask`, `image_patches`,
    `image_patches_indices`) or pre-computed `image_features` (from `get_image_features`) instead of pixels.
    """

    def __init__(self, config: DragonflyConfig) -> None:
        if getattr(config, "_vision_unresolved", False):
            raise ValueError(
                f"image_encoder {config.image_encoder!r} is a folder that was not found; load the config with "
                "DragonflyConfig.from_pretrained(checkpoint_folder) so the subfolder is resolved"
            )
        super().__init__(config)
        self.language_model = LlamaForCausalLM._from_config(config.text_config)
        self.image_encoder = CLIPVisionModel._from_config(config.vision_config)
        self.vision_embed_tokens = nn.Linear(config.vision_config.hidden_size, config.text_config.hidden_size, bias=True)
        self._register_official_key_hooks()
        self.post_init()

    # ----------------------------------------------------------------------------------------------- key names
    def _register_official_key_hooks(self) -> None:
        """Make `state_dict()` / `load_state_dict()` speak the official key names (see module docstring)."""

        def to_official(module: nn.Module, state_dict: OrderedDict, prefix: str, local_metadata: Any) -> OrderedDict:
            if getattr(_LOADER, "active", 0):
                return state_dict
            renamed = OrderedDict()
            for key, value in state_dict.items():
                renamed[prefix + _official_key(key[len(prefix) :]) if key.startswith(prefix) else key] = value
            state_dict.clear()
            state_dict.update(renamed)
            return state_dict

        def from_official(state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
            for key in list(state_dict):
                if key.startswith(prefix + _OFFICIAL_VISION_PREFIX):
                    state_dict[prefix + _module_key(key[len(prefix) :])] = state_dict.pop(key)

        self._register_state_dict_hook(to_official)
        self._register_load_state_dict_pre_hook(from_official)

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        """transformers' `from_pretrained` (offline folder or cache), with the module key names during loading.

        Strict, like `models.loading`: missing, unexpected or mis-shaped tensors raise
        `models.errors.CheckpointFormatError` naming them (`models.strict`, the loader's wording), where transformers
        would initialise a missing tensor at random and only log it; `ignore_mismatched_sizes` is always on so that
        mis-shaped tensors are reported, then refused. This holds for `AutoModelForCausalLM` too.
        """
        source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
        where = source if source is not None else "<state dict>"
        want_info = bool(kwargs.pop("output_loading_info", False))
        kwargs["ignore_mismatched_sizes"] = True  # report mis-shaped tensors in the info (refused below), not raise
        _LOADER.active = getattr(_LOADER, "active", 0) + 1
        try:
            model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        finally:
            _LOADER.active -= 1
        error = weights_error(where, loading_info_problems(info, rename=_official_key))
        if error is not None:  # name the tensors, not transformers' report
            raise error
        _disable_unsupported_bnb_cpu_packing(model)
        return (model, info) if want_info else model

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        self.language_model.set_output_embeddings(new_embeddings)

    @property
    def version(self) -> str:
        return self.config.version

    # ----------------------------------------------------------------------------------------------- image path
    def _vision_dtype(self) -> torch.dtype:
        # The tower is never quantised; the projector may be, so its dtype is not the pixel dtype (official bug).
        return self.image_encoder.embeddings.patch_embedding.weight.dtype

    def encode_crops(self, crops: torch.Tensor) -> torch.Tensor:
        """Project every vision token of every crop.

        Args:
            crops: `(n_crops, 3, S, S)` normalised pixels.
        Returns:
            `(n_crops, tokens_per_crop, text_hidden)`: `vision_embed_tokens(CLIP hidden_states[-2])`, CLS first.
        """
        device = self.image_encoder.embeddings.patch_embedding.weight.device
        pixels = crops.to(device=device, dtype=self._vision_dtype())
        hidden = self.penultimate_hidden_state(pixels)
        proj_dtype = self._projector_compute_dtype()
        return self.vision_embed_tokens(hidden.to(proj_dtype))

    def penultimate_hidden_state(self, pixels: torch.Tensor) -> torch.Tensor:
        """CLIP's `hidden_states[-2]` computed directly: embeddings → pre_layrnorm → every encoder layer but the last.

        Why not `image_encoder(..., output_hidden_states=True).hidden_states[-2]`: that keeps all `layers + 1` hidden
        states alive (25 × 41 crops × 577 tokens × 1024 for ViT-L/14, about 1.2 GB in bf16) and runs the last encoder
        layer and `post_layernorm`, whose outputs Dragonfly never uses. Calling transformers' own CLIP modules in the
        order `CLIPVisionModel.forward` uses them gives the same numbers (the vision tower takes no attention mask) and
        keeps one hidden state at a time.
        """
        vision = self.image_encoder
        hidden = vision.pre_layrnorm(vision.embeddings(pixels))
        for layer in vision.encoder.layers[:-1]:
            hidden = layer(hidden, None)
        return hidden

    def _projector_compute_dtype(self) -> torch.dtype:
        weight = self.vision_embed_tokens.weight
        if weight.is_floating_point():
            return weight.dtype
        return self._vision_dtype()  # a packed (quantised) projector computes in its compute dtype; feed the tower's

    def pool_crops(self, projected: torch.Tensor) -> torch.Tensor:
        """v2: global crop keeps all tokens; every other crop becomes CLS + average-pooled patch grid (kernel from
        the variant: 4×4 for v2).

        Args:
            projected: `(n_crops, 1 + g*g, D)` from `encode_crops`.
        Returns:
            `(tokens_per_crop + (n_crops - 1) * (1 + (g/4)**2), D)`, e.g. 577 + 40·37 = 2057 rows.
        """
        n_crops, n_tok, dim = projected.shape
        grid = self.config.patch_grid
        if n_tok != grid * grid + 1:
            raise ValueError(f"expected {grid * grid + 1} tokens per crop, got {n_tok}")
        rest = projected[1:]
        cls = rest[:, :1]
        patches = rest[:, 1:].reshape(n_crops - 1, grid, grid, dim).permute(0, 3, 1, 2)
        kernel = self.config.variant_spec.pool_kernel
        pooled = F.avg_pool2d(patches, kernel_size=kernel, stride=kernel)
        pooled = pooled.flatten(2).transpose(1, 2)  # (n-1, (g/4)^2, D) row-major
        per_crop = torch.cat([cls, pooled], dim=1)
        return torch.cat([projected[0], per_crop.reshape(-1, dim)], dim=0)

    def zoom_select(self, low: torch.Tensor, high: torch.Tensor) -> ZoomSelection:
        """v1 zoom-in selection: per medium region, the top-k high crops by raw dot product of mean embeddings.

        Args:
            low: `(5, T, D)` projected global + 4 medium crops.
            high: `(n_high, T, D)` projected high crops (24).
        Region r (1..4) may only choose high indices `size·(r-1) .. size·r - 1` (the official index rule, not
        geometry); size (6) and k (3) come from the variant.
        """
        variant = self.config.variant_spec
        region_size, top_k = variant.zoom_region_size, variant.zoom_top_k
        if region_size is None or top_k is None:
            raise ValueError(f"variant {variant.name} does not select crops (it pools them)")
        n_regions = low.shape[0] - 1
        q = high.mean(dim=1)  # (n_high, D)
        a = low[1:].mean(dim=1)  # (4, D)
        scores = a @ q.T  # (4, n_high)
        allowed = torch.zeros_like(scores, dtype=torch.bool)
        for r in range(n_regions):
            allowed[r, r * region_size : (r + 1) * region_size] = True
        masked = scores.masked_fill(~allowed, float("-inf"))
        picks = masked.topk(top_k, dim=1).indices.reshape(-1)
        return ZoomSelection(scores=scores, allowed=allowed, selected=picks.sort().values)

    def image_features_from_projected(self, projected: torch.Tensor) -> tuple[torch.Tensor, ZoomSelection | None]:
        """Visual sequence of one image from its projected crops (v2 pooling or v1 zoom-in selection).

        The row count is checked against `models.variants.n_image_tokens`, the count the processor lays out
        placeholders for, so a variant whose model and processor disagree fails here instead of misplacing rows.
        """
        variant = self.config.variant_spec
        if projected.shape[0] != variant.n_crops:
            raise ValueError(f"Dragonfly {variant.name} expects {variant.n_crops} crops per image, got {projected.shape[0]}")
        zoom = None
        if variant.selection == "pool":
            features = self.pool_crops(projected)
        else:
            low, high = projected[: variant.n_low], projected[variant.n_low :]
            zoom = self.zoom_select(low, high)
            selected = high[zoom.selected.to(high.device)]
            dim = projected.shape[-1]
            features = torch.cat([low.reshape(-1, dim), selected.reshape(-1, dim)], dim=0)
        if features.shape[0] != n_image_tokens(variant):
            raise ValueError(
                f"Dragonfly {variant.name}: {features.shape[0]} visual embeddings, but the token layout has "
                f"{n_image_tokens(variant)} image positions"
            )
        return features, zoom

    def get_image_features(self, image_patches: list[torch.Tensor] | torch.Tensor) -> list[torch.Tensor | None]:
        """Visual embeddings per image, in sequence order, ready to scatter into placeholder positions.

        Args:
            image_patches: one `(n_crops, 3, S, S)` tensor per image (41 crops of 336 for v2, 29 of 224 for v1).
        Returns:
            one `(N_vis, text_hidden)` tensor per image (2057 for v2, 850 for v1).
        """
        if isinstance(image_patches, torch.Tensor) and image_patches.ndim == 4:
            image_patches = [image_patches]
        feats: list[torch.Tensor | None] = []
        for crops in image_patches:
            if crops is None:
                feats.append(None)
                continue
            if crops.ndim != 4:
                raise ValueError(f"image_patches: expected (n_crops, 3, S, S) per image, got shape {tuple(crops.shape)}")
            feats.append(self.image_features_from_projected(self.encode_crops(crops))[0])
        return feats

    # ----------------------------------------------------------------------------------------------- merge
    @staticmethod
    def _chunk_indices(
        image_patches_indices: torch.Tensor, cache_position: torch.Tensor, seq_len: int
    ) -> torch.Tensor:
        """`image_patches_indices` at the positions of the current chunk (−1 beyond the stored width)."""
        width = image_patches_indices.shape[1]
        pos = cache_position.to(image_patches_indices.device).long()
        if pos.numel() != seq_len:
            raise ValueError(f"cache_position has {pos.numel()} entries for a chunk of {seq_len} tokens")
        inside = pos < width
        idx = torch.full((image_patches_indices.shape[0], seq_len), -1, dtype=torch.long, device=pos.device)
        if bool(inside.any()):
            idx[:, inside] = image_patches_indices[:, pos[inside]].long()
        return idx

    @staticmethod
    def scatter_image_features(
        inputs_embeds: torch.Tensor, chunk_indices: torch.Tensor, image_features: list[torch.Tensor | None]
    ) -> torch.Tensor:
        """Put visual embedding `i` at every position whose index is `i` (official `gather_continuous_embeddings`)."""
        if len(image_features) != inputs_embeds.shape[0]:
            raise ValueError(
                f"{len(image_features)} images for a batch of {inputs_embeds.shape[0]} sequences; give one per sequence"
            )
        out = inputs_embeds.clone()
        for b, feats in enumerate(image_features):
            positions = (chunk_indices[b] >= 0).nonzero(as_tuple=True)[0]
            if positions.numel() == 0:
                continue
            if feats is None:
                raise ValueError(f"sequence {b} has {positions.numel()} image positions but no image")
            wanted = chunk_indices[b, positions]
            if int(wanted.max()) >= feats.shape[0]:
                raise ValueError(
                    f"sequence {b}: image positions ask for feature {int(wanted.max())} "
                    f"but the image has {feats.shape[0]} features"
                )
            out[b, positions.to(out.device)] = feats.to(device=out.device, dtype=out.dtype)[wanted.to(feats.device)]
        return out

    # ----------------------------------------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_patches: list[torch.Tensor] | None = None,
        image_patches_indices: torch.Tensor | None = None,
        image_features: list[torch.Tensor] | None = None,
        cache: Cache | None = None,
        past_key_values: Cache | None = None,
        cache_position: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """Dragonfly forward.

        Args:
            input_ids: `(batch, seq)` token ids of the current chunk (image block, BOS, prompt; or new tokens).
            attention_mask: `(batch, past + seq)` 1/0 mask (left padding allowed).
            image_patches: one `(n_crops, 3, S, S)` tensor per sequence; encoded only if this chunk needs it.
            image_patches_indices: `(batch, ≥ total_len)` visual-embedding index per absolute position, −1 elsewhere.
            image_features: pre-computed `get_image_features` output, used instead of `image_patches`.
            cache / past_key_values: the KV cache under either name (transformers ≥ 5.24 passes `cache`, earlier
                releases `past_key_values`); it is handed to the language model under the installed version's name.
            cache_position: absolute positions of this chunk; derived from the cache length when absent (transformers
                ≥ 5.24 no longer passes it), so image positions and RoPE positions continue where the cache ends.
            position_ids: RoPE positions; by default `cumsum(attention_mask) − 1` over the chunk (pads → 0),
                i.e. `cache_position` for unpadded input, so the first image token has position 0.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        if cache is not None and past_key_values is not None and cache is not past_key_values:
            raise ValueError("give the KV cache once, as `cache` or as `past_key_values`, not two different caches")
        cache = cache if cache is not None else past_key_values
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        batch, seq_len = inputs_embeds.shape[:2]
        device = inputs_embeds.device

        if cache_position is None:
            past = cache.get_seq_length() if cache is not None else 0
            cache_position = torch.arange(past, past + seq_len, device=device)

        if image_patches_indices is not None:
            chunk_idx = self._chunk_indices(image_patches_indices, cache_position, seq_len)
            if bool((chunk_idx >= 0).any()):
                if image_features is None:
                    if image_patches is None:
                        raise ValueError(
                            "this chunk holds image positions but neither image_patches nor image_features was given"
                        )
                    image_features = self.get_image_features(image_patches)
                inputs_embeds = self.scatter_image_features(inputs_embeds, chunk_idx, image_features)
        elif image_patches is not None or image_features is not None:
            raise ValueError("an image was given without image_patches_indices (take both from DragonflyProcessor)")

        if position_ids is None:
            if attention_mask is not None and attention_mask.ndim == 2 and bool((attention_mask == 0).any()):
                full = attention_mask.long().cumsum(-1) - 1
                full = full.masked_fill(attention_mask == 0, 0)
                position_ids = full[:, cache_position.to(full.device)]
            else:
                position_ids = cache_position.unsqueeze(0).expand(batch, -1)

        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            labels=labels,
            logits_to_keep=logits_to_keep,
            **cache_kwargs(cache),
            **kwargs,
        )

    def prepare_inputs_for_generation(self, input_ids: torch.LongTensor, **kwargs: Any) -> dict[str, Any]:
        """transformers' default, plus the image inputs on every step (forward decides by position whether to use them)."""
        image_keys = ("image_patches", "image_patches_indices", "image_features")
        kept = {k: kwargs.pop(k) for k in image_keys if k in kwargs}
        inputs = super().prepare_inputs_for_generation(input_ids, **kwargs)
        inputs.update(kept)
        return inputs


def register_auto_classes() -> None:
    """Register Dragonfly with transformers' `AutoConfig`, `AutoModelForCausalLM` and `AutoProcessor` (idempotent).

    Runs when this module is imported; see `models.auto` for how each Auto class finds our classes and why no
    `auto_map` is written into `config.json`.
    """
    from transformers import AutoModelForCausalLM, AutoProcessor

    register()  # AutoConfig: "dragonfly" -> DragonflyConfig
    AutoModelForCausalLM.register(DragonflyConfig, DragonflyForCausalLM, exist_ok=True)
    AutoProcessor.register(DragonflyConfig, DragonflyProcessor, exist_ok=True)


register_auto_classes()
