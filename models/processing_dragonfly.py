"""`DragonflyProcessor`: prompts + images → `input_ids`, `attention_mask`, `image_patches`, `image_patches_indices`.

Reproduces the official llava-hd processor (token layout, crop geometry, Pillow-exact pixels; see
../shared/reference/dragonfly-notes.md §1) with a faster pixel path (models/_pixels.py). Layout per sample:
`[image block][<|begin_of_text|> prompt…][<|end_of_text|>]`; the image block is runs of placeholder ids
(`<|reserved_special_token_0|>`) each closed by a newline id (`<|reserved_special_token_1|>`), ids looked up by
token string. `image_patches_indices` holds the visual-embedding index at each placeholder position and −1
elsewhere, and is 10 longer than `input_ids`, as in the official output. In generate mode the batch is left-padded
and the last column (the appended `<|end_of_text|>`) is dropped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import AutoTokenizer, BatchFeature, CLIPImageProcessorPil, ProcessorMixin

from models._pixels import Normalizer, image_patches, to_rgb
from models.configuration_dragonfly import DragonflyConfig, register
from models.variants import Variant, image_token_runs, infer_variant, variant_named

__all__ = ["DragonflyProcessor", "IMAGE_NEWLINE_TOKEN", "IMAGE_PLACEHOLDER_TOKEN"]

IMAGE_PLACEHOLDER_TOKEN = "<|reserved_special_token_0|>"
IMAGE_NEWLINE_TOKEN = "<|reserved_special_token_1|>"
END_OF_TEXT_TOKEN = "<|end_of_text|>"
#: The official processor sizes `image_patches_indices` for 10 tokens to generate beyond the prompt.
EXTRA_INDEX_COLUMNS = 10


#: Keyword arguments of the `from_pretrained` protocol (AutoProcessor passes some) that are not processor options.
_LOADER_KWARGS = (
    "_from_auto", "trust_remote_code", "revision", "code_revision", "local_files_only", "cache_dir", "token",
    "force_download", "proxies", "subfolder", "_commit_hash", "return_unused_kwargs",
)


class DragonflyProcessor(ProcessorMixin):
    """CLIP image processor (mean/std/crop size) + Llama-3 tokenizer, with the official Dragonfly call shape.

    Example:
        >>> proc = DragonflyProcessor.from_pretrained("path/to/checkpoint")
        >>> batch = proc(text=[prompt], images=[image], max_length=2048, return_tensors="pt", is_generate=True)
    """

    attributes = ["image_processor", "tokenizer"]
    image_processor_class = "CLIPImageProcessorPil"
    tokenizer_class = "AutoTokenizer"

    def __init__(
        self, image_processor: Any = None, tokenizer: Any = None, image_encoding_style: str = "llava-hd",
        variant: str | None = None, **kwargs: Any,
    ) -> None:
        """`variant` is the checkpoint's (`DragonflyConfig.variant`; `from_pretrained` reads it from config.json).
        Without it, only an official crop size (336 → v2, 224 → v1) is accepted, through `variants.infer_variant`."""
        if image_encoding_style != "llava-hd":
            raise ValueError(f"image_encoding_style {image_encoding_style!r}: only 'llava-hd' exists in Dragonfly")
        if image_processor is None or tokenizer is None:
            raise ValueError("DragonflyProcessor needs an image_processor and a tokenizer")
        self.image_encoding_style = image_encoding_style
        super().__init__(image_processor, tokenizer, **kwargs)
        crop = _crop_size(image_processor)
        self.variant_spec: Variant = variant_named(variant) if variant is not None else infer_variant(None, crop, None)
        if self.variant_spec.crop_size != crop:
            raise ValueError(
                f"image processor crops {crop} px but Dragonfly {self.variant_spec.name} uses {self.variant_spec.crop_size}"
            )
        self.version = self.variant_spec.name
        self.placeholder_id = self._token_id(IMAGE_PLACEHOLDER_TOKEN)
        self.newline_id = self._token_id(IMAGE_NEWLINE_TOKEN)
        self.end_of_text_id = self._token_id(END_OF_TEXT_TOKEN)
        self.pad_token_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else self.end_of_text_id
        self.normalizer = Normalizer(
            image_processor.image_mean, image_processor.image_std, float(getattr(image_processor, "rescale_factor", 1 / 255))
        )
        self._image_ids, self._image_indices = self._image_block()

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any) -> DragonflyProcessor:
        """Load from a checkpoint folder offline: preprocessor_config.json, processor_config.json, tokenizer files."""
        folder = Path(pretrained_model_name_or_path)
        if not folder.is_dir():
            raise ValueError(f"{folder}: not a folder (DragonflyProcessor loads local checkpoint folders only)")
        if not (folder / "preprocessor_config.json").is_file():
            raise ValueError(f"{folder}: preprocessor_config.json is missing")
        options: dict[str, Any] = {}
        proc_cfg = folder / "processor_config.json"
        if proc_cfg.is_file():
            try:
                options = json.loads(proc_cfg.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise ValueError(f"{proc_cfg}: invalid JSON ({err})") from err
        options.pop("processor_class", None)
        if (folder / "config.json").is_file():  # the checkpoint's recorded (or inferred) variant, not a crop-size guess
            options["variant"] = DragonflyConfig.from_pretrained(folder, local_files_only=True).variant
        for key in _LOADER_KWARGS:  # AutoProcessor passes hub / auto options; we only read local files
            kwargs.pop(key, None)
        options.update(kwargs)
        register()
        image_processor = CLIPImageProcessorPil.from_pretrained(folder, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        return cls(image_processor=image_processor, tokenizer=tokenizer, **options)

    def save_pretrained(self, save_directory: str | os.PathLike[str], **kwargs: Any) -> list[str]:
        """Write the official layout: preprocessor_config.json, processor_config.json and the tokenizer files."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        written = list(self.image_processor.save_pretrained(folder))
        written += list(self.tokenizer.save_pretrained(folder))
        config = {"image_encoding_style": self.image_encoding_style, "processor_class": type(self).__name__}
        target = folder / "processor_config.json"
        target.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return [str(p) for p in written] + [str(target)]

    def _token_id(self, token: str) -> int:
        tid = self.tokenizer.convert_tokens_to_ids(token)
        if tid is None or tid == self.tokenizer.unk_token_id:
            raise ValueError(f"tokenizer has no {token!r} token: not a Llama-3 Dragonfly tokenizer")
        return int(tid)

    def _image_block(self) -> tuple[np.ndarray, np.ndarray]:
        ids: list[int] = []
        idx: list[int] = []
        counter = 0
        for run in image_token_runs(self.variant_spec):
            ids.extend([self.placeholder_id] * run + [self.newline_id])
            idx.extend(range(counter, counter + run))
            idx.append(-1)
            counter += run
        return np.asarray(ids, dtype=np.int64), np.asarray(idx, dtype=np.int64)

    # ------------------------------------------------------------------------------------------ pieces
    def image_patches(self, image: Any, *, concurrent: bool = True) -> np.ndarray:
        """float32 `(n_crops, 3, S, S)` normalised crops of one image."""
        return image_patches(to_rgb(image), self.variant_spec, self.normalizer, concurrent=concurrent)

    def tokenize_prompt(self, text: str, max_length: int) -> list[int]:
        """Official text side: BOS + prompt tokens, cut to `max_length // 2 - 1`, then `<|end_of_text|>` appended."""
        ids = self.tokenizer(text, add_special_tokens=True)["input_ids"]
        return list(ids[: max_length // 2 - 1]) + [self.end_of_text_id]

    # ------------------------------------------------------------------------------------------ call
    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        images: Any = None,
        max_length: int = 2048,
        return_tensors: str | None = "pt",
        is_generate: bool = False,
        **kwargs: Any,
    ) -> BatchFeature:
        """Encode prompts and their images (one image, or None, per prompt).

        Args:
            text: prompt string(s), Llama-3 chat form without BOS (see `models.prompts`).
            images: one image per prompt (PIL, numpy; `None` entries or `images=None` for text-only prompts).
            max_length: the official limit; the text keeps its first `max_length // 2 - 1` tokens.
            return_tensors: only "pt" is supported (the model is torch).
            is_generate: left-pad and drop the appended `<|end_of_text|>` (inference); else right-pad (training).
        Returns:
            `BatchFeature` with `input_ids` `(B, L)`, `attention_mask` `(B, L)`, `image_patches` (list of
            `(n_crops, 3, S, S)` float32 tensors or None), `image_patches_indices` `(B, L + 10)`.
        """
        import torch

        if return_tensors not in ("pt", None):
            raise ValueError(f"return_tensors={return_tensors!r}: DragonflyProcessor returns torch tensors ('pt')")
        if text is None:
            raise ValueError("text is required: Dragonfly answers a prompt about an image")
        texts = [text] if isinstance(text, str) else list(text)
        if not texts:
            raise ValueError("text is empty: give at least one prompt")
        if images is None:
            image_list: list[Any] = [None] * len(texts)
        else:
            image_list = list(images) if isinstance(images, (list, tuple)) else [images]
        if len(image_list) != len(texts):
            raise ValueError(f"{len(texts)} prompts but {len(image_list)} images: give one image (or None) per prompt")

        seqs: list[np.ndarray] = []
        idxs: list[np.ndarray] = []
        patches: list[Any] = []
        for i, (prompt, image) in enumerate(zip(texts, image_list, strict=True)):
            text_ids = np.asarray(self.tokenize_prompt(prompt, max_length), dtype=np.int64)
            if image is None:
                # Deliberate difference: the official text-only path keeps the appended <|end_of_text|> even in
                # generate mode (a quirk); here it is dropped like for image prompts, so generation can start.
                seqs.append(text_ids)
                idxs.append(np.full(len(text_ids) + EXTRA_INDEX_COLUMNS, -1, dtype=np.int64))
                patches.append(None)
                continue
            try:
                pixels = self.image_patches(image)
            except ValueError as err:
                raise ValueError(f"images[{i}]: {err}") from err
            patches.append(torch.from_numpy(pixels))
            seqs.append(np.concatenate([self._image_ids, text_ids]))
            idxs.append(
                np.concatenate([self._image_indices, np.full(len(text_ids) + EXTRA_INDEX_COLUMNS, -1, dtype=np.int64)])
            )

        longest = max(len(s) for s in seqs)
        batch = len(seqs)
        input_ids = np.full((batch, longest), self.pad_token_id, dtype=np.int64)
        attention = np.zeros((batch, longest), dtype=np.int64)
        indices = np.full((batch, longest + EXTRA_INDEX_COLUMNS), -1, dtype=np.int64)
        for b, (seq, idx) in enumerate(zip(seqs, idxs, strict=True)):
            pad = longest - len(seq)
            start = pad if is_generate else 0
            input_ids[b, start : start + len(seq)] = seq
            attention[b, start : start + len(seq)] = 1
            indices[b, start : start + len(idx)] = idx
        if is_generate:
            input_ids, attention, indices = input_ids[:, :-1], attention[:, :-1], indices[:, :-1]

        data = {
            "input_ids": torch.from_numpy(np.ascontiguousarray(input_ids)),
            "attention_mask": torch.from_numpy(np.ascontiguousarray(attention)),
            "image_patches": patches,
            "image_patches_indices": torch.from_numpy(np.ascontiguousarray(indices)),
        }
        return BatchFeature(data=data)

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "image_patches", "image_patches_indices"]


def _crop_size(image_processor: Any) -> int:
    crop = getattr(image_processor, "crop_size", None)
    if isinstance(crop, dict):
        h, w = crop.get("height"), crop.get("width")
    else:
        h, w = getattr(crop, "height", None), getattr(crop, "width", None)
    if h is None or h != w:
        size = getattr(image_processor, "size", None)
        edge = size.get("shortest_edge") if isinstance(size, dict) else getattr(size, "shortest_edge", None)
        if edge is None:
            raise ValueError(f"image processor has no square crop size (crop_size={crop!r})")
        return int(edge)
    return int(h)

