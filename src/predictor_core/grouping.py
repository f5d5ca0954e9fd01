"""How queued work leaves in groups: the store's group commit and micro-batched inference share this rule."""

from __future__ import annotations

from collections.abc import Sized
from typing import TypeVar

__all__ = ["next_group"]

Entry = TypeVar("Entry", bound=tuple[Sized, object])


def next_group(queue: list[Entry], max_rows: int) -> tuple[list[Entry], list[Entry]]:
    """The longest head of `queue` whose entries hold at most `max_rows` rows, and the rest.

    An entry is (its rows, whatever else); the first entry always goes, however many rows it holds, so
    that a batch larger than `max_rows` still leaves (alone).
    """
    taken, rows = 0, 0
    for entry in queue:
        size = len(entry[0])
        if taken and rows + size > max_rows:
            break
        taken, rows = taken + 1, rows + size
    return queue[:taken], queue[taken:]
