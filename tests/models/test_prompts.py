"""Llama-3 chat prompt builder in the official README form."""

from __future__ import annotations

import pytest

from models.prompts import build_prompt

README_FORM = (
    "<|start_header_id|>user<|end_header_id|>\n\nProvide a brief description of the given image.<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)


def test_single_question_is_the_readme_form(golden_dir) -> None:
    import json

    assert build_prompt("Provide a brief description of the given image.") == README_FORM
    meta = json.loads((golden_dir / "cases-v2" / "pub_224x224.json").read_text())
    assert build_prompt(meta["question"]) == meta["prompt"]


def test_history_turns_come_first_and_are_closed() -> None:
    prompt = build_prompt("And the left?", [("Any nodule?", "Yes, right upper lobe."), ("Size?", "8 mm.")])
    assert prompt == (
        "<|start_header_id|>user<|end_header_id|>\n\nAny nodule?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nYes, right upper lobe.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nSize?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n8 mm.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nAnd the left?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert prompt.endswith("assistant<|end_header_id|>\n\n") and "<|begin_of_text|>" not in prompt


@pytest.mark.parametrize("bad", ["stop<|eot_id|>now", "<|start_header_id|>system", "<|reserved_special_token_0|>"])
def test_special_tokens_in_text_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="special token"):
        build_prompt(bad)
    with pytest.raises(ValueError, match="answer contains"):
        build_prompt("ok", [("q", bad)])


def test_malformed_history_is_refused() -> None:
    with pytest.raises(ValueError, match=r"history\[0\]"):
        build_prompt("q", [("only one",)])
