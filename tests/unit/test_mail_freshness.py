"""When a request may skip its sync: only after a sync of a notified watcher that began
after the last news."""

from __future__ import annotations

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
