"""How queued work leaves in groups, and how a group's outcome reaches each entry.

The store's group commit and micro-batched inference share both rules, so that they fail alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sized
from typing import Any, TypeVar

from predictor_core.errors import Unavailable

__all__ = ["Entry", "next_group", "run_group"]

Entry = tuple[Sized, "asyncio.Future[Any]"]
"""One caller's work (its rows) and the future it awaits."""
E = TypeVar("E", bound=Entry)


def next_group(queue: list[E], max_rows: int) -> tuple[list[E], list[E]]:
    """The longest head of `queue` whose entries hold at most `max_rows` rows, and the rest.

    The first entry always goes, however many rows it holds, so that a batch larger than `max_rows`
    still leaves (alone).
    """
    taken, rows = 0, 0
    for entry in queue:
        size = len(entry[0])
        if taken and rows + size > max_rows:
            break
        taken, rows = taken + 1, rows + size
    return queue[:taken], queue[taken:]


async def run_group(
    group: list[E],
    run: Callable[[list[E]], Awaitable[list[Any]]],
    *,
    unavailable: type[Unavailable],
    interrupted: str,
) -> None:
    """Run `group` as one piece of work and answer each entry's future with its own result.

    `run` returns one result per entry. When it raises `unavailable`, every entry gets that error (the
    entries would fail alike: no retries); any other error runs the entries again one at a time, so one
    entry's input never fails the others. Cancelled, it answers every entry with
    `unavailable(interrupted)` before it lets the cancellation through, so nobody waits for ever.
    """
    try:
        results = await run(group)
    except unavailable as exc:
        _fail(group, exc)
    except Exception as exc:
        if len(group) == 1:
            _fail(group, exc)
        else:
            for one in group:
                await run_group([one], run, unavailable=unavailable, interrupted=interrupted)
    except BaseException:
        _fail(group, unavailable(interrupted, retry_after=1.0))
        raise
    else:
        for (_, answer), result in zip(group, results, strict=True):
            if not answer.done():
                answer.set_result(result)


def _fail(group: list[E], error: BaseException) -> None:
    for _, answer in group:
        if not answer.done():
            answer.set_exception(error)
