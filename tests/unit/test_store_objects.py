"""Objects the cache keeps whole (Identity, EmailSubmission): stored, and logged per type."""

from __future__ import annotations

from pathlib import Path

from bridge.store.cache import Cache
from bridge.store.journal import EMAIL, EMAIL_SUBMISSION, IDENTITY
from tests.support.stores import open_test_cache


def test_put_update_remove_and_their_changes() -> None:
    cache = open_test_cache()
    start = cache.state(IDENTITY)
    cache.put_object(IDENTITY, "i1", b'{"id":"i1"}')
    cache.put_object(IDENTITY, "i2", b'{"id":"i2"}')
    middle = cache.state(IDENTITY)
    cache.put_object(IDENTITY, "i1", b'{"id":"i1","name":"x"}')
    assert cache.remove_object(IDENTITY, "i2")
    assert not cache.remove_object(IDENTITY, "i2")
    assert cache.objects(IDENTITY) == {"i1": b'{"id":"i1","name":"x"}'}
    everything = cache.changes(IDENTITY, start, None)
    assert (everything.created, everything.updated, everything.destroyed) == (["i1"], [], [])
    later = cache.changes(IDENTITY, middle, None)
    assert (later.created, later.updated, later.destroyed) == ([], ["i1"], ["i2"])
    # Types keep apart: same ids, other states.
    assert cache.objects(EMAIL_SUBMISSION) == {}
    assert cache.state(EMAIL_SUBMISSION) == 0 and cache.state(EMAIL) == 0


def test_objects_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    cache = Cache.open(path)
    cache.put_object(EMAIL_SUBMISSION, "s1", b"{}")
    state = cache.state(EMAIL_SUBMISSION)
    cache.close()
    again = Cache.open(path)
    assert again.objects(EMAIL_SUBMISSION) == {"s1": b"{}"}
    assert again.state(EMAIL_SUBMISSION) == state
    again.close()
