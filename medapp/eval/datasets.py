"""The three medical VQA benchmarks, read from a site's own local copy — never downloaded.

Why each reader accepts what it does:

* **VQA-RAD**: the official release (``VQA_RAD Dataset Public.json``: records with ``qid, image_name, answer,
  answer_type, question, question_type, image_organ`` beside ``VQA_RAD Image Folder/``) or the Hugging Face parquet
  copy (``data/test-*.parquet``: ``image, question, answer``). In the official JSON the test split is the records
  whose ``phrase_type`` starts with ``test`` (451 questions); a JSON without ``phrase_type`` is taken whole.
* **SLAKE**: ``test.json`` plus ``imgs/`` as released. ``q_lang`` selects the language (English by default, as
  every published English-language number uses); ``answer_type``, ``modality``, ``location`` (organ) and
  ``content_type`` become categories.
* **Path-VQA**: the Hugging Face parquet copy (``flaviagiammarino/path-vqa``). The original release ships Python
  pickles (``*.pkl``), which can run code when loaded: they are refused, naming the parquet copy instead.

Parquet is read with pyarrow (offline, no `datasets` library); HF stores an image column as a struct
``{bytes, path}``. When a parquet folder holds several splits, only files whose name contains ``test`` are read.
Questions of parquet copies, which carry no id, are numbered 0..N-1 in file order. A closed question is one whose
``answer_type`` says CLOSED, or — where there is none (parquet copies) — one whose answer is yes or no.

A wrong or incomplete folder raises `medapp.errors.UserError` with one line saying what was expected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medapp.errors import UserError
from medapp.eval import DATASETS
from medapp.eval.metrics import is_yes_no

__all__ = ["Question", "EvalDataset", "ParquetImage", "load_dataset", "DATASET_NAMES"]

DATASET_NAMES = DATASETS
PATH_VQA_PARQUET = "the Hugging Face parquet copy (flaviagiammarino/path-vqa: data/test-*.parquet)"
VQA_RAD_EXPECTED = ("the official VQA-RAD JSON (records with qid, image_name, answer, answer_type, question) with "
                    "its image folder, or the Hugging Face parquet copy (data/test-*.parquet: image, question, answer)")
SLAKE_EXPECTED = "SLAKE's test.json with its imgs/ folder beside it"
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif"}


@dataclass(frozen=True)
class ParquetImage:
    """An image stored in a parquet file: the file and the row within it."""

    file: Path
    row: int


@dataclass(frozen=True)
class Question:
    """One benchmark question. `qid` is a string (ids from JSON files and answer files compare as text)."""

    qid: str
    question: str
    answer: str
    closed: bool
    image: Path | ParquetImage
    categories: Mapping[str, str] = field(default_factory=dict)


@dataclass
class EvalDataset:
    """The questions of one benchmark copy and the files they came from (hashed into the run's provenance)."""

    name: str
    root: Path
    source: str  # "official-json" | "slake-json" | "hf-parquet"
    questions: list[Question]
    files: list[Path]
    _cache: dict[Path, Any] = field(default_factory=dict, repr=False)

    def load_image(self, question: Question) -> Any:
        """The question's image as an RGB PIL image."""
        import io

        from PIL import Image

        ref = question.image
        try:
            if isinstance(ref, ParquetImage):
                data = self._parquet_image_bytes(ref)
                with Image.open(io.BytesIO(data)) as im:
                    return im.convert("RGB")
            with Image.open(ref) as im:
                return im.convert("RGB")
        except (OSError, ValueError) as exc:
            where = f"{ref.file.name} row {ref.row}" if isinstance(ref, ParquetImage) else str(ref)
            raise UserError(f"{where}: cannot read the image of question {question.qid} ({exc})") from exc

    def _parquet_image_bytes(self, ref: ParquetImage) -> bytes:
        """Image bytes of one row, reading (and keeping) only the row group that holds it."""
        import pyarrow.parquet as pq

        state = self._cache.get(ref.file)
        if state is None:
            pf = pq.ParquetFile(ref.file)
            starts, total = [], 0
            for i in range(pf.metadata.num_row_groups):
                starts.append(total)
                total += pf.metadata.row_group(i).num_rows
            state = self._cache[ref.file] = {"file": pf, "starts": starts, "group": None, "rows": None}
        group = max(i for i, start in enumerate(state["starts"]) if start <= ref.row)
        if state["group"] != group:
            table = state["file"].read_row_group(group, columns=["image"])
            state["group"], state["rows"] = group, table.column("image").to_pylist()
        cell = state["rows"][ref.row - state["starts"][group]]
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        if not data:
            raise ValueError("the image cell holds no bytes")
        return bytes(data)

    def limited(self, limit: int | None) -> list[Question]:
        """The first `limit` questions (all when None): `--limit` always means the same questions."""
        return self.questions if limit is None else self.questions[:limit]


def load_dataset(name: str, path: str | Path, *, lang: str = "en") -> EvalDataset:
    """Read benchmark `name` ("vqa-rad", "slake", "path-vqa") from `path` (a folder, or its main file)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    readers: dict[str, Callable[[Path], EvalDataset]] = {
        "vqa-rad": _load_vqa_rad,
        "slake": lambda p: _load_slake(p, lang),
        "path-vqa": _load_path_vqa,
    }
    if name not in readers:
        raise UserError(f"unknown dataset {name!r} (known: {', '.join(DATASET_NAMES)})")
    dataset = readers[name](path)
    if not dataset.questions:
        raise UserError(f"{path}: the {name} copy holds no questions")
    return dataset


# ------------------------------------------------------------------------------------------------ helpers
def _files(root: Path, suffixes: Iterable[str]) -> list[Path]:
    """Files under `root` (or `root` itself) with one of `suffixes`, in a stable order; hidden folders skipped."""
    wanted = {s.lower() for s in suffixes}
    if root.is_file():
        return [root] if root.suffix.lower() in wanted else []
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in sorted(filenames)
                     if not f.startswith(".") and Path(f).suffix.lower() in wanted)
    return found


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path}: not readable JSON ({exc})") from exc


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _unique_ids(questions: list[Question], where: Path) -> list[Question]:
    seen: set[str] = set()
    for q in questions:
        if q.qid in seen:
            raise UserError(f"{where}: question id {q.qid} occurs twice; answer files could not tell them apart")
        seen.add(q.qid)
    return questions


def _image_index(root: Path) -> dict[str, Path]:
    """Every image under `root` by file name and by path relative to `root` (POSIX)."""
    index: dict[str, Path] = {}
    for p in _files(root, _IMAGE_SUFFIXES):
        index.setdefault(p.name, p)
        index[p.relative_to(root).as_posix()] = p
    return index


def _check_images(questions: list[Question], root: Path, what: str) -> None:
    missing = sorted({str(q.image) for q in questions if isinstance(q.image, Path) and not q.image.is_file()})
    if missing:
        first = Path(missing[0]).name
        raise UserError(f"{root}: {len(missing)} image(s) named in {what} are missing (first: {first}); "
                        "copy the dataset's whole image folder")


# ------------------------------------------------------------------------------------------------ parquet
def _parquet_files(root: Path) -> list[Path]:
    files = _files(root, {".parquet"})
    tests = [f for f in files if "test" in f.name.lower()]
    return tests or files


def _load_parquet(name: str, root: Path, files: list[Path], expected: str) -> EvalDataset:
    import pyarrow.parquet as pq

    questions: list[Question] = []
    for f in files:
        try:
            schema = pq.read_schema(f)
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for damaged files
            raise UserError(f"{f}: not a readable parquet file ({exc})") from exc
        if not {"image", "question", "answer"} <= set(schema.names):
            raise UserError(f"{f}: columns {', '.join(schema.names)}; expected {expected}")
        table = pq.read_table(f, columns=["question", "answer"])
        for row, (q, a) in enumerate(zip(table.column("question").to_pylist(), table.column("answer").to_pylist(),
                                          strict=True)):
            answer = _text(a)
            closed = is_yes_no(answer)
            questions.append(Question(str(len(questions)), _text(q), answer, closed, ParquetImage(f, row),
                                      {"answer_type": "closed" if closed else "open"}))
    return EvalDataset(name, root, "hf-parquet", questions, files)


# ------------------------------------------------------------------------------------------------ VQA-RAD
def _load_vqa_rad(path: Path) -> EvalDataset:
    parquet = _parquet_files(path)
    jsons = [f for f in _files(path, {".json"}) if _looks_like_vqa_rad(f)]
    if jsons:
        return _load_vqa_rad_json(path, jsons[0])
    if parquet:
        return _load_parquet("vqa-rad", path, parquet, VQA_RAD_EXPECTED)
    raise UserError(f"{path}: not a VQA-RAD copy; expected {VQA_RAD_EXPECTED}")


def _looks_like_vqa_rad(path: Path) -> bool:
    if path.stat().st_size < 2:
        return False
    with open(path, "rb") as fh:
        head = fh.read(4096).decode("utf-8", "ignore")
    return head.lstrip().startswith("[") and '"image_name"' in head and '"qid"' in head


def _load_vqa_rad_json(path: Path, file: Path) -> EvalDataset:
    records = _read_json(file)
    required = {"qid", "image_name", "answer", "answer_type", "question"}
    if not isinstance(records, list) or not all(isinstance(r, dict) and required <= set(r) for r in records):
        raise UserError(f"{file}: expected a list of records with {', '.join(sorted(required))}")
    if any("phrase_type" in r for r in records):  # the official file holds train and test; test is "test_*"
        records = [r for r in records if str(r.get("phrase_type", "")).lower().startswith("test")]
    root = path if path.is_dir() else path.parent
    images = _image_index(root)
    questions = []
    for r in records:
        name = str(r["image_name"]).strip()
        cats = {
            "answer_type": "closed" if _text(r["answer_type"]).upper() == "CLOSED" else "open",
            "organ": _text(r.get("image_organ")).upper(),
            "question_type": _text(r.get("question_type")).upper(),
        }
        questions.append(Question(
            str(r["qid"]).strip(), _text(r["question"]), _text(r["answer"]), cats["answer_type"] == "closed",
            images.get(name, root / name), {k: v for k, v in cats.items() if v},
        ))
    _check_images(questions, root, file.name)
    return EvalDataset("vqa-rad", root, "official-json", _unique_ids(questions, file), [file])


# ------------------------------------------------------------------------------------------------ SLAKE
def _load_slake(path: Path, lang: str) -> EvalDataset:
    file = path if path.is_file() else path / "test.json"
    if not file.is_file() or file.suffix.lower() != ".json":
        raise UserError(f"{path}: not a SLAKE copy; expected {SLAKE_EXPECTED}")
    root = file.parent
    imgs = root / "imgs"
    if not imgs.is_dir():
        raise UserError(f"{root}: no imgs/ folder; expected {SLAKE_EXPECTED}")
    records = _read_json(file)
    required = {"qid", "img_name", "question", "answer", "answer_type", "q_lang"}
    if not isinstance(records, list) or not all(isinstance(r, dict) and required <= set(r) for r in records):
        raise UserError(f"{file}: expected a list of records with {', '.join(sorted(required))} ({SLAKE_EXPECTED})")
    if lang != "all":
        langs = sorted({str(r["q_lang"]) for r in records})
        records = [r for r in records if str(r["q_lang"]) == lang]
        if not records:
            raise UserError(f"{file}: no questions in language {lang!r} (the file has: {', '.join(langs)})")
    questions = []
    for r in records:
        closed = _text(r["answer_type"]).upper() == "CLOSED"
        cats = {
            "answer_type": "closed" if closed else "open",
            "modality": _text(r.get("modality")),
            "organ": _text(r.get("location")),
            "content_type": _text(r.get("content_type")),
        }
        questions.append(Question(str(r["qid"]).strip(), _text(r["question"]), _text(r["answer"]), closed,
                                  imgs / str(r["img_name"]), {k: v for k, v in cats.items() if v}))
    _check_images(questions, root, file.name)
    return EvalDataset("slake", root, "slake-json", _unique_ids(questions, file), [file])


# ------------------------------------------------------------------------------------------------ Path-VQA
def _load_path_vqa(path: Path) -> EvalDataset:
    if path.is_file() and path.suffix.lower() == ".pkl":
        raise UserError(f"{path}: the original Path-VQA pickles are not read (a pickle can run code when "
                        f"loaded); use {PATH_VQA_PARQUET}")
    parquet = _parquet_files(path)
    if parquet:
        return _load_parquet("path-vqa", path, parquet, PATH_VQA_PARQUET)
    if _files(path, {".pkl"}):
        raise UserError(f"{path}: holds the original Path-VQA pickles, which are not read (a pickle can run code "
                        f"when loaded); use {PATH_VQA_PARQUET}")
    raise UserError(f"{path}: not a Path-VQA copy; expected {PATH_VQA_PARQUET}")
