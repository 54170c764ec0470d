"""A user's data got on the event loop never waits there: a cache opening in another
thread (its check, a migration, a checkpoint waiting on another process) holds the users'
lock, and every request of the process would stand still behind it."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from bridge.config import Settings
from bridge.core import Bridge


def test_the_event_loop_gets_a_user_without_waiting_for_an_open_elsewhere(
    tmp_path: Path,
) -> None:
    bridge = Bridge(Settings(data_dir=str(tmp_path)))
    known = bridge.users.get("known")
    opening = threading.Event()
    release = threading.Event()

    def slow_open() -> None:  # what a thread opening another user's cache does
        with bridge.users._lock:
            opening.set()
            release.wait(5)

    holder = threading.Thread(target=slow_open)
    holder.start()
    opening.wait(5)

    async def scenario() -> tuple[float, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        assert await bridge.user("known") is known  # open already: at once
        at_once = time.monotonic() - started
        asyncio.get_running_loop().call_later(0.5, release.set)
        new = await bridge.user("new")  # opened on a thread once the lock is free
        assert new is bridge.users.find("new")
        ticker.cancel()
        return at_once, ticks

    try:
        at_once, ticks = asyncio.run(scenario())
    finally:
        release.set()
        holder.join()
        bridge.close()
    assert at_once < 0.1
    assert ticks >= 20  # the loop went on while the new user's cache waited to open
