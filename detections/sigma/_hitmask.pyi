"""Type stub of the compiled hit-mask loop (detections/sigma/_hitmask.c)."""

from collections.abc import Callable, Mapping
from typing import Any

def hit_mask(
    fields: Mapping[str, Any],
    tables: dict[str, tuple[Any, ...]],
    miss: Callable[[Any, str, Any], int],
    ctx: Any,
    masks: dict[int, int],
    seen_limit: int,
    masks_limit: int,
    /,
) -> int | None: ...
def route_key(fields: Mapping[str, Any], names: tuple[str, ...], /) -> tuple[Any, ...]: ...
