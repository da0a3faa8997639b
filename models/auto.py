"""The Hugging Face front door: `AutoConfig`, `AutoModelForCausalLM` and `AutoProcessor` on a Dragonfly folder.

How a user gets it::

    import models.auto                      # or: from models import DragonflyForCausalLM / DragonflyProcessor
    from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor

    config = AutoConfig.from_pretrained(folder)              # DragonflyConfig (image_encoder subfolder resolved)
    model = AutoModelForCausalLM.from_pretrained(folder)     # DragonflyForCausalLM, strict keys (see below)
    processor = AutoProcessor.from_pretrained(folder)        # DragonflyProcessor, not a bare tokenizer

`register_auto_classes()` (defined in `models.modeling_dragonfly`, the lowest module that knows all three classes,
so that `models` has no import circle) is the one place the registration happens. It runs when
`models.modeling_dragonfly` is first imported — by this module, by the package's lazy names
`models.DragonflyForCausalLM` / `models.DragonflyProcessor`, or by `models.loading` (so any medapp model load opens
the front door too). It is idempotent. `import models` / `import medapp` stay torch-free: nothing registers until the
torch side is first used. (`models.processing_dragonfly` alone registers only `AutoConfig`, through
`configuration_dragonfly.register()`.)

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

from models.configuration_dragonfly import DragonflyConfig
from models.modeling_dragonfly import DragonflyForCausalLM, register_auto_classes
from models.processing_dragonfly import DragonflyProcessor

__all__ = ["DragonflyConfig", "DragonflyForCausalLM", "DragonflyProcessor", "register_auto_classes"]

register_auto_classes()  # already done by importing modeling_dragonfly; explicit here, as this is the front door
