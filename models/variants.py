"""Dragonfly variants as data: crop grids, crop size, pooling / zoom-in selection and the image-token runs they imply.

Why one table: the processor (how many crops, how many placeholder ids) and the model (how many visual embeddings
its pooling or zoom-in selection produces) must agree exactly, or embeddings land in the wrong positions. Both read
the numbers from a `Variant` here, and both count image tokens with `image_token_runs`, so they cannot drift apart.
A new Dragonfly generation is one more entry in `VARIANTS` (plus, if it pools or selects in a new way, that code in
the model). No torch, no numpy, no transformers: importable anywhere in `models`.

A checkpoint's variant is recorded in its config (`variant`); the official configs have no such field, so for them
it is inferred from the official vision encoder (hub id, or crop size and patch size of a local CLIP) — and only for
them: anything else must name its variant, and an unknown name is an error (`variant_named`, `infer_variant`).
Sizes are `(width, height)` / `(columns, rows)` throughout, like Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "VARIANTS",
    "UnknownVariantError",
    "Variant",
    "image_block_len",
    "image_token_runs",
    "infer_variant",
    "n_image_tokens",
    "variant_named",
]


class UnknownVariantError(ValueError):
    """A config, processor or caller names (or implies) a Dragonfly variant this table does not know."""


@dataclass(frozen=True)
class Variant:
    """Everything that differs between Dragonfly generations, as numbers.

    Attributes:
        name: the value of `config.variant` ("v2", "v1").
        image_encoder: hub id of the CLIP vision tower the official config names.
        crop_size: pixels per crop side (the CLIP image size).
        patch_size: CLIP patch size; `crop_size // patch_size` patches per side.
        medium_grids: candidate medium grids `(columns, rows)`; all hold the same number of crops.
        high_grids: candidate high grids chosen on their own (v1); empty when the high grid is `high_scale` × the
            chosen medium grid (v2).
        high_scale: factor from medium to high grid per side when `high_grids` is empty.
        pool_kernel: average-pool kernel over each non-global crop's patch grid (v2); None = no pooling.
        zoom_region_size: high crops each medium region may choose from, by index (v1 zoom-in); None = no zoom.
        zoom_top_k: high crops each medium region keeps (v1 zoom-in).
        clip: CLIP vision hyper-parameters of `image_encoder` (from its public config.json), so that a config
            naming the hub id is resolved without downloading anything.
    """

    name: str
    image_encoder: str
    crop_size: int
    patch_size: int
    medium_grids: tuple[tuple[int, int], ...]
    high_grids: tuple[tuple[int, int], ...] = ()
    high_scale: int = 1
    pool_kernel: int | None = None
    zoom_region_size: int | None = None
    zoom_top_k: int | None = None
    clip: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        if (self.pool_kernel is None) == (self.zoom_top_k is None):
            raise ValueError(f"variant {self.name}: exactly one of pool_kernel and zoom_top_k must be set")
        for grids in (self.medium_grids, self.high_grids):
            if len({c * r for c, r in grids}) > 1:
                raise ValueError(f"variant {self.name}: candidate grids {grids} hold different numbers of crops")
        if self.pool_kernel is not None and self.patch_grid % self.pool_kernel:
            raise ValueError(f"variant {self.name}: pool kernel {self.pool_kernel} does not divide {self.patch_grid}")
        if self.clip and (self.clip.get("image_size"), self.clip.get("patch_size")) != (self.crop_size, self.patch_size):
            raise ValueError(f"variant {self.name}: CLIP image/patch size disagree with crop_size/patch_size")
        if self.zoom_top_k is not None and self.zoom_region_size is None:
            raise ValueError(f"variant {self.name}: zoom-in selection needs zoom_region_size")

    @property
    def selection(self) -> str:
        """"pool" (v2: every crop kept, pooled) or "zoom" (v1: high crops chosen per medium region)."""
        return "pool" if self.pool_kernel is not None else "zoom"

    @property
    def patch_grid(self) -> int:
        """Patches per crop side in the vision tower (24 for ViT-L/14@336, 7 for ViT-B/32@224)."""
        return self.crop_size // self.patch_size

    @property
    def tokens_per_crop(self) -> int:
        """Vision tokens per crop, CLS included (577 / 50)."""
        return self.patch_grid**2 + 1

    @property
    def n_medium(self) -> int:
        """Crops in the medium grid (4)."""
        cols, rows = self.medium_grids[0]
        return cols * rows

    @property
    def n_high(self) -> int:
        """Crops in the high grid (36 for v2, 24 for v1)."""
        if self.high_grids:
            cols, rows = self.high_grids[0]
            return cols * rows
        return self.n_medium * self.high_scale**2

    @property
    def n_low(self) -> int:
        """The global crop plus the medium crops, always kept whole by zoom-in selection (5)."""
        return 1 + self.n_medium

    @property
    def n_crops(self) -> int:
        """Crops the processor makes per image: global + medium + high (41 / 29)."""
        return self.n_low + self.n_high

    @property
    def pooled_tokens_per_crop(self) -> int:
        """Tokens of a pooled crop: CLS + (grid / kernel)² (37 for v2); the full count when nothing is pooled."""
        if self.pool_kernel is None:
            return self.tokens_per_crop
        return 1 + (self.patch_grid // self.pool_kernel) ** 2


def image_token_runs(variant: Variant) -> tuple[int, ...]:
    """Visual embeddings per kept crop, in sequence order; in `input_ids` each run is closed by one newline token.

    This is the one count both sides use: the processor lays out this many placeholders, the model produces this
    many feature rows (and checks that it did).
    v2 ("pool"): the global crop keeps all its tokens, every other crop is pooled → (577,) + (37,) × 40.
    v1 ("zoom"): the global and medium crops plus `zoom_top_k` high crops per medium region, whole → (50,) × 17.
    """
    if variant.selection == "pool":
        return (variant.tokens_per_crop,) + (variant.pooled_tokens_per_crop,) * (variant.n_medium + variant.n_high)
    assert variant.zoom_top_k is not None
    kept = variant.n_low + variant.n_medium * variant.zoom_top_k
    return (variant.tokens_per_crop,) * kept


def n_image_tokens(variant: Variant) -> int:
    """Visual embeddings (placeholder positions) per image: 2057 for v2, 850 for v1."""
    return sum(image_token_runs(variant))


def image_block_len(variant: Variant) -> int:
    """Length of the image block before BOS: placeholders plus one newline per run (2098 for v2, 867 for v1)."""
    runs = image_token_runs(variant)
    return sum(runs) + len(runs)


_SQUARE_TALL_WIDE = ((2, 2), (1, 4), (4, 1))

#: The known Dragonfly generations (see ../shared/reference/dragonfly-notes.md §0, §1.7, §2).
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        # main branch: CLIP ViT-L/14@336, high grid = 3 × medium, non-global crops pooled 4×4 (24² → 6²).
        Variant("v2", "openai/clip-vit-large-patch14-336", crop_size=336, patch_size=14,
                medium_grids=_SQUARE_TALL_WIDE, high_scale=3, pool_kernel=4,
                clip={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                      "num_attention_heads": 16, "image_size": 336, "patch_size": 14, "projection_dim": 768,
                      "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "num_channels": 3}),
        # dragonfly-v1 branch: CLIP ViT-B/32@224, a 24-crop high grid chosen on its own, top-3 of 6 per region.
        Variant("v1", "openai/clip-vit-base-patch32", crop_size=224, patch_size=32,
                medium_grids=_SQUARE_TALL_WIDE, high_grids=((6, 4), (4, 6), (3, 8), (8, 3), (2, 12), (12, 2)),
                zoom_region_size=6, zoom_top_k=3,
                clip={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                      "num_attention_heads": 12, "image_size": 224, "patch_size": 32, "projection_dim": 512,
                      "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "num_channels": 3}),
    )
}


def variant_named(name: str) -> Variant:
    """The variant called `name`; UnknownVariantError (listing the known ones) otherwise."""
    try:
        return VARIANTS[name]
    except (KeyError, TypeError):
        raise UnknownVariantError(
            f"unknown Dragonfly variant {name!r}; known: {', '.join(VARIANTS)}"
        ) from None


def infer_variant(image_encoder: str | None, crop_size: int, patch_size: int | None) -> Variant:
    """The variant of an *official* config, which has no `variant` field.

    Only the official layouts are inferred: the encoder hub id of a variant, or a local CLIP whose crop size and
    patch size (when known) are exactly a variant's. Anything else raises UnknownVariantError instead of silently
    taking the path of a variant with the same crop size.
    """
    for variant in VARIANTS.values():
        if image_encoder == variant.image_encoder:
            if crop_size != variant.crop_size:
                break
            return variant
    else:
        matches = [v for v in VARIANTS.values()
                   if v.crop_size == crop_size and (patch_size is None or v.patch_size == patch_size)]
        if len(matches) == 1:
            return matches[0]
    shown = f"image_size {crop_size}" + (f", patch_size {patch_size}" if patch_size is not None else "")
    known = "; ".join(f"{v.name}: {v.image_encoder} ({v.crop_size} px, patch {v.patch_size})" for v in VARIANTS.values())
    raise UnknownVariantError(
        f"vision encoder {image_encoder!r} ({shown}) is not an official Dragonfly layout ({known}); "
        "a checkpoint with another layout must name its variant in config.json (\"variant\")"
    )
