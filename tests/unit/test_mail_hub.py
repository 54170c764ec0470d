"""StateHub: what every push channel (EventSource, WebSocket, PushSubscription) is fed."""

from __future__ import annotations

from bridge.mail.hub import StateHub


def test_a_late_older_report_never_moves_a_state_backwards() -> None:
    hub = StateHub()
    queue = hub.subscribe("u")
    hub.publish("u", {"Email": "ep-5", "Mailbox": "ep-3"})
    # A watcher's report read before the write that made Email ep-5 arrives after it.
    hub.publish("u", {"Email": "ep-4", "Mailbox": "ep-6"})
    assert queue.get_nowait() == {"Email": "ep-5", "Mailbox": "ep-3"}
    assert queue.get_nowait() == {"Email": "ep-5", "Mailbox": "ep-6"}


def test_a_new_epoch_or_a_digest_state_is_news() -> None:
    hub = StateHub()
    queue = hub.subscribe("u")
    hub.publish("u", {"Email": "old-9", "VacationResponse": "3f2a"})
    hub.publish("u", {"Email": "new-1", "VacationResponse": "07c1"})  # a rebuilt cache
    queue.get_nowait()
    assert queue.get_nowait() == {"Email": "new-1", "VacationResponse": "07c1"}


def test_users_are_kept_apart() -> None:
    hub = StateHub()
    alice, bob = hub.subscribe("alice"), hub.subscribe("bob")
    hub.publish("alice", {"Email": "a-2"})
    assert alice.get_nowait() == {"Email": "a-2"} and bob.empty()
