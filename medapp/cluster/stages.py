"""The two stages of ``medapp caption --ray`` that run on Ray workers: render (CPU tasks) and caption (actors).

Why the data look like this:

* **Paths in, no pixels from the driver.** The driver sends each item's index, path, kind and key; a render task
  on whichever node picks the block up reads and renders the file there (every node sees the archive at the same
  path). Only rendered pixels travel from render tasks to the actors, and only text and hashes come back.
* **Rendering is the app's own.** `medapp.jobs.caption.render_item` renders exactly what the single-process job
  and the viewer render, and turns a bad file into the row's error text (the cause, never the path). A render
  stage therefore never raises for a bad input: one corrupt file is one error row, not a failed block.
* **The engine loads once per actor** from `model_dir`, a folder every node can read (weights never go through
  the object store). Generation errors do raise: they would fail for every item, as in the single-process job.
* **No file names in logs.** Ray names tasks after these functions and classes, never after data; nothing here
  prints or logs a path.

Columns between the stages are fixed pyarrow schemas, so a block whose items all failed still concatenates with
the others.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

__all__ = ["schemas", "item_record", "render_batch", "Captioner"]


def schemas() -> tuple[Any, Any, Any]:
    """(item, rendered, captioned) pyarrow schemas; built on call because pyarrow comes with the extra only."""
    import pyarrow as pa

    item = pa.schema([("idx", pa.int64()), ("path", pa.string()), ("file", pa.string()), ("kind", pa.string()),
                      ("region", pa.string()), ("box", pa.string()), ("error", pa.string())])
    rendered = pa.schema([("idx", pa.int64()), ("pixels", pa.binary()), ("mode", pa.string()), ("width", pa.int64()),
                          ("height", pa.int64()), ("input_sha256", pa.string()), ("thumb", pa.binary()),
                          ("error", pa.string())])
    captioned = pa.schema([("idx", pa.int64()), ("caption", pa.string()), ("input_sha256", pa.string()),
                           ("thumb", pa.binary()), ("error", pa.string()), ("model", pa.string()),
                           ("model_sha256", pa.string()), ("fatal", pa.string())])
    return item, rendered, captioned


def item_record(idx: int, item: Any) -> dict[str, Any]:
    """The driver's description of one `CaptionItem`: what a render task needs to find and render it.

    The path is made absolute here: workers do not share the driver's working folder."""
    return {
        "idx": idx,
        "path": os.path.abspath(item.path),
        "file": item.file,
        "kind": item.kind,
        "region": item.region,
        "box": ",".join(map(str, item.box)) if item.box is not None else "",
        "error": item.error or "",
    }


def _item(record: dict[str, Any]) -> Any:
    from medapp.jobs.caption import CaptionItem

    box = None
    if record["box"]:
        x, y, w, h = (int(v) for v in record["box"].split(","))
        box = (x, y, w, h)
    return CaptionItem(record["file"], Path(record["path"]), record["kind"], record["region"], box,
                       record["error"] or None)


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def render_batch(batch: Any, *, thumbnails: bool = False) -> Any:
    """Render a block of items (a pyarrow table, item schema) into rendered rows.

    The input hash is computed here, where the image is, so the audit entry and the row name exactly the pixels
    the model sees without the actor spending time on it. `thumbnails` adds a 256-pixel PNG per image for the
    contact sheet (small enough to bring back to the driver)."""
    import pyarrow as pa

    from medapp.hashing import image_sha256
    from medapp.jobs.caption import render_item

    _, rendered_schema, _ = schemas()
    rows = []
    for record in batch.to_pylist():
        image, error = render_item(_item(record))
        row: dict[str, Any] = {"idx": record["idx"], "pixels": None, "mode": "", "width": 0, "height": 0,
                               "input_sha256": "", "thumb": None, "error": error or ""}
        if image is not None:
            row.update(pixels=image.tobytes(), mode=image.mode, width=image.size[0], height=image.size[1],
                       input_sha256=image_sha256(image))
            if thumbnails:
                thumb = image.copy()
                thumb.thumbnail((256, 256))
                row["thumb"] = _png(thumb)
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=rendered_schema)


class Captioner:
    """A Ray Data actor: loads the engine once, then captions every block it is given.

    `threads` pins torch's CPU threads (CPU actors share a node's cores; Ray's default of one thread per
    requested CPU is too few when an actor is meant to use a whole node)."""

    def __init__(self, model_dir: str, device: str, quant: str, dtype: str | None, prompt: str, max_new_tokens: int,
                 batch_size: int, threads: int | None = None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        from models.engine import DragonflyEngine

        self.engine = DragonflyEngine.from_pretrained(model_dir, device, quant, dtype)
        self.prompt, self.max_new_tokens, self.batch_size = prompt, max_new_tokens, batch_size

    def __call__(self, batch: Any) -> Any:
        """Rendered rows in, captioned rows out (error rows pass through with the model id).

        A `ModelError` is not raised here but returned in the `fatal` column: raised, Ray Data would count the
        block as failed and drop it (see `max_errored_blocks`), while a model error must stop the run with its
        own message, as in the single-process job (it would fail for every item)."""
        import pyarrow as pa
        from PIL import Image

        from models.errors import ModelError

        _, _, captioned_schema = schemas()
        info = self.engine.info
        rows = batch.to_pylist()
        ready = [r for r in rows if not r["error"]]
        images = [Image.frombytes(r["mode"], (r["width"], r["height"]), r["pixels"]) for r in ready]
        captions: dict[int, str] = {}
        fatal = ""
        if images:
            try:
                generations = self.engine.caption_batch(images, self.prompt, max_new_tokens=self.max_new_tokens,
                                                        batch_size=self.batch_size)
                captions = {r["idx"]: g.text.strip() for r, g in zip(ready, generations, strict=True)}
            except ModelError as exc:
                fatal = " ".join(str(exc).split()) or type(exc).__name__
        out = [{"idx": r["idx"], "caption": captions.get(r["idx"], ""), "input_sha256": r["input_sha256"],
                "thumb": r["thumb"], "error": r["error"], "model": info.model_id,
                "model_sha256": info.checkpoint_sha256 or "", "fatal": fatal} for r in rows]
        return pa.Table.from_pylist(out, schema=captioned_schema)
