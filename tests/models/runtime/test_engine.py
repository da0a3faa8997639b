"""DragonflyEngine on the golden tiny checkpoints: prefix cache exactness, streaming, cancel, batching, locking."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

from models.engine import DragonflyEngine, Generation, IncrementalDecoder, image_key
from models.errors import ModelError
from models.prompts import build_prompt

QUESTION = "Provide a brief description of the given image."
TURNS = [("What modality is this?", "A chest radiograph."), ("Any effusion?", "No pleural effusion is seen.")]
FOLLOW_UP = "Is the heart size normal?"


def _image(golden_dir: Path, version: str, case: str = "pub_512x512") -> Image.Image:
    return Image.open(golden_dir / f"cases-{version}" / f"{case}.png").convert("RGB")


@pytest.fixture(scope="module", params=["v2", "v1"])
def engine(request: pytest.FixtureRequest, golden_dir: Path) -> DragonflyEngine:
    return DragonflyEngine.from_pretrained(golden_dir / f"dragonfly-{request.param}-tiny", device="cpu", dtype="float32")


def fresh_run(engine: DragonflyEngine, image: Image.Image, turns: list, question: str, n: int) -> tuple[int, ...]:
    """The reference without any engine machinery: processor output straight into the model's generate()."""
    batch = engine.processor(text=[build_prompt(question, turns)], images=[image], max_length=8192,
                             return_tensors="pt", is_generate=True)
    with torch.inference_mode():
        out = engine.model.generate(**batch, max_new_tokens=n, do_sample=False, eos_token_id=list(engine.stop_ids),
                                    pad_token_id=engine.pad_id)
    new = out[0, batch["input_ids"].shape[1]:].tolist()
    return tuple(new[: next((i for i, t in enumerate(new) if t in engine.stop_ids), len(new))])


class TestPrefixCache:
    def test_follow_ups_equal_fresh_runs_and_prefill_only_the_prompt(self, engine: DragonflyEngine,
                                                                     golden_dir: Path) -> None:
        image = _image(golden_dir, engine.info.version)
        engine.encode(image)
        entry = engine._cache[image_key(image)]
        block = entry.block_ids.shape[1]
        assert block == {"v2": 2098, "v1": 867}[engine.info.version]
        assert entry.prefix_cache.get_seq_length() == block
        stored = [(layer.keys.clone(), layer.values.clone()) for layer in entry.prefix_cache.layers]

        chunk_lengths: list[int] = []
        steps: list[torch.Tensor] = []  # next-token logits of every forward, to compare more than the argmax
        hooks = [
            engine.model.language_model.register_forward_pre_hook(
                lambda _m, _a, kw: chunk_lengths.append(kw["inputs_embeds"].shape[1]), with_kwargs=True),
            engine.model.register_forward_hook(lambda _m, _a, out: steps.append(out.logits[0, -1].clone())),
        ]
        try:
            first = engine.generate(image, [], QUESTION, max_new_tokens=10)
            follow = engine.generate(image, TURNS, FOLLOW_UP, max_new_tokens=10)
            cached_logits = torch.stack(steps[-10:])
            engine_chunks = list(chunk_lengths)
            steps.clear()
            fresh_follow = fresh_run(engine, image, TURNS, FOLLOW_UP, 10)
            fresh_logits = torch.stack(steps)
        finally:
            for hook in hooks:
                hook.remove()
        prompt_len = len(engine.tokenizer(build_prompt(FOLLOW_UP, TURNS))["input_ids"])
        assert prompt_len in engine_chunks and max(engine_chunks) < block  # the image block was never re-run
        assert entry.prefix_cache.get_seq_length() == block  # generation worked on a fork
        for layer, (keys, values) in zip(entry.prefix_cache.layers, stored, strict=True):  # and never wrote into the prefix
            assert torch.equal(layer.keys, keys) and torch.equal(layer.values, values)

        assert first.token_ids == fresh_run(engine, image, [], QUESTION, 10)
        assert follow.token_ids == fresh_follow
        # Tokens alone are a weak check on a tiny random model (keys of the image block scaled by 5 % leave them
        # unchanged); the logits of every step must agree to float32 noise (measured ≤ 1e-6; that change: ≥ 0.07).
        assert float((cached_logits - fresh_logits).abs().max()) <= 1e-4 * float(fresh_logits.abs().max())
        without = engine.generate(image, TURNS, FOLLOW_UP, max_new_tokens=10, use_prefix_cache=False)
        assert without.token_ids == follow.token_ids and without.text == follow.text
        assert len(follow.token_ids) == 10 and follow.stop_reason == "max_new_tokens"

    def test_encode_once_per_image(self, engine: DragonflyEngine, golden_dir: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
        engine.clear_cache()
        calls = []
        original = engine.model.get_image_features
        monkeypatch.setattr(engine.model, "get_image_features", lambda p: calls.append(1) or original(p))
        a, b = _image(golden_dir, engine.info.version), _image(golden_dir, engine.info.version, "pub_224x224")
        key = engine.encode(a)
        assert engine.encode(a.copy()) == key and len(calls) == 1  # same pixels, another object: cached
        by_image = engine.generate(a, [], QUESTION, max_new_tokens=3)
        assert engine.generate(key, [], QUESTION, max_new_tokens=3) == by_image  # the key stands for the image
        assert len(calls) == 1
        engine.max_cached_images = 1
        try:
            assert engine.encode(b) != key and len(calls) == 2  # b evicts a
            engine.encode(a)  # a is encoded again and evicts b
            assert len(calls) == 3 and list(engine._cache) == [key]
            with pytest.raises(ModelError, match="image key is not in the engine's cache"):
                engine.generate(image_key(b), [], QUESTION, max_new_tokens=1)
        finally:
            engine.max_cached_images = 3


def test_cache_fork_shares_the_prefix_and_grows_alone() -> None:
    from transformers import DynamicCache

    from models.engine import _fork_cache

    cache = DynamicCache()
    cache.update(torch.ones(1, 2, 5, 4), torch.ones(1, 2, 5, 4), 0)
    fork = _fork_cache(cache)
    assert fork.layers[0].keys.data_ptr() == cache.layers[0].keys.data_ptr()  # no copy of the prefix
    fork.update(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), 0)
    fork.update(torch.zeros(1, 2, 8, 4), torch.zeros(1, 2, 8, 4), 1)  # a layer the prefix does not have
    assert (fork.get_seq_length(), cache.get_seq_length(), len(cache.layers)) == (8, 5, 1)
    assert bool((cache.layers[0].keys == 1).all())


class TestStreamingAndCancel:
    def test_stream_pieces_make_the_text(self, engine: DragonflyEngine, golden_dir: Path) -> None:
        image = _image(golden_dir, engine.info.version)
        seen: list[str] = []
        iterator = engine.stream(image, [], QUESTION, max_new_tokens=8, on_token=seen.append)
        pieces = []
        while True:
            try:
                pieces.append(next(iterator))
            except StopIteration as stop:
                result: Generation = stop.value
                break
        assert pieces == seen and "".join(pieces) == result.text and len(pieces) > 1
        assert result.token_ids == engine.generate(image, [], QUESTION, max_new_tokens=8).token_ids

    def test_cancel_stops_within_one_token(self, engine: DragonflyEngine, golden_dir: Path) -> None:
        image = _image(golden_dir, engine.info.version)
        cancel = threading.Event()
        pieces: list[str] = []
        result = engine.generate(image, [], QUESTION, max_new_tokens=50, cancel=cancel,
                                 on_token=lambda piece: pieces.append(piece) or cancel.set())
        # Cancel was set while the first token's text was delivered: at most the token in flight follows it.
        assert result.stop_reason == "cancelled" and len(result.token_ids) <= 2
        assert "".join(pieces) == result.text
        cancel.set()  # set before the call: the prefill's token only
        assert len(engine.generate(image, [], QUESTION, max_new_tokens=50, cancel=cancel).token_ids) == 1

    def test_closing_the_stream_cancels_and_frees_the_engine(self, engine: DragonflyEngine, golden_dir: Path) -> None:
        image = _image(golden_dir, engine.info.version)
        iterator = engine.stream(image, [], QUESTION, max_new_tokens=200)
        next(iterator)
        iterator.close()  # joins the worker: the lock must be free again right away
        assert engine._lock.acquire(blocking=False)
        engine._lock.release()

    def test_stop_token_ends_the_answer(self, engine: DragonflyEngine, golden_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
        image = _image(golden_dir, engine.info.version)
        assert engine.eot_id == 128009 and engine.stop_ids == (128009, 128001)
        free = engine.generate(image, [], QUESTION, max_new_tokens=6)
        # Pretend the model's third token is <|eot_id|>: the answer must end before it, with reason "eos"
        monkeypatch.setattr(engine, "stop_ids", (free.token_ids[2], 128001))
        stopped = engine.generate(image, [], QUESTION, max_new_tokens=6)
        assert stopped.token_ids == free.token_ids[:2] and stopped.stop_reason == "eos"

    def test_sampling_is_seeded_and_leaves_global_rng_alone(self, engine: DragonflyEngine, golden_dir: Path) -> None:
        image = _image(golden_dir, engine.info.version)
        state = torch.random.get_rng_state()
        runs = [engine.generate(image, [], QUESTION, max_new_tokens=6, do_sample=True, temperature=1.0, top_p=0.95,
                                seed=s).token_ids for s in (7, 7, 8)]
        assert runs[0] == runs[1] and runs[0] != runs[2]
        assert torch.equal(state, torch.random.get_rng_state())
        with pytest.raises(ModelError, match="temperature must be positive"):
            engine.generate(image, [], QUESTION, max_new_tokens=2, do_sample=True, temperature=0)


def test_incremental_decoder_never_splits_characters(golden_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(golden_dir / "tokenizer")
    text = "Œdème péricardique 5 µm ± 2°, 肺 结节 🫁 ok"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids)  # some token really is a partial character
    decoder = IncrementalDecoder(tokenizer)
    pieces = [decoder.push(i) for i in ids] + [decoder.flush()]
    assert "".join(pieces) == text and not any("\ufffd" in p for p in pieces)


def test_caption_batch_equals_one_by_one(engine: DragonflyEngine, golden_dir: Path) -> None:
    images = [_image(golden_dir, engine.info.version, c) for c in ("pub_512x512", "pub_1000x250_wide", "pub_224x224")]
    done: list[int] = []
    batched = engine.caption_batch(images, QUESTION, max_new_tokens=6, batch_size=2,
                                   on_result=lambda i, g: done.append(i))
    single = [engine.generate(im, [], QUESTION, max_new_tokens=6) for im in images]
    assert done == [0, 1, 2]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]
    assert len({g.token_ids for g in batched}) > 1  # the answers depend on the image


def test_one_generation_at_a_time(engine: DragonflyEngine, golden_dir: Path) -> None:
    image = _image(golden_dir, engine.info.version)
    expected = engine.generate(image, TURNS, FOLLOW_UP, max_new_tokens=5).token_ids
    results: list[tuple[int, ...]] = []
    threads = [threading.Thread(target=lambda: results.append(
        engine.generate(image, TURNS, FOLLOW_UP, max_new_tokens=5).token_ids)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == [expected] * 3


def test_context_overflow_drops_oldest_turns(engine: DragonflyEngine, golden_dir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    image = _image(golden_dir, engine.info.version)
    block = engine._encoded(image).block_ids.shape[1]
    only_last = engine.prompt_ids(TURNS[1:], FOLLOW_UP, 4, block).shape[1]
    monkeypatch.setattr(engine, "max_positions", block + only_last + 4)
    assert torch.equal(engine.prompt_ids(TURNS, FOLLOW_UP, 4, block), engine.prompt_ids(TURNS[1:], FOLLOW_UP, 4, block))
    with pytest.raises(ModelError, match="the question is too long"):
        engine.generate(image, [], FOLLOW_UP * 20, max_new_tokens=4)


def test_info_and_bad_input(engine: DragonflyEngine, golden_dir: Path) -> None:
    info = engine.info
    assert (info.device, info.quant, info.dtype) == ("cpu", "none", "float32")
    assert info.model_id == f"dragonfly-{info.version}-tiny" and len(info.checkpoint_sha256) == 64
    assert info.n_params == {"v2": 4_167_008, "v1": 4_229_632}[info.version]
    with pytest.raises(ModelError, match="expected a PIL image or a numpy array, got int"):
        engine.encode(42)
    with pytest.raises(ModelError, match="image key is not in the engine's cache"):
        engine.encode("not an image")
    with pytest.raises(ModelError, match="max_new_tokens must be at least 1"):
        engine.generate(_image(golden_dir, info.version), [], QUESTION, max_new_tokens=0)
    with pytest.raises(ModelError, match="invalid prompt.*special token"):
        engine.generate(_image(golden_dir, info.version), [], "hi <|eot_id|>", max_new_tokens=1)


def test_stream_raises_the_generation_error_in_the_consumer(engine: DragonflyEngine, golden_dir: Path) -> None:
    image = _image(golden_dir, engine.info.version)
    with pytest.raises(ModelError, match="max_new_tokens must be at least 1"):
        list(engine.stream(image, [], QUESTION, max_new_tokens=0))


def test_caption_batch_cancel_keeps_finished_batches(engine: DragonflyEngine, golden_dir: Path) -> None:
    images = [_image(golden_dir, engine.info.version, c) for c in ("pub_512x512", "pub_224x224", "pub_800x600")]
    cancel = threading.Event()
    done = engine.caption_batch(images, QUESTION, max_new_tokens=3, batch_size=1, cancel=cancel,
                                on_result=lambda i, g: cancel.set())  # Stop pressed while the first one finishes
    assert len(done) == 1 and len(done[0].token_ids) == 3  # the later batches never started
    assert engine.caption_batch(images, QUESTION, max_new_tokens=3, cancel=cancel) == []  # set before the call

    cancel.clear()
    forwards: list[int] = []

    def press_stop_on_third_step(*_: object) -> None:  # Stop pressed during the third decoding step of a batch
        forwards.append(1)
        if len(forwards) == 3:
            cancel.set()

    hook = engine.model.register_forward_hook(press_stop_on_third_step)
    try:
        midway = engine.caption_batch(images, QUESTION, max_new_tokens=50, batch_size=2, cancel=cancel)
    finally:
        hook.remove()
    assert len(midway) == 2  # the batch that was running; the third image was never started
    assert all(len(g.token_ids) <= 3 and g.stop_reason in ("cancelled", "eos") for g in midway)
    assert any(g.stop_reason == "cancelled" for g in midway)


def test_sixteen_bit_and_gray_inputs_are_the_documented_rgb(engine: DragonflyEngine) -> None:
    """A raw 16-bit array is min-max scaled to 8-bit gray, then RGB: the same answer as that RGB image."""
    import numpy as np

    from models._pixels import to_rgb

    ramp = (np.add.outer(np.arange(180), np.arange(240)) * 37 % 4096).astype(np.uint16)  # 12-bit detector values
    rgb = to_rgb(ramp)
    gray = rgb.convert("L")
    answers = {name: engine.generate(image, [], QUESTION, max_new_tokens=4).token_ids
               for name, image in (("uint16", ramp), ("rgb", rgb), ("L", gray))}
    assert answers["uint16"] == answers["rgb"] == answers["L"]
    assert len({image_key(ramp), image_key(rgb), image_key(gray)}) == 3  # different inputs, each cached on its own
