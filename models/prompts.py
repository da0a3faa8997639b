"""Llama-3 chat prompts in the form Dragonfly was trained on (torch-free).

The official README form, without BOS (the tokenizer adds it) and without any image tag (the image block sits
before BOS, put there by the processor):

    <|start_header_id|>user<|end_header_id|>\\n\\n{question}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n

Earlier turns about the same image come first, each answer closed by `<|eot_id|>` as in the training captions
(`…assistant<|end_header_id|>\\n\\n{answer}<|eot_id|>`). No system prompt: the official examples use none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["EOT", "build_prompt", "user_turn", "assistant_turn"]

START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOT = "<|eot_id|>"
_SPECIALS = (START_HEADER, END_HEADER, EOT, "<|begin_of_text|>", "<|end_of_text|>")


def _check(text: str, what: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a string, got {type(text).__name__}")
    for token in _SPECIALS:
        if token in text:
            # A pasted special token would silently end the turn early and let text impersonate the model.
            raise ValueError(f"{what} contains the special token {token!r}")
    if "<|reserved_special_token_" in text:
        raise ValueError(f"{what} contains a reserved special token (image placeholder ids are the processor's job)")
    return text


def user_turn(question: str) -> str:
    """One user message: header, blank line, text, `<|eot_id|>`."""
    return f"{START_HEADER}user{END_HEADER}\n\n{_check(question, 'question')}{EOT}"


def assistant_turn(answer: str | None = None) -> str:
    """An assistant header; with an answer, the full closed turn (earlier turns), else the open one to generate."""
    head = f"{START_HEADER}assistant{END_HEADER}\n\n"
    return head if answer is None else f"{head}{_check(answer, 'answer')}{EOT}"


def build_prompt(question: str, history: Iterable[Sequence[str]] | None = None) -> str:
    """Prompt for `question`, after earlier `(question, answer)` turns about the same image.

    Returns the string the processor expects (no BOS, no image tag), ending in `assistant<|end_header_id|>\\n\\n`.
    """
    parts = []
    for n, turn in enumerate(history or ()):
        if len(turn) != 2:
            raise ValueError(f"history[{n}] must be a (question, answer) pair")
        q, a = turn
        parts.append(user_turn(q))
        parts.append(assistant_turn(a))
    parts.append(user_turn(question))
    parts.append(assistant_turn())
    return "".join(parts)
