"""Golden tests: our processor and model against tensors produced by the unmodified official Dragonfly code.

Tolerances are those of ../shared/golden/README.md: exact ids, indices, shapes, grids and v1 crop selection;
pixels within 0.05 (max) / 0.005 (mean); model tensors within 1e-3 × max|reference|; greedy tokens exact up to the
first step whose top-2 margin is below 1e-3 × the logit scale.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from models._geometry import high_resolution, medium_resolution
from models.variants import VARIANTS

CASES = ["pub_224x224", "pub_512x512", "pub_800x600", "pub_1000x250_wide", "pub_250x1000_tall"]
VERSIONS = ["v2", "v1"]
GoldenCase = Any  # tests/models/conftest.py: GoldenCase (test modules do not import each other)
ALL = [(v, c) for v in VERSIONS for c in CASES]
IDS = [f"{v}-{c}" for v, c in ALL]
REL_TOL = 1e-3


def _close(ours: torch.Tensor, ref: torch.Tensor, scale: float | None = None) -> None:
    scale = float(ref.abs().max()) if scale is None else scale
    diff = float((ours.double() - ref.double()).abs().max())
    assert ours.shape == ref.shape
    assert diff <= REL_TOL * scale, f"max |diff| {diff:.3g} > {REL_TOL} x {scale:.3g}"


def _outputs(case: GoldenCase, model: Any) -> dict[str, Any]:
    """One forward per case (cached): visual features, hidden states, last-8 logits."""
    if "forward" not in case.cache:
        with torch.no_grad():
            feats = model.get_image_features(case.batch["image_patches"])
            out = model(
                input_ids=case.batch["input_ids"],
                attention_mask=case.batch["attention_mask"],
                image_patches_indices=case.batch["image_patches_indices"],
                image_features=feats,
                use_cache=False,
                output_hidden_states=True,
            )
        case.cache["forward"] = {
            "visual_embeds": feats[0],
            "hidden_states_mean": torch.stack([h[0].mean(0) for h in out.hidden_states]),
            "last_hidden_last8": out.hidden_states[-1][0, -8:],
            "logits_last8": out.logits[0, -8:],
        }
    return case.cache["forward"]


def _stable_steps(case: GoldenCase) -> int:
    """Number of leading greedy steps whose top-2 margin is large enough to be compared exactly."""
    margins = case.ref["greedy_nocache_top2_margin"]
    fragile = (margins < REL_TOL * case.logit_scale).nonzero()
    return int(fragile[0, 0]) if len(fragile) else len(margins)


@pytest.fixture(params=ALL, ids=IDS)
def case(request: pytest.FixtureRequest, golden_cases: dict) -> GoldenCase:
    return golden_cases[request.param]


def test_token_layout_is_exact(case: GoldenCase) -> None:
    for key in ("input_ids", "attention_mask", "image_patches_indices"):
        assert torch.equal(case.batch[key], case.ref[key]), key
    assert list(case.batch["image_patches"][0].shape) == case.ref["image_patches_shape"].tolist()


def test_grids_are_exact(case: GoldenCase) -> None:
    size = tuple(case.meta["image_size_wh"])
    variant = VARIANTS[case.version]
    assert case.batch["image_patches"][0].shape[-1] == variant.crop_size
    assert list(medium_resolution(size, variant)) == case.ref["medium_resolution_wh"].tolist()
    assert list(high_resolution(size, variant)) == case.ref["high_resolution_wh"].tolist()


def test_pixels_match(case: GoldenCase) -> None:
    pixels = case.batch["image_patches"][0]
    assert pixels.dtype == torch.float32
    sample = pixels.reshape(-1)[case.ref["pixel_sample_positions"].long()]
    diff = (sample - case.ref["pixel_sample_values"]).abs()
    assert float(diff.max()) <= 0.05 and float(diff.mean()) <= 0.005
    arr = pixels.double().numpy()
    mean = torch.from_numpy(arr.mean(axis=(2, 3)))
    std = torch.from_numpy(arr.std(axis=(2, 3)))
    assert float((mean - case.ref["crop_channel_mean"]).abs().max()) <= 0.005
    assert float((std - case.ref["crop_channel_std"]).abs().max()) <= 0.005


def test_pixels_are_bit_identical(case: GoldenCase) -> None:
    """Stricter than the README's tolerance: the sampled pixels equal the official ones exactly (Pillow-exact resizes,
    table-exact normalisation), so the fast pixel path changes no number the model sees."""
    sample = case.batch["image_patches"][0].reshape(-1)[case.ref["pixel_sample_positions"].long()]
    assert torch.equal(sample, case.ref["pixel_sample_values"])


def test_visual_embeds(case: GoldenCase, dragonfly_models: dict) -> None:
    _close(_outputs(case, dragonfly_models[case.version])["visual_embeds"], case.ref["visual_embeds"])


def test_hidden_states(case: GoldenCase, dragonfly_models: dict) -> None:
    out = _outputs(case, dragonfly_models[case.version])
    _close(out["hidden_states_mean"], case.ref["hidden_states_mean"])
    _close(out["hidden_states_mean"][-1], case.ref["last_hidden_mean"])
    _close(out["last_hidden_last8"], case.ref["last_hidden_last8"])


def test_logits(case: GoldenCase, dragonfly_models: dict) -> None:
    logits = _outputs(case, dragonfly_models[case.version])["logits_last8"]
    scale = case.logit_scale
    _close(logits[:, case.ref["logits_vocab_ids"].long()], case.ref["logits_last8_sampled"], scale)
    top = logits.topk(16, dim=-1)
    _close(top.values, case.ref["logits_last8_topk_values"], scale)
    ref_vals, ref_ids = case.ref["logits_last8_topk_values"], case.ref["logits_last8_topk_ids"]
    gaps = (ref_vals[:, :-1] - ref_vals[:, 1:]).abs()
    checked = 0
    for pos in range(ref_ids.shape[0]):
        for k in range(ref_ids.shape[1]):
            before_ok = k == 0 or gaps[pos, k - 1] > REL_TOL * scale
            after_ok = k == ref_ids.shape[1] - 1 or gaps[pos, k] > REL_TOL * scale
            if before_ok and after_ok:
                assert int(top.indices[pos, k]) == int(ref_ids[pos, k]), (pos, k)
                checked += 1
    assert checked > ref_ids.numel() // 2  # the margin rule must not silently skip most of the comparison
    stats = torch.stack(
        [logits.max(-1).values, logits.min(-1).values, logits.mean(-1), logits.std(-1, correction=0), logits.logsumexp(-1)],
        dim=-1,
    )
    _close(stats, case.ref["logits_last8_stats"], scale)


def test_greedy_without_cache(case: GoldenCase, dragonfly_models: dict) -> None:
    model = dragonfly_models[case.version]
    feats = [_outputs(case, model)["visual_embeds"]]
    ids, indices = case.batch["input_ids"], case.batch["image_patches_indices"]
    steps = _stable_steps(case)
    assert steps >= 5
    tokens = []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=ids, image_patches_indices=indices, image_features=feats, use_cache=False, logits_to_keep=1).logits
            nxt = logits[0, -1].argmax()
            tokens.append(int(nxt))
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    assert tokens == case.ref["greedy_nocache_ids"][:steps].tolist()


def test_generate_matches_official(case: GoldenCase, dragonfly_models: dict) -> None:
    model = dragonfly_models[case.version]
    with torch.no_grad():
        out = model.generate(**case.batch, max_new_tokens=8, do_sample=False, eos_token_id=[128000, 128009])
    new = out[0, case.batch["input_ids"].shape[1] :].tolist()
    steps = _stable_steps(case)
    assert new[:steps] == case.ref["generated_ids"][:steps].tolist()


@pytest.mark.parametrize("name", CASES)
def test_v1_zoom_selection(name: str, golden_cases: dict, dragonfly_models: dict) -> None:
    case = golden_cases[("v1", name)]
    model = dragonfly_models["v1"]
    with torch.no_grad():
        projected = model.encode_crops(case.batch["image_patches"][0])
    zoom = model.zoom_select(projected[:5], projected[5:])
    _close(zoom.scores, case.ref["zoom_scores"])
    assert zoom.selected.tolist() == case.ref["zoom_selected"].tolist()
    assert (zoom.selected + 5).tolist() == case.ref["zoom_selected_crop_index"].tolist()
