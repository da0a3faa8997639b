"""`DragonflyEngine`: the one object the app talks to — load once, encode each image once, stream answers.

Why it is shaped like this:

* **Image prefix KV cache.** Dragonfly puts the image token block (2098 positions for v2, 867 for v1) *before*
  ``<|begin_of_text|>``, so with causal attention the keys and values of those positions depend on the image only,
  never on the question. `encode` runs the vision tower and prefills that block once per image; every question about
  the image (the first and each follow-up) starts from a copy of that cache and prefills only BOS + the chat prompt,
  at positions P..P+T-1 (P = block length) — exactly the positions a fresh run gives them. A follow-up therefore
  yields the same tokens as a fresh run without the cache (tested), while prefill work drops from P+T to T tokens.
  Each question works on a *fork* of the stored cache (`_fork_cache`): new layer objects that share the prefix
  tensors. transformers' dynamic layers grow by concatenation, never in place, so the stored prefix stays intact
  without the full copy a deepcopy would make (about 275 MB for the 8B model's 2098 positions) on every question.
* **transformers' own `generate`** does decoding (greedy by default, sampling with temperature / top-p on request),
  with a stopping criterion for cancel (checked after every token, so Stop takes effect within one token) and a
  streamer that feeds an incremental detokeniser (a piece is released only when it no longer ends in an incomplete
  UTF-8 sequence, so multi-byte characters are never split). Generation stops on ``<|eot_id|>`` (and
  ``<|end_of_text|>``).
* **One generation at a time.** A re-entrant lock serialises `encode`, `generate` and `caption_batch`: the model and
  the caches are shared, and a 16 GB model has no room for two concurrent runs anyway.
* **Timings on request.** `generate(..., timings=Timings())` fills a `Timings` with where the time to the first
  token went (preprocess, CLIP, image-block prefill, prompt prefill, first token; `time.perf_counter`). Without it
  no clock is read, no hook is installed and no streamer is added.
* The cache is keyed by the SHA-256 of the image's pixels (mode, size and bytes), so the same picture sent twice — or
  re-rendered identically — is recognised, and a changed window/level or region is a new image.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache

from models.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["DragonflyEngine", "EngineInfo", "Generation", "IncrementalDecoder", "Timings", "image_key"]

EOT_TOKEN = "<|eot_id|>"
END_OF_TEXT_TOKEN = "<|end_of_text|>"
BOS_TOKEN = "<|begin_of_text|>"


@dataclass
class Timings:
    """Where the time to the first token went, in seconds: filled by `generate(..., timings=...)`.

    Why these five: they are the places a first answer can be made faster, each by a different means — the pixel
    path (preprocess), the vision tower (clip), the image block's KV cache (image_prefill; skipped for an image
    already encoded), the chat prompt's forward (prompt_prefill) and decoding the first token (first_token).

    Attributes:
        preprocess: hashing the image, the processor (pixels and token ids), tokenising the chat prompt.
        clip: the vision tower and projection (`get_image_features`).
        image_prefill: the forward over the image token block that fills its KV cache.
        prompt_prefill: from handing the prompt to `generate` to the end of its first forward (setup included).
        first_token: from the end of that forward to the first new token reaching the streamer.
        total: from entering `generate` to the first token (≥ the sum of the stages; the gap is bookkeeping).
        cached_image: the image's encoding came from the cache (then clip and image_prefill are 0).
    """

    preprocess: float = 0.0
    clip: float = 0.0
    image_prefill: float = 0.0
    prompt_prefill: float = 0.0
    first_token: float = 0.0
    total: float = 0.0
    cached_image: bool = False
    _marks: dict[str, float] = field(default_factory=dict, repr=False, compare=False)

    STAGES = ("preprocess", "clip", "image_prefill", "prompt_prefill", "first_token")

    def reset(self) -> None:
        """Zero every field (a `Timings` may be reused across questions)."""
        for name in (*self.STAGES, "total"):
            setattr(self, name, 0.0)
        self.cached_image = False
        self._marks.clear()

    def stages(self) -> dict[str, float]:
        """The five stages in order, name → seconds."""
        return {name: getattr(self, name) for name in self.STAGES}

    def summary(self) -> str:
        """One line for a terminal: each stage in ms, their sum and the total."""
        parts = "  ".join(f"{name.replace('_', ' ')} {secs * 1000:.1f}" for name, secs in self.stages().items())
        cached = " (image encoding cached)" if self.cached_image else ""
        return (f"time to first token (ms): {parts}  = {sum(self.stages().values()) * 1000:.1f} of "
                f"{self.total * 1000:.1f} total{cached}")


@dataclass(frozen=True)
class Generation:
    """One answer: its text, the generated token ids (stop token excluded) and why it stopped.

    stop_reason: "eos" (the model ended its turn), "max_new_tokens" (length limit) or "cancelled".
    timings: the `Timings` passed to `generate`, filled (None when none was requested).
    """

    text: str
    token_ids: tuple[int, ...]
    stop_reason: str
    timings: Timings | None = None


@dataclass(frozen=True)
class EngineInfo:
    """What a report's provenance and the status bar show about the loaded model."""

    model_id: str
    version: str
    device: str
    quant: str
    dtype: str
    checkpoint_sha256: str | None
    n_params: int


def image_key(image: Any) -> str:
    """SHA-256 over an image's pixel content (mode/dtype, size/shape, bytes): the engine's cache key."""
    import numpy as np

    digest = hashlib.sha256()
    if hasattr(image, "tobytes") and hasattr(image, "mode") and hasattr(image, "size"):  # PIL
        digest.update(f"PIL:{image.mode}:{image.size}".encode())
        digest.update(image.tobytes())
    elif isinstance(image, np.ndarray):
        arr = np.ascontiguousarray(image)
        digest.update(f"ndarray:{arr.dtype.str}:{arr.shape}".encode())
        digest.update(arr.tobytes())
    else:
        raise ModelError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
    return digest.hexdigest()


class IncrementalDecoder:
    """Token ids in, text pieces out, never splitting a multi-byte character.

    Decodes a short window (from the last released boundary) rather than the whole answer each step, and releases the
    new text only when it does not end in U+FFFD (the replacement character a partial UTF-8 sequence decodes to).
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0  # start of the decode window
        self._read = 0  # end of the text already released

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def push(self, token_id: int) -> str:
        self.ids.append(int(token_id))
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd") and after.startswith(before):
            self._prefix, self._read = self._read, len(self.ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character at the very end decodes as U+FFFD)."""
        before = self._decode(self.ids[self._prefix : self._read])
        after = self._decode(self.ids[self._prefix :])
        self._prefix = self._read = len(self.ids)
        return after[len(before) :] if after.startswith(before) else ""


@dataclass
class _Encoded:
    """Everything kept per image: the token block before BOS, the visual features and the block's KV cache."""

    key: str
    block_ids: torch.Tensor  # (1, P)
    block_indices: torch.Tensor  # (1, P) visual index per position, −1 at newlines
    features: torch.Tensor  # (N_vis, hidden) on the model device
    prefix_cache: Any  # transformers DynamicCache holding P positions


def _fork_cache(cache: Any) -> Any:
    """A cache that starts where `cache` is and grows on its own, sharing (not copying) the stored key/value tensors.

    Safe because `DynamicLayer.update` replaces its tensors by `torch.cat(...)` and never writes into them; any other
    layer type (static, quantised, offloaded caches may update in place) is deep-copied instead.
    """
    from transformers.cache_utils import DynamicLayer

    if type(cache).__name__ != "DynamicCache" or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return copy.deepcopy(cache)
    fork = copy.copy(cache)
    fork.layers = [copy.copy(layer) for layer in cache.layers]
    return fork


class DragonflyEngine:
    """Load once; `encode` an image once; `generate` / `stream` answers; `caption_batch` several images."""

    def __init__(
        self, model: Any, processor: Any, *, model_id: str = "dragonfly", quant: str = "none",
        checkpoint_sha256: str | None = None, n_params: int | None = None, max_cached_images: int = 3,
    ) -> None:
        self.model = model
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self._lock = threading.RLock()
        self._cache: LRUCache[str, _Encoded] = LRUCache(maxsize=max(1, int(max_cached_images)))
        self.device = next(model.parameters()).device
        self.eot_id = self._token_id(EOT_TOKEN)
        self.stop_ids = (self.eot_id, self._token_id(END_OF_TEXT_TOKEN))
        self.bos_id = self._token_id(BOS_TOKEN)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.stop_ids[1]
        self.max_positions = int(model.config.text_config.max_position_embeddings)
        vision = model.image_encoder
        self._compute_dtype = next(p.dtype for p in vision.parameters() if p.is_floating_point())
        self.info = EngineInfo(
            model_id=model_id,
            version=str(model.config.version),
            device=str(self.device),
            quant=quant,
            dtype=str(self._compute_dtype).removeprefix("torch."),
            checkpoint_sha256=checkpoint_sha256,
            n_params=int(n_params if n_params is not None else sum(p.numel() for p in model.parameters())),
        )

    @property
    def max_cached_images(self) -> int:
        """How many encoded images (with their prefilled image block) are kept, least recently used evicted first."""
        return int(self._cache.maxsize)

    @max_cached_images.setter
    def max_cached_images(self, value: int) -> None:
        with self._lock:
            old, self._cache = self._cache, LRUCache(maxsize=max(1, int(value)))
            kept = []
            while old:
                kept.append(old.popitem())  # least recently used first
            for key, entry in kept:  # re-inserted oldest first: the newest stay, in the same order
                self._cache[key] = entry

    # ------------------------------------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str = "auto", quant: str = "none", dtype: Any = None, **kwargs: Any
    ) -> DragonflyEngine:
        """Load a checkpoint folder or cached hub id (see models.loading.load) and wrap it."""
        from models.checkpoint import checkpoint_sha256
        from models.loading import load

        load_kwargs = {k: kwargs.pop(k) for k in ("verify", "hash_cache") if k in kwargs}
        loaded = load(path, device, quant, dtype, **load_kwargs)
        sha = checkpoint_sha256(loaded.folder, compute=True)  # from manifest/blob names when known, else hashed once
        return cls(
            loaded.model, loaded.processor, model_id=loaded.model_id, quant=loaded.plan.quant, checkpoint_sha256=sha,
            n_params=loaded.n_params, **kwargs,
        )

    def _token_id(self, token: str) -> int:
        tid = self.tokenizer.convert_tokens_to_ids(token)
        if tid is None or tid == self.tokenizer.unk_token_id:
            raise ModelError(f"the tokenizer has no {token} token: not a Llama-3 Dragonfly checkpoint")
        return int(tid)

    # ------------------------------------------------------------------------------------------------ encode
    def encode(self, image: Any) -> str:
        """Process and encode `image` (once: later calls hit the cache) and prefill its token block; returns its key."""
        with self._lock:
            return self._encoded(image).key

    def _encoded(self, image: Any, timings: Timings | None = None) -> _Encoded:
        import torch
        from transformers import DynamicCache

        from models._compat import cache_kwargs, output_cache

        if isinstance(image, str):  # a key returned by `encode`
            hit = self._cache.get(image)
            if hit is None:
                raise ModelError("that image key is not in the engine's cache (evicted, or never encoded): "
                                 "pass the image itself")
            return hit
        key = image_key(image)
        hit = self._cache.get(key)
        if hit is not None:
            if timings is not None:
                timings.cached_image = True
            return hit
        try:
            batch = self.processor(text=[""], images=[image], return_tensors="pt", is_generate=True)
        except ValueError as exc:
            raise ModelError(f"image could not be prepared for the model: {exc}") from exc
        ids = batch["input_ids"][0]
        bos = (ids == self.bos_id).nonzero()
        if bos.numel() == 0:
            raise ModelError("the processor output has no <|begin_of_text|> after the image block")
        p = int(bos[0, 0])
        block_ids = ids[:p].unsqueeze(0).to(self.device)
        block_indices = batch["image_patches_indices"][0, :p].unsqueeze(0).to(self.device)
        pixels = batch["image_patches"][0].to(self.device)
        mark = _stage(timings, "preprocess")
        with torch.inference_mode():
            features = self.model.get_image_features([pixels])[0]
            mark = _stage(timings, "clip", mark, sync=self.device)
            out = self.model(
                input_ids=block_ids,
                attention_mask=torch.ones_like(block_ids),
                image_patches_indices=block_indices,
                image_features=[features],
                **cache_kwargs(DynamicCache()),
                use_cache=True,
                logits_to_keep=1,
            )
            _stage(timings, "image_prefill", mark, sync=self.device)
        entry = _Encoded(key, block_ids, block_indices, features, output_cache(out))
        self._cache[key] = entry  # evicts the least recently used image beyond max_cached_images
        return entry

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # ------------------------------------------------------------------------------------------------ prompts
    def prompt_ids(self, turns: Sequence[Sequence[str]] | None, question: str, max_new_tokens: int,
                   block_len: int) -> torch.Tensor:
        """BOS + chat prompt token ids (1, T); the oldest turns are dropped if the context would overflow."""
        import torch

        from models.prompts import build_prompt

        history = list(turns or [])
        budget = self.max_positions - block_len - max_new_tokens
        while True:
            try:
                prompt = build_prompt(question, history)
            except (TypeError, ValueError) as exc:
                raise ModelError(f"invalid prompt: {exc}") from exc
            ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
            if not ids or ids[0] != self.bos_id:
                ids = [self.bos_id, *ids]
            if len(ids) <= budget:
                return torch.tensor([ids], dtype=torch.long, device=self.device)
            if not history:
                raise ModelError(
                    f"the question is too long: {len(ids)} tokens, but only {max(budget, 0)} fit after the image "
                    f"({block_len} positions) with {max_new_tokens} new tokens in {self.max_positions}"
                )
            history.pop(0)

    # ------------------------------------------------------------------------------------------------ generate
    def generate(
        self,
        image: Any,
        turns: Sequence[Sequence[str]] | None,
        question: str,
        *,
        max_new_tokens: int = 512,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        on_token: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        use_prefix_cache: bool = True,
        timings: Timings | None = None,
    ) -> Generation:
        """Answer `question` about `image` (or the key `encode` returned) after the earlier `(question, answer)` `turns`.

        `on_token(piece)` receives text pieces as they are decoded; setting `cancel` stops within one token.
        `use_prefix_cache=False` prefills the whole sequence (image block included) — the reference path (its
        prompt_prefill then covers the image block too). `timings`, when given, is filled (see `Timings`) and
        returned on the `Generation`.
        """
        import torch

        from models._compat import cache_kwargs

        if max_new_tokens < 1:
            raise ModelError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        with self._lock:
            if timings is not None:
                timings.reset()
                timings._marks["start"] = timings._marks["last"] = time.perf_counter()
            enc = self._encoded(image, timings)
            _stage(timings, "preprocess")  # a cached image: its hashing; else the bookkeeping after the prefill
            text_ids = self.prompt_ids(turns, question, max_new_tokens, enc.block_ids.shape[1])
            _stage(timings, "preprocess")
            input_ids = torch.cat([enc.block_ids, text_ids], dim=1)
            extra: dict[str, Any] = {}
            if use_prefix_cache:
                extra.update(cache_kwargs(_fork_cache(enc.prefix_cache)))
            else:
                pad = torch.full((1, text_ids.shape[1]), -1, dtype=torch.long, device=self.device)
                extra["image_patches_indices"] = torch.cat([enc.block_indices, pad], dim=1)
                extra["image_features"] = [enc.features]
            generation = self._decode_loop(
                input_ids, torch.ones_like(input_ids), extra, max_new_tokens=max_new_tokens, do_sample=do_sample,
                temperature=temperature, top_p=top_p, seed=seed, on_token=on_token, cancel=cancel, timings=timings,
            )[0]
        if timings is not None:
            timings._marks.clear()
            return dataclasses.replace(generation, timings=timings)
        return generation

    def stream(self, image: Any, turns: Sequence[Sequence[str]] | None, question: str, **kwargs: Any) -> Iterator[str]:
        """`generate` as an iterator of text pieces; closing the iterator early cancels the generation.

        The finished `Generation` is the iterator's return value (`StopIteration.value`).
        """
        pieces: queue.Queue[Any] = queue.Queue()
        done = object()
        cancel: threading.Event = kwargs.pop("cancel", None) or threading.Event()
        user_callback = kwargs.pop("on_token", None)
        result: dict[str, Any] = {}

        def callback(piece: str) -> None:
            pieces.put(piece)
            if user_callback is not None:
                user_callback(piece)

        def work() -> None:
            try:
                result["generation"] = self.generate(image, turns, question, on_token=callback, cancel=cancel, **kwargs)
            except BaseException as exc:  # noqa: BLE001 — handed to the consumer's thread below
                result["error"] = exc
            finally:
                pieces.put(done)

        worker = threading.Thread(target=work, name="dragonfly-generate", daemon=True)
        worker.start()
        try:
            while (item := pieces.get()) is not done:
                yield item
        finally:
            if worker.is_alive():
                cancel.set()
            worker.join()
        if "error" in result:
            raise result["error"]
        return result["generation"]

    def caption_batch(
        self,
        images: Sequence[Any],
        prompt: str,
        *,
        max_new_tokens: int = 128,
        batch_size: int = 4,
        cancel: threading.Event | None = None,
        on_result: Callable[[int, Generation], None] | None = None,
    ) -> list[Generation]:
        """Greedy answers to the same `prompt` for several images, `batch_size` images per `generate` (left-padded).

        `on_result(i, generation)` is called as each batch finishes (for resumable jobs). On cancel the list holds the
        results so far (the last batch's answers marked "cancelled").
        """
        from models.prompts import build_prompt

        if batch_size < 1:
            raise ModelError(f"batch_size must be at least 1, got {batch_size}")
        text = build_prompt(prompt)
        results: list[Generation] = []
        with self._lock:
            for start in range(0, len(images), batch_size):
                if cancel is not None and cancel.is_set():
                    break
                chunk = list(images[start : start + batch_size])
                generations = self._generate_batch(chunk, [text] * len(chunk), max_new_tokens, cancel, first=start)
                for offset, generation in enumerate(generations):
                    results.append(generation)
                    if on_result is not None:
                        on_result(start + offset, generation)
        return results

    def answer_batch(
        self,
        images: Sequence[Any],
        questions: Sequence[str],
        *,
        max_new_tokens: int = 32,
        cancel: threading.Event | None = None,
    ) -> list[Generation]:
        """Greedy answers to a different question about each image, all in one left-padded `generate` call.

        The batch form of `generate` without history (a benchmark batch: one question per image); each answer equals
        the one `generate(image, None, question)` gives (tested in the eval suite).
        """
        from models.prompts import build_prompt

        if len(images) != len(questions):
            raise ModelError(f"{len(images)} images but {len(questions)} questions")
        if not images:
            return []
        try:
            texts = [build_prompt(q) for q in questions]
        except (TypeError, ValueError) as exc:
            raise ModelError(f"invalid prompt: {exc}") from exc
        with self._lock:
            return self._generate_batch(list(images), texts, max_new_tokens, cancel, first=0)

    def _generate_batch(
        self, images: list[Any], texts: list[str], max_new_tokens: int, cancel: threading.Event | None, *, first: int
    ) -> list[Generation]:
        """One left-padded greedy `generate` over (image, prompt text) pairs; caller holds the lock."""
        try:
            batch = self.processor(text=texts, images=images, return_tensors="pt",
                                   max_length=2 * self.max_positions, is_generate=True)
        except ValueError as exc:
            raise ModelError(f"images {first}..{first + len(images) - 1}: {exc}") from exc
        extra = {
            "image_patches": [p.to(self.device) for p in batch["image_patches"]],
            "image_patches_indices": batch["image_patches_indices"].to(self.device),
        }
        return self._decode_loop(
            batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device), extra,
            max_new_tokens=max_new_tokens, do_sample=False, temperature=1.0, top_p=1.0, seed=None,
            on_token=None, cancel=cancel,
        )

    # ------------------------------------------------------------------------------------------------ embeddings
    def crop_pixels(self, images: Sequence[Any]) -> Any:
        """float32 `(n, 3, S, S)`: each image as ONE model crop, exactly as the processor makes its global crop.

        Same conversion (`to_rgb`), the same Pillow BICUBIC stretch to `S × S` and the same bit-exact normaliser as
        `processor.image_patches` uses for crop 0, so a tile's embedding here equals the global-crop embedding the
        full pipeline would compute for it.
        """
        import numpy as np
        from PIL import Image

        from models._pixels import to_rgb

        side = int(self.processor.variant_spec.crop_size)
        out = np.empty((len(images), 3, side, side), dtype=np.float32)
        for i, image in enumerate(images):
            try:
                rgb = to_rgb(image, f"images[{i}]")
            except ValueError as exc:
                raise ModelError(str(exc)) from exc
            crop = np.asarray(rgb.resize((side, side), Image.Resampling.BICUBIC))
            self.processor.normalizer.crops(crop[None], out[i : i + 1])
        return out

    def mean_embeddings(self, images: Sequence[Any], batch_size: int = 8) -> Any:
        """`(n, D)` float32 numpy: the mean over tokens (CLS included) of each image's projected single crop.

        This is the summary vector Dragonfly v1's zoom-in rule compares (`zoom_select`: CLIP `hidden_states[-2]`
        → `vision_embed_tokens` → mean over the crop's tokens); slide-level selection scores tiles against a slide
        overview with it. `batch_size` crops go through the vision tower per call, so the cost per tile is one
        crop's worth of tower work and the batch amortises the per-call overhead.
        """
        import numpy as np
        import torch

        if batch_size < 1:
            raise ModelError(f"batch_size must be at least 1, got {batch_size}")
        chunks: list[np.ndarray] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(images), batch_size):
                pixels = torch.from_numpy(self.crop_pixels(images[start : start + batch_size]))
                projected = self.model.encode_crops(pixels)  # (b, tokens, D)
                chunks.append(projected.float().mean(dim=1).cpu().numpy())
        if not chunks:
            hidden = int(self.model.config.text_config.hidden_size)
            return np.zeros((0, hidden), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)

    # ------------------------------------------------------------------------------------------------ decoding
    def _decode_loop(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, extra: dict[str, Any], *,
        max_new_tokens: int, do_sample: bool, temperature: float, top_p: float, seed: int | None,
        on_token: Callable[[str], None] | None, cancel: threading.Event | None, timings: Timings | None = None,
    ) -> list[Generation]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        decoder = IncrementalDecoder(self.tokenizer)  # used only when someone listens (on_token)
        stop_ids = set(self.stop_ids)
        streamed_done = [False]

        class _Streamer(BaseStreamer):
            """Receives each new token (batch of one) right after it is chosen; the first call is the prompt."""

            def __init__(self) -> None:
                self.prompt_seen = False

            def put(self, value: torch.Tensor) -> None:
                if not self.prompt_seen:
                    self.prompt_seen = True
                    return
                if timings is not None and "first" not in timings._marks:
                    _first_token(timings)
                if on_token is None:  # installed only to time the first token
                    return
                for token in value.reshape(-1).tolist():
                    if streamed_done[0] or token in stop_ids:
                        streamed_done[0] = True
                        continue
                    piece = decoder.push(token)
                    if piece and on_token is not None:
                        on_token(piece)

            def end(self) -> None:
                if on_token is None:
                    return
                piece = decoder.flush()
                if piece and on_token is not None:
                    on_token(piece)

        class _Cancelled(StoppingCriteria):
            def __call__(self, ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
                flag = cancel is not None and cancel.is_set()
                return torch.full((ids.shape[0],), flag, dtype=torch.bool, device=ids.device)

        options: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": do_sample,
            "eos_token_id": list(self.stop_ids),
            "pad_token_id": self.pad_id,
            "stopping_criteria": StoppingCriteriaList([_Cancelled()]),
        }
        if do_sample:
            if temperature <= 0:
                raise ModelError(f"temperature must be positive when sampling, got {temperature}")
            if not 0 < top_p <= 1:
                raise ModelError(f"top_p must be in (0, 1], got {top_p}")
            options.update(temperature=float(temperature), top_p=float(top_p), top_k=0)
        if on_token is not None or timings is not None:  # the streamer also times the first token
            if input_ids.shape[0] != 1:
                raise ModelError("streaming needs a batch of one")
            options["streamer"] = _Streamer()
        hooks = _prefill_hooks(self.model, timings, self.device) if timings is not None else []
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.inference_mode(), torch.random.fork_rng(devices=devices, enabled=seed is not None):
                if seed is not None:
                    torch.manual_seed(int(seed))
                output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **options, **extra)
        finally:
            for hook in hooks:
                hook.remove()
        new_tokens = output[:, input_ids.shape[1] :].tolist()
        cancelled = cancel is not None and cancel.is_set()
        generations = []
        for row in new_tokens:
            stop = next((i for i, t in enumerate(row) if t in stop_ids), None)
            ids = row if stop is None else row[:stop]
            if stop is not None:
                reason = "eos"
            else:
                reason = "cancelled" if cancelled and len(row) < max_new_tokens else "max_new_tokens"
            text = self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            generations.append(Generation(text=text, token_ids=tuple(ids), stop_reason=reason))
        return generations


# ---------------------------------------------------------------------------------------------------- timings
def _sync(device: Any) -> None:
    """Wait for queued GPU work, so a stage's time is its own and not the next stage's (no-op on CPU)."""
    if device is not None and getattr(device, "type", "cpu") == "cuda":
        import torch

        torch.cuda.synchronize(device)


def _stage(timings: Timings | None, name: str, since: float | None = None, *, sync: Any = None) -> float:
    """Add the time since `since` (default: the last mark) to stage `name`; returns the new mark (0.0 if not timing)."""
    if timings is None:
        return 0.0
    _sync(sync)
    now = time.perf_counter()
    start = timings._marks.get("last", now) if since is None else since
    setattr(timings, name, getattr(timings, name) + (now - start))
    timings._marks["last"] = now
    return now


def _prefill_hooks(model: Any, timings: Timings, device: Any) -> list[Any]:
    """Forward hooks that time `generate`'s first forward: prompt_prefill ends when that forward returns."""

    def after(module: Any, args: Any, output: Any) -> None:
        if "prefill_end" not in timings._marks:
            _sync(device)
            now = time.perf_counter()
            timings.prompt_prefill += now - timings._marks.get("last", now)
            timings._marks["prefill_end"] = timings._marks["last"] = now

    return [model.register_forward_hook(after)]


def _first_token(timings: Timings) -> None:
    """Called by the streamer when the first new token arrives: closes first_token and the total."""
    now = time.perf_counter()
    timings._marks["first"] = now
    if "prefill_end" in timings._marks:
        timings.first_token += now - timings._marks["prefill_end"]
    else:  # no forward hook fired (a model whose generate bypasses __call__): the whole span counts as prefill
        timings.prompt_prefill += now - timings._marks.get("last", now)
    timings.total = now - timings._marks.get("start", now)
