"""Keys given twice in one JSON object: JSON parsers disagree on which value wins, so an event
file that repeats a key is refused (docs/design.md §8.2)."""

from __future__ import annotations

import json
from typing import Any


def duplicate_keys(text: str) -> list[tuple[str, list[Any]]]:
    """(key, its values in order) for each key given twice in one object of the JSON ``text``
    (nested too); [] if none or not JSON. JSON parsers disagree on which value wins."""
    found: list[tuple[str, list[Any]]] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) < len(pairs):
            twice = [k for k in obj if sum(1 for key, _ in pairs if key == k) > 1]
            found.extend((k, [v for key, v in pairs if key == k]) for k in twice)
        return obj

    try:
        json.loads(text, object_pairs_hook=pairs_hook)
    except (ValueError, RecursionError):
        return []
    return found
