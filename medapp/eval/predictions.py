"""The answer file: one JSON line per question, in LLaVA-Med's answer-file form, written so a killed run resumes.

Format: ``{"question_id": ..., "text": ..., "prompt": ..., "model_id": ...}`` per line (LLaVA-Med's ``model_vqa_med``
writes the same keys plus ``answer_id``; any extra keys are ignored when reading, so their files score as they are).

Why append + fsync per line: a run over Path-VQA takes hours on one GPU, and a crash, a kill or a power cut must
lose at most the answer being written — never repeat a question (which would double-count it) or lose one. Each line
is written whole, flushed and fsynced before the next question is considered done. A line cut short by a kill has
no newline; `PredictionWriter` truncates the file back to the last complete line before appending, and
`read_predictions` ignores such a tail, so resume redoes exactly the questions without a complete line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from medapp.errors import UserError

__all__ = ["PredictionFile", "PredictionWriter", "read_predictions"]


@dataclass(frozen=True)
class PredictionFile:
    """What an answer file holds: `texts` by question id (first occurrence wins), plus what was odd about it."""

    texts: dict[str, str]
    prompts: dict[str, str]
    duplicates: int = 0  # later lines repeating an id already seen (ignored)
    truncated_tail: bool = False  # the last line had no newline and was not valid JSON (an interrupted write)


def _qid(value: object) -> str:
    return str(value).strip()


def read_predictions(path: str | Path) -> PredictionFile:
    """Read an answer file; a malformed line (other than an interrupted last one) is a `UserError` naming it."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the predictions ({exc.strerror or exc})") from exc
    lines = raw.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    texts: dict[str, str] = {}
    prompts: dict[str, str] = {}
    duplicates = 0
    truncated = False
    numbered = [(i + 1, line) for i, line in enumerate(lines)]
    if tail.strip():
        numbered.append((len(lines) + 1, tail))
    for lineno, line in numbered:
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            if line is tail:
                truncated = True  # an interrupted write: resume redoes it
                continue
            raise UserError(f"{path}: line {lineno} is not valid JSON") from None
        if not isinstance(obj, dict) or "question_id" not in obj or "text" not in obj:
            raise UserError(f"{path}: line {lineno} has no question_id and text (expected LLaVA-Med's answer-file "
                            "form: one JSON object per line with question_id and text)")
        qid = _qid(obj["question_id"])
        if qid in texts:
            duplicates += 1
            continue
        texts[qid] = "" if obj["text"] is None else str(obj["text"])
        if isinstance(obj.get("prompt"), str):
            prompts[qid] = obj["prompt"]
    return PredictionFile(texts, prompts, duplicates, truncated)


class PredictionWriter:
    """Appends answers to `path`, each line flushed and fsynced; `done` is the set of ids already complete."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._repair()
        self.done: set[str] = set(read_predictions(self.path).texts) if self.path.exists() else set()
        self._fh = open(self.path, "a", encoding="utf-8", newline="\n")

    def _repair(self) -> None:
        """Cut an unfinished last line (no newline) so the next answer starts on a line of its own."""
        if not self.path.exists():
            return
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if data and not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)
                fh.flush()
                os.fsync(fh.fileno())

    def add(self, question_id: str, text: str, *, prompt: str, model_id: str) -> None:
        line = json.dumps({"question_id": question_id, "prompt": prompt, "text": text, "model_id": model_id},
                          ensure_ascii=False)
        self._fh.write(line + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.done.add(question_id)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
