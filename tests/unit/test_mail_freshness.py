"""When a request may skip its sync: only after a sync of a notified watcher that began
after the last news."""

from __future__ import annotations

import pytest

from bridge import inline
from bridge.mail.freshness import Freshness


def test_level_only_after_a_notified_watchers_sync() -> None:
    freshness = Freshness()
    assert not freshness.level()
    freshness.synced(freshness.sync_starts())  # a sync before NOTIFY vouches for nothing
    assert not freshness.level()
    freshness.listening()
    assert not freshness.level()
    freshness.synced(freshness.sync_starts())
    assert freshness.level()


def test_news_during_a_sync_leaves_the_cache_unvouched() -> None:
    freshness = Freshness()
    freshness.listening()
    token = freshness.sync_starts()
    freshness.heard()
    freshness.synced(token)
    assert not freshness.level()
    freshness.synced(freshness.sync_starts())
    assert freshness.level()


def test_a_lost_session_vouches_for_nothing_until_it_listens_again() -> None:
    freshness = Freshness()
    freshness.listening()
    freshness.synced(freshness.sync_starts())
    freshness.lost()
    assert not freshness.level()
    freshness.synced(freshness.sync_starts())
    assert not freshness.level()
    freshness.listening()
    freshness.synced(freshness.sync_starts())
    assert freshness.level()


def test_another_processs_word_on_the_event_loop_only_if_it_comes_at_once() -> None:
    """Without a watcher here, the holder's word: read on the event loop where it comes
    without waiting, else the request moves to a worker thread, which asks."""
    answers: list[bool | None] = [True]
    asked: list[bool] = []

    def vouched() -> bool:
        asked.append(True)
        return True

    freshness = Freshness(vouched=vouched, vouched_at_once=lambda: answers[0])
    with inline.on_loop(1.0):
        assert freshness.level() and freshness.level_at_once()
        answers[0] = False
        assert not freshness.level() and not freshness.level_at_once()
        answers[0] = None
        assert not freshness.level_at_once()
        with pytest.raises(inline.NeedsWorker):
            freshness.level()
    assert not asked
    assert freshness.level() and asked == [True]  # on a worker: asked, waiting if need be
