"""A damaged cache is moved aside and rebuilt with a new epoch, at open and at run time;
a healthy one (also after a crash) keeps its data and epoch."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.store.cache import Cache
from bridge.store.health import CacheDamaged, StorageFull
from bridge.store.journal import EMAIL, MAILBOX
from tests.unit.test_store_cache import add_mailbox, message

PAGE = 4096


def _filled(path: Path, folders: int = 3, messages: int = 400) -> tuple[str, int]:
    """A cache with enough rows to span many pages; returns its epoch and Mailbox state."""
    cache = Cache.open(path)
    for number in range(folders):
        box = add_mailbox(cache, f"Folder{number}")
        with cache.transaction():
            cache.apply_folder_delta(
                box, added=[message(uid, f"m{number}-{uid}") for uid in range(1, messages)]
            )
    epoch, state = cache.epoch, cache.state(MAILBOX)
    cache.close()
    return epoch, state


def _truncate_to_zero(path: Path) -> None:
    os.truncate(path, 0)


def _truncate_to_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _garbage_header(path: Path) -> None:
    with path.open("r+b") as file:
        file.write(os.urandom(PAGE))


def _garbage_page_in_the_middle(path: Path) -> None:
    pages = path.stat().st_size // PAGE
    with path.open("r+b") as file:
        file.seek(pages // 2 * PAGE)
        file.write(b"\xa5" * PAGE)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated to 0": _truncate_to_zero,
    "truncated to half": _truncate_to_half,
    "garbage header": _garbage_header,
    "garbage page in the middle": _garbage_page_in_the_middle,
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_cache_is_rebuilt_at_open(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.sqlite3"
    epoch, state = _filled(path)
    DAMAGE[damage](path)
    with caplog.at_level(logging.WARNING, "bridge.store"):
        cache = Cache.open(path)
    assert cache.epoch != epoch
    assert cache.mailboxes() == []
    assert cache.decode_state(f"{epoch}-{state}") is None  # cannotCalculateChanges
    add_mailbox(cache, "INBOX")  # and it works
    cache.close()
    kept = [p.name for p in tmp_path.iterdir() if ".broken-" in p.name]
    if damage == "truncated to 0":
        # An empty file is an empty database to SQLite: nothing to keep or warn about.
        assert kept == []
    else:
        assert len(kept) == 1 and kept[0].startswith("cache.sqlite3.broken-")
        assert "damaged" in caplog.text
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_damage_met_at_run_time_is_reported_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    epoch, _ = _filled(path)
    cache = Cache.open(path)
    with cache.sql() as conn:
        [root] = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'changelog'")
    with path.open("r+b") as file:
        file.seek((root[0] - 1) * PAGE)
        file.write(b"\xa5" * PAGE)
    with cache.sql() as conn:
        conn.execute("PRAGMA shrink_memory")  # forget cached pages: read the file again
    with pytest.raises(CacheDamaged):
        cache.changes(EMAIL, 0, None)
    assert cache.damaged
    cache.rebuild()
    assert not cache.damaged and cache.epoch != epoch and cache.mailboxes() == []
    add_mailbox(cache, "INBOX")
    cache.close()
    assert any(".broken-" in p.name for p in tmp_path.iterdir())


_UNCLEAN_STOP = """
import os, sys
from bridge.store.cache import Cache
from tests.unit.test_store_cache import add_mailbox
cache = Cache.open(sys.argv[1])
add_mailbox(cache, "Written-Before-The-Crash")
os._exit(0)  # no close: the write stays in the write-ahead log
"""


def _stop_uncleanly_after_a_write(path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    subprocess.run([sys.executable, "-c", _UNCLEAN_STOP, str(path)], check=True, env=env)


def test_an_unclean_stop_keeps_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    epoch, _ = _filled(path, folders=1, messages=3)
    _stop_uncleanly_after_a_write(path)
    cache = Cache.open(path)
    assert cache.epoch == epoch
    assert "Written-Before-The-Crash" in {r.name for r in cache.mailboxes()}
    cache.close()


def test_a_write_ahead_log_lost_after_an_unclean_stop_means_a_new_epoch(tmp_path: Path) -> None:
    """The lost log held transactions whose states clients may hold: the counter must not
    hand those numbers out again for different changes."""
    path = tmp_path / "cache.sqlite3"
    epoch, _ = _filled(path, folders=1, messages=3)
    _stop_uncleanly_after_a_write(path)
    path.with_name(path.name + "-wal").unlink()
    cache = Cache.open(path)
    assert cache.epoch != epoch
    cache.close()


def test_a_write_ahead_log_deleted_while_open_loses_nothing_at_a_clean_close(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache.sqlite3"
    cache = Cache.open(path)
    epoch = cache.epoch
    path.with_name(path.name + "-wal").unlink()
    add_mailbox(cache, "After-The-Delete")
    cache.close()
    again = Cache.open(path)
    assert again.epoch == epoch
    assert "After-The-Delete" in {r.name for r in again.mailboxes()}
    again.close()


def test_the_write_ahead_log_is_cut_back_after_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    cache = Cache.open(path)
    box = add_mailbox(cache, "Big")
    wal = path.with_name(path.name + "-wal")
    largest = 0
    for start in range(1, 20_000, 10):
        with cache.transaction():
            cache.apply_folder_delta(
                box, added=[message(uid, f"k{uid}") for uid in range(start, start + 10)]
            )
        largest = max(largest, wal.stat().st_size)
    # A checkpoint every MiB, plus the transaction that crossed it (SQLite's defaults: 4 MiB).
    # Ten new messages write about 370 KB of pages: the query indexes take a row or an
    # entry each in five B-trees, keyed by an id that lands on a page of its own.
    assert largest < 2 * 1024 * 1024
    cache.close()


def test_a_cache_opens_at_once_while_another_process_reads_it(tmp_path: Path) -> None:
    """A second process's open (bridge serve --workers N) does not wait for a moment when
    the first reads nothing: under load there is none, and the open's checkpoint waited
    out the whole busy timeout (5 s) for it."""
    path = tmp_path / "cache.sqlite3"
    first = Cache.open(path)
    add_mailbox(first, "Written")  # the log now holds frames the reader below uses
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM meta").fetchone()
    started = time.monotonic()
    second = Cache.open(path)
    took = time.monotonic() - started
    assert took < 1.0, took
    assert "Written" in {r.name for r in second.mailboxes()}
    reader.execute("COMMIT")
    reader.close()
    second.close()
    first.close()


def test_a_new_cache_on_a_full_disk_says_so(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes a write past the limit fail with EFBIG, as a full disk would
    with ENOSPC; run in a child so the limit binds nobody else."""
    code = """
import resource, signal, sys
from bridge.store.cache import Cache
from bridge.store.health import StorageFull
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
try:
    Cache.open(sys.argv[1])
except StorageFull:
    print("StorageFull")
"""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "u" / "cache.sqlite3")],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == StorageFull.__name__
