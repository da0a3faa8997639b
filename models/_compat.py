"""The one place that knows how the installed transformers names the KV cache.

transformers 5.24 renamed the cache argument and output field from `past_key_values` to `cache` (the old argument
name is deprecated, to be removed in 5.40) and stopped passing `cache_position` to `forward` during `generate`.
medapp supports every transformers 5.x from 5.0 on, so nothing outside this module spells either name: callers pass
`**cache_kwargs(cache)` and read `output_cache(out)`, and `DragonflyForCausalLM.forward` accepts both names.
Speaking the installed version's own name keeps our calls free of deprecation warnings on both sides of the rename.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

__all__ = ["cache_argument_name", "cache_kwargs", "output_cache"]


@functools.cache
def cache_argument_name() -> str:
    """"cache" on transformers ≥ 5.24, "past_key_values" before: read from `LlamaForCausalLM.forward`'s signature.

    The signature (not the version string) is the contract we depend on, so a backport or a pre-release is judged by
    what it actually accepts. `inspect.signature` follows `functools.wraps` through transformers' deprecation
    decorators to the real parameters.
    """
    from transformers import LlamaForCausalLM

    params = inspect.signature(LlamaForCausalLM.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_kwargs(cache: Any) -> dict[str, Any]:
    """`{name: cache}` under the name the installed transformers expects (for `forward` and `generate`)."""
    return {cache_argument_name(): cache}


def output_cache(output: Any) -> Any:
    """The KV cache a model output carries (`.cache` on ≥ 5.24, `.past_key_values` before), or None."""
    for name in ("cache", "past_key_values"):
        value = output.get(name) if hasattr(output, "get") else getattr(output, name, None)
        if value is not None:
            return value
    return None
