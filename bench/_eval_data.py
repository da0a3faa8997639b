"""Tiny copies of VQA-RAD, SLAKE and Path-VQA in their real on-disk formats, for `bench eval` and the eval tests.

Why here (like `bench/_data.py`): the bench must run without pytest and tests may import from `bench`. The copies
are small (5-10 questions, 32-64 px images) but byte-for-byte in the formats a site has: VQA-RAD's official JSON
with its image folder (train and test rows mixed, as released), SLAKE's test.json with English and Chinese rows and
``imgs/<folder>/source.jpg``, and Hugging Face parquet files whose image column is the struct ``{bytes, path}``
that `datasets` writes, split over several row groups.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["tiny_image", "write_vqa_rad_json", "write_slake", "write_hf_parquet", "write_path_vqa", "PATH_VQA_ROWS"]

# (question, answer): yes/no answers make a Path-VQA question closed
PATH_VQA_ROWS = (
    ("Is there inflammation?", "yes"),
    ("What is present?", "granuloma"),
    ("Are the nuclei enlarged?", "no"),
    ("How is the tissue stained?", "hematoxylin and eosin"),
    ("Is this a malignant tumour?", "yes"),
    ("What does this image show?", "liver with fatty change"),
    ("Is necrosis seen?", "no"),
)


def tiny_image(seed: int, size: int = 48, fmt: str = "PNG") -> bytes:
    """A small deterministic RGB picture (a gradient with a bright square whose place depends on `seed`)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.stack([(xx * 255 // size), (yy * 255 // size), np.full_like(xx, (seed * 37) % 256)], -1)
    x, y = rng.integers(0, size - 12, 2)
    img[y : y + 12, x : x + 12] = 255
    out = io.BytesIO()
    Image.fromarray(img.astype(np.uint8)).save(out, format=fmt)
    return out.getvalue()


def write_vqa_rad_json(folder: Path) -> Path:
    """The official layout: ``VQA_RAD Dataset Public.json`` + ``VQA_RAD Image Folder/``; 6 test + 2 train rows."""
    images = folder / "VQA_RAD Image Folder"
    images.mkdir(parents=True, exist_ok=True)
    rows = [
        # qid, image, question, answer, answer_type, question_type, organ, phrase_type
        (1, "synpic100.jpg", "Is there a pneumothorax?", "no", "CLOSED", "PRES", "CHEST", "test_freeform"),
        (2, "synpic100.jpg", "Is the heart enlarged?", "yes", "CLOSED", "SIZE", "CHEST", "test_para"),
        (3, "synpic200.jpg", "What organ is shown?", "liver", "OPEN", "ORGAN", "ABD", "test_freeform"),
        (4, "synpic200.jpg", "How many lesions are there?", 2, "OPEN", "COUNT", "ABD", "test_freeform"),
        (5, "synpic300.jpg", "Is this a CT or an MRI?", "CT", "CLOSED", "MODALITY", "HEAD", "test_freeform"),
        (6, "synpic300.jpg", "Where is the mass?", "left frontal lobe", "OPEN", "POS", "HEAD", "test_para"),
        (7, "synpic300.jpg", "Is this a training question?", "yes", "CLOSED", "PRES", "HEAD", "freeform"),
        (8, "synpic100.jpg", "Also training?", "no", "CLOSED", "PRES", "CHEST", "para"),
    ]
    for seed, name in enumerate(sorted({r[1] for r in rows})):
        (images / name).write_bytes(tiny_image(seed, fmt="JPEG"))
    records = [
        {"qid": qid, "image_name": img, "image_case_url": "https://example.invalid/case", "image_organ": organ,
         "answer": answer, "answer_type": atype, "question_type": qtype, "question": question,
         "phrase_type": phrase}
        for qid, img, question, answer, atype, qtype, organ, phrase in rows
    ]
    path = folder / "VQA_RAD Dataset Public.json"
    path.write_text(json.dumps(records, indent=1))
    return path


def write_slake(folder: Path) -> Path:
    """SLAKE's layout: ``test.json`` (English and Chinese rows) + ``imgs/xmlabN/source.jpg``."""
    rows = [
        # qid, img_id, question, answer, answer_type, modality, location, content_type, lang
        (11, 1, "What modality is used to take this image?", "CT", "OPEN", "CT", "Abdomen", "Modality", "en"),
        (12, 1, "Does the picture contain liver?", "Yes", "CLOSED", "CT", "Abdomen", "Organ", "en"),
        (13, 2, "Which is bigger in this image, liver or spleen?", "Liver", "CLOSED", "MRI", "Abdomen", "Size", "en"),
        (14, 2, "Where is the abnormality?", "Left Lung, Right", "OPEN", "MRI", "Chest", "Position", "en"),
        (15, 3, "Is the lung healthy?", "No", "CLOSED", "X-Ray", "Chest", "Abnormality", "en"),
        (16, 3, "How many lungs are shown?", "2", "OPEN", "X-Ray", "Chest", "Quantity", "en"),
        (17, 3, "这是什么模态?", "X光", "OPEN", "X-Ray", "Chest", "Modality", "zh"),
    ]
    records = []
    for qid, img_id, question, answer, atype, modality, location, content, lang in rows:
        name = f"xmlab{img_id}/source.jpg"
        (folder / "imgs" / f"xmlab{img_id}").mkdir(parents=True, exist_ok=True)
        (folder / "imgs" / name).write_bytes(tiny_image(100 + img_id, fmt="JPEG"))
        records.append({"img_id": img_id, "img_name": name, "question": question, "answer": answer,
                        "q_lang": lang, "location": location, "modality": modality, "answer_type": atype,
                        "base_type": "vqa", "content_type": content, "triple": ["vhead", "_", "_"], "qid": qid})
    path = folder / "test.json"
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1))
    return path


def write_hf_parquet(path: Path, rows: Sequence[tuple[str, str]], *, seed: int = 0, row_group_size: int = 3) -> Path:
    """A parquet file as `datasets` writes it: image struct {bytes, path}, question, answer; small row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    images = [{"bytes": tiny_image(seed + i), "path": None} for i in range(len(rows))]
    table = pa.table({
        "image": pa.array(images, type=image_type),
        "question": pa.array([q for q, _ in rows], type=pa.string()),
        "answer": pa.array([a for _, a in rows], type=pa.string()),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def write_path_vqa(folder: Path) -> Path:
    """The HF copy's layout: ``data/test-*.parquet`` (two files) plus a train file that must be ignored."""
    data = folder / "data"
    write_hf_parquet(data / "test-00000-of-00002.parquet", PATH_VQA_ROWS[:4], seed=200)
    write_hf_parquet(data / "test-00001-of-00002.parquet", PATH_VQA_ROWS[4:], seed=204)
    write_hf_parquet(data / "train-00000-of-00001.parquet", [("Train question?", "yes")], seed=300)
    return folder
