"""Request threads: never more at once than the setting allows, and results come back."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from bridge.workers import RequestThreads


def test_no_more_requests_run_at_once_than_there_are_threads() -> None:
    threads = RequestThreads(2)
    lock = threading.Lock()
    running = peak = 0

    def work(number: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return number * 10

    results: list[int] = []

    async def main() -> None:
        async def one(number: int) -> None:
            results.append(await threads.run(work, number))

        async with anyio.create_task_group() as group:
            for number in range(6):
                group.start_soon(one, number)

    anyio.run(main)
    assert peak == 2
    assert sorted(results) == [0, 10, 20, 30, 40, 50]


def test_a_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError):
        RequestThreads(0)
