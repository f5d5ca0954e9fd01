"""GroupCommit: concurrent callers share commits, and each still sees only its own outcome."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence

import pytest

from predictor_core import StoreRejected, StoreUnavailable
from predictor_sql.group_commit import GroupCommit


class Writer:
    """Commits groups of ints: refuses a group holding a negative one; `gate` holds every commit open."""

    def __init__(self, *, unavailable: bool = False) -> None:
        self.groups: list[list[int]] = []
        self.committed: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.unavailable = unavailable
        self.open_commits = 0
        self.most_open = 0

    async def write(self, rows: Sequence[int]) -> None:
        self.groups.append(list(rows))
        self.open_commits += 1
        self.most_open = max(self.most_open, self.open_commits)
        try:
            await self.gate.wait()
            await asyncio.sleep(0)
            if self.unavailable:
                raise StoreUnavailable("down", retry_after=1.0)
            if any(r < 0 for r in rows):
                raise StoreRejected("negative")
            self.committed.extend(rows)
        finally:
            self.open_commits -= 1


async def test_a_lone_caller_is_committed_at_once_alone() -> None:
    writer = Writer()
    group = GroupCommit(writer.write)
    await group.submit([1, 2])
    assert writer.groups == [[1, 2]]
    assert writer.committed == [1, 2]


async def test_callers_queued_during_a_commit_leave_together_in_the_next() -> None:
    writer = Writer()
    group = GroupCommit(writer.write)
    writer.gate.clear()
    first = asyncio.ensure_future(group.submit([0]))
    await asyncio.sleep(0)
    others = [asyncio.ensure_future(group.submit([i])) for i in range(1, 11)]
    await asyncio.sleep(0)
    writer.gate.set()
    await asyncio.gather(first, *others)
    assert writer.groups == [[0], list(range(1, 11))]
    assert sorted(writer.committed) == list(range(11))


async def test_groups_are_bounded_in_rows_but_a_big_batch_goes_whole() -> None:
    writer = Writer()
    group = GroupCommit(writer.write, max_rows=4)
    writer.gate.clear()
    calls = [
        asyncio.ensure_future(group.submit(rows)) for rows in ([0], [1, 2], [3, 4], [5], list(range(6, 16)))
    ]
    await asyncio.sleep(0)
    writer.gate.set()
    await asyncio.gather(*calls)
    assert writer.groups == [[0, 1, 2], [3, 4, 5], list(range(6, 16))]


async def test_one_refused_caller_fails_alone_and_the_others_are_committed() -> None:
    writer = Writer()
    group = GroupCommit(writer.write)
    writer.gate.clear()
    blocker = asyncio.ensure_future(group.submit([100]))
    await asyncio.sleep(0)
    calls = [asyncio.ensure_future(group.submit(rows)) for rows in ([1], [2, -2], [3])]
    await asyncio.sleep(0)
    writer.gate.set()
    outcomes = await asyncio.gather(blocker, *calls, return_exceptions=True)
    assert outcomes[0] is None
    assert outcomes[1] is None
    assert outcomes[3] is None
    assert isinstance(outcomes[2], StoreRejected)
    assert sorted(writer.committed) == [1, 3, 100]


async def test_an_unavailable_store_fails_the_whole_group_without_retries() -> None:
    writer = Writer(unavailable=True)
    group = GroupCommit(writer.write)
    writer.gate.clear()
    calls = [asyncio.ensure_future(group.submit([0]))]
    await asyncio.sleep(0)
    calls += [asyncio.ensure_future(group.submit([i])) for i in range(1, 5)]
    await asyncio.sleep(0)
    writer.gate.set()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(o, StoreUnavailable) for o in outcomes)
    assert len(writer.groups) == 2  # the first caller alone, then the four queued meanwhile: no retries


async def first_of_three_gives_up(writer: Writer) -> tuple[GroupCommit[int], list[BaseException | None]]:
    """Three callers in one group; the first is cancelled while the group waits to be written."""
    group = GroupCommit(writer.write)
    writer.gate.clear()
    calls = [asyncio.ensure_future(group.submit([i])) for i in range(3)]
    await asyncio.sleep(0)
    calls[0].cancel()
    await asyncio.sleep(0)
    writer.gate.set()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(outcomes[0], asyncio.CancelledError)
    return group, outcomes


async def test_a_caller_that_gives_up_leaves_its_group_committed() -> None:
    writer = Writer()
    group, _ = await first_of_three_gives_up(writer)
    await group.close()
    assert sorted(writer.committed) == [0, 1, 2]


async def test_a_caller_that_gives_up_on_a_failed_group_leaves_no_unretrieved_error() -> None:
    reported: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(context))
    _, outcomes = await first_of_three_gives_up(Writer(unavailable=True))
    assert all(isinstance(o, StoreUnavailable) for o in outcomes[1:])
    del outcomes
    gc.collect()
    assert reported == []  # no "Future exception was never retrieved"


async def test_close_waits_for_everything_queued() -> None:
    writer = Writer()
    group = GroupCommit(writer.write)
    writer.gate.clear()
    calls = [asyncio.ensure_future(group.submit([i])) for i in range(6)]
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(group.close())
    await asyncio.sleep(0.01)
    assert not closing.done()
    writer.gate.set()
    await closing
    assert sorted(writer.committed) == list(range(6))
    await asyncio.gather(*calls)


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_commits_in_flight_are_bounded(in_flight: int) -> None:
    writer = Writer()
    group = GroupCommit(writer.write, in_flight=in_flight)
    writer.gate.clear()
    calls = []
    for i in range(10):  # each caller comes once the commits before it are under way
        calls.append(asyncio.ensure_future(group.submit([i])))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    writer.gate.set()
    await asyncio.gather(*calls)
    assert writer.most_open == in_flight
    assert sorted(writer.committed) == list(range(10))


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(Writer().write, max_rows=0)
