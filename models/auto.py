"""The Hugging Face front door: `AutoConfig`, `AutoModelForCausalLM` and `AutoProcessor` on a Dragonfly folder.

How a user gets it::

    import models.auto                      # or: from models import DragonflyForCausalLM (any torch-side module)
    from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor

    config = AutoConfig.from_pretrained(folder)              # DragonflyConfig (image_encoder subfolder resolved)
    model = AutoModelForCausalLM.from_pretrained(folder)     # DragonflyForCausalLM, strict keys (see below)
    processor = AutoProcessor.from_pretrained(folder)        # DragonflyProcessor, not a bare tokenizer

`register_auto_classes()` is the one place the registration happens. It runs when this module, or
`models.modeling_dragonfly` / `models.processing_dragonfly`, is first imported — never on `import models` or
`import medapp`, which stay torch-free (the Auto registries are only useful once transformers' torch side is in use).
It is idempotent.

How each Auto class finds our class (transformers 5.24):

* `AutoConfig` reads `model_type` ("dragonfly") from `config.json` and calls `DragonflyConfig.from_dict` with the
  folder as `name_or_path`; `DragonflyConfig.from_dict` resolves an `image_encoder` subfolder against that folder.
* `AutoModelForCausalLM` maps `type(config)` to `DragonflyForCausalLM`, whose `from_pretrained` refuses missing,
  unexpected or mis-shaped tensors with `models.errors.CheckpointFormatError` naming them (the loader's wording),
  instead of transformers' silent random initialisation.
* `AutoProcessor` reads `processor_class` from `processor_config.json` ("DragonflyProcessor" in the official layout
  and in what `DragonflyProcessor.save_pretrained` writes) and looks that name up among registered processors, so it
  must be registered; a folder without that field falls back to the config's type, which is registered too.

No `auto_map` is written into `config.json`: `auto_map` points transformers at Python files *inside the checkpoint*
and makes it ask for `trust_remote_code=True`, i.e. to run code that came with the weights. The official
checkpoints have no such files and our classes are installed code, so registration is the safe route, and the
saved `config.json` stays in the official layout (readable by the official code unchanged).
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor

__all__ = ["register_auto_classes"]

_done = False


def register_auto_classes() -> None:
    """Register DragonflyConfig / DragonflyForCausalLM / DragonflyProcessor with transformers' Auto classes."""
    global _done
    if _done:
        return
    from models.configuration_dragonfly import DragonflyConfig
    from models.modeling_dragonfly import DragonflyForCausalLM
    from models.processing_dragonfly import DragonflyProcessor

    AutoConfig.register(DragonflyConfig.model_type, DragonflyConfig, exist_ok=True)
    AutoModelForCausalLM.register(DragonflyConfig, DragonflyForCausalLM, exist_ok=True)
    AutoProcessor.register(DragonflyConfig, DragonflyProcessor, exist_ok=True)
    _done = True


register_auto_classes()
