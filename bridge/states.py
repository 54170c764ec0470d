"""A user's data-type states, as the push channels (EventSource, WebSocket and
PushSubscription) compare them."""

from __future__ import annotations

from collections.abc import Collection

States = dict[str, str]


def moved(states: States, sent: States, wanted: Collection[str] | None) -> States:
    """The states of ``wanted`` types (None: all) that differ from those already ``sent``:
    what a push channel tells its client."""
    return {
        name: state for name, state in states.items()
        if (wanted is None or name in wanted) and sent.get(name) != state
    }  # fmt: skip
