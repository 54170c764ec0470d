"""Mailbox/get, /changes, /query, /queryChanges and /set over real HTTP and real Dovecot."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest
from imapclient import IMAPClient

from bridge.demo.cyrus import Cyrus
from bridge.mail.mailbox_set import MailboxSetter
from bridge.store.cache import Cache
from tests.integration.server import JmapClient
from tests.integration.test_email import message
from tests.integration.test_email_set import between_sync_and_write
from tests.integration.upstreams import Upstream, every_upstream

pytestmark = every_upstream

PLAIN = b"From: a@example.com\r\nSubject: hi\r\nMessage-ID: <%d@example.com>\r\n\r\nbody %d\r\n"
# Every message's body differs: Cyrus gives identical bytes one EMAILID, so one Email.
BODIES = itertools.count()


def append(other: IMAPClient, folder: str, count: int, flags: tuple[bytes, ...] = ()) -> None:
    for number in range(count):
        other.append(folder, PLAIN % (number, next(BODIES)), flags=flags)


def test_get_lists_every_folder_with_every_property(jmap: JmapClient, other: IMAPClient) -> None:
    other.create_folder("Work")
    other.create_folder("Work/Projects")
    append(other, "INBOX", 3)
    append(other, "INBOX", 2, flags=(b"\\Seen",))
    boxes = jmap.mailboxes()
    assert {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive", "Work", "Work/Projects"} <= set(
        boxes
    )
    inbox = boxes["INBOX"]
    assert set(inbox) == {
        "id", "name", "parentId", "role", "sortOrder", "totalEmails", "unreadEmails",
        "totalThreads", "unreadThreads", "myRights", "isSubscribed",
    }  # fmt: skip
    assert inbox["role"] == "inbox" and inbox["parentId"] is None
    assert (inbox["totalEmails"], inbox["unreadEmails"]) == (5, 3)
    # The same Message-IDs twice: one thread per Message-ID.
    assert inbox["totalThreads"] == 3 and inbox["unreadThreads"] == 3
    assert inbox["myRights"]["mayDelete"] is False and inbox["myRights"]["mayReadItems"]
    assert boxes["Drafts"]["role"] == "drafts" and boxes["Trash"]["role"] == "trash"
    assert boxes["Work/Projects"]["name"] == "Projects"
    assert boxes["Work/Projects"]["parentId"] == boxes["Work"]["id"]
    assert boxes["Work"]["role"] is None


def test_get_by_ids_properties_and_not_found(jmap: JmapClient) -> None:
    inbox = jmap.mailboxes()["INBOX"]
    result = jmap.call("Mailbox/get", {"ids": [inbox["id"], "nope"], "properties": ["name"]})
    assert result["list"] == [{"id": inbox["id"], "name": "INBOX"}]
    assert result["notFound"] == ["nope"]
    bad = jmap.call("Mailbox/get", {"ids": None, "properties": ["colour"]})
    assert bad["error"]["type"] == "invalidArguments"


def test_changes_follow_another_clients_work(jmap: JmapClient, other: IMAPClient) -> None:
    # Not Junk: the test Dovecot re-creates its special folders as soon as they are gone.
    other.create_folder("Old")
    state = jmap.call("Mailbox/get", {"ids": []})["state"]
    other.create_folder("Receipts")
    append(other, "INBOX", 2)
    changes = jmap.call("Mailbox/changes", {"sinceState": state})
    boxes = jmap.mailboxes()
    assert changes["created"] == [boxes["Receipts"]["id"]]
    assert changes["updated"] == [boxes["INBOX"]["id"]]
    assert changes["destroyed"] == [] and changes["hasMoreChanges"] is False
    # Only INBOX's counts moved: the client may fetch just those.
    assert changes["updatedProperties"] == [
        "totalEmails", "unreadEmails", "totalThreads", "unreadThreads",
    ]  # fmt: skip
    state = changes["newState"]
    other.rename_folder("Receipts", "Bills")
    other.delete_folder("Old")
    changes = jmap.call("Mailbox/changes", {"sinceState": state})
    assert changes["updated"] == [boxes["Receipts"]["id"]]  # the id survives RENAME
    assert changes["destroyed"] == [boxes["Old"]["id"]]
    assert changes["updatedProperties"] is None
    assert jmap.mailboxes()["Bills"]["id"] == boxes["Receipts"]["id"]
    nothing = jmap.call("Mailbox/changes", {"sinceState": changes["newState"]})
    assert nothing["created"] == nothing["updated"] == nothing["destroyed"] == []
    assert nothing["newState"] == changes["newState"]


def test_changes_with_max_changes_pages(jmap: JmapClient, other: IMAPClient) -> None:
    state = jmap.call("Mailbox/get", {"ids": []})["state"]
    for name in ("A", "B", "C"):
        other.create_folder(name)
    seen: list[str] = []
    while True:
        page = jmap.call("Mailbox/changes", {"sinceState": state, "maxChanges": 2})
        assert len(page["created"]) + len(page["updated"]) <= 2
        seen += page["created"]
        state = page["newState"]
        if not page["hasMoreChanges"]:
            break
    boxes = jmap.mailboxes()
    assert sorted(seen) == sorted(boxes[name]["id"] for name in "ABC")


def test_flag_change_by_another_client_moves_counts(jmap: JmapClient, other: IMAPClient) -> None:
    append(other, "INBOX", 2)
    before = jmap.mailboxes()["INBOX"]
    assert before["unreadEmails"] == 2
    state = jmap.call("Mailbox/get", {"ids": []})["state"]
    other.select_folder("INBOX")
    other.add_flags(other.search("ALL")[:1], [b"\\Seen"])
    after = jmap.mailboxes()["INBOX"]
    assert after["unreadEmails"] == 1 and after["totalEmails"] == 2
    changes = jmap.call("Mailbox/changes", {"sinceState": state})
    assert changes["updated"] == [before["id"]]


def test_a_folder_destroyed_with_an_unread_reply_moves_another_folders_unread_threads(
    jmap: JmapClient, other: IMAPClient
) -> None:
    # The thread's one unread Email goes with the folder: INBOX's thread is read now.
    other.create_folder("Side")
    headers = b"From: a@example.com\r\nSubject: %s\r\nMessage-ID: <%s@example.com>\r\n"
    other.append("INBOX", headers % (b"topic", b"d1") + b"\r\nx\r\n", flags=(b"\\Seen",))
    reply = headers % (b"Re: topic", b"d2") + b"In-Reply-To: <d1@example.com>\r\n\r\ny\r\n"
    other.append("Side", reply)
    boxes = jmap.mailboxes()
    assert (boxes["INBOX"]["unreadEmails"], boxes["INBOX"]["unreadThreads"]) == (0, 1)
    side = boxes["Side"]["id"]
    done = jmap.call("Mailbox/set", {"destroy": [side], "onDestroyRemoveEmails": True})
    assert done["destroyed"] == [side], done
    inbox = jmap.mailboxes()["INBOX"]
    assert (inbox["totalEmails"], inbox["unreadEmails"], inbox["unreadThreads"]) == (1, 0, 0)


def test_a_folder_created_renamed_unsubscribed_or_destroyed_empty_costs_no_recount(
    jmap: JmapClient, other: IMAPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a change that moves counts (a folder gone, the trash moved) has every folder
    counted afresh: on a big account that is the dear part of a Mailbox/set."""
    append(other, "INBOX", 2)
    append(other, "INBOX", 1, flags=(b"\\Seen",))
    counts = ("totalEmails", "unreadEmails", "totalThreads", "unreadThreads")
    before = [jmap.mailboxes()["INBOX"][name] for name in counts]
    assert before[:2] == [3, 2]
    whole: list[bool] = []
    recount = Cache.recount

    def watched(cache: Cache, mailbox_ids: Iterable[str] | None = ()) -> list[str]:
        whole.append(mailbox_ids is None)
        return recount(cache, mailbox_ids)

    monkeypatch.setattr(Cache, "recount", watched)
    made = jmap.call("Mailbox/set", {"create": {"n": {"name": "Projects"}}})["created"]["n"]
    update = {made["id"]: {"name": "Plans", "isSubscribed": False}}
    assert jmap.call("Mailbox/set", {"update": update})["updated"] == {made["id"]: None}
    other.create_folder("Elsewhere")
    append(other, "Elsewhere", 1)
    boxes = jmap.mailboxes()
    assert not any(whole), whole
    assert [boxes["INBOX"][name] for name in counts] == before
    assert boxes["Plans"]["isSubscribed"] is False and boxes["Elsewhere"]["totalEmails"] == 1
    done = jmap.call("Mailbox/set", {"destroy": [made["id"]]})
    assert done["destroyed"] == [made["id"]], done
    assert not any(whole)  # gone empty: no Email left a thread
    elsewhere = boxes["Elsewhere"]["id"]
    done = jmap.call("Mailbox/set", {"destroy": [elsewhere], "onDestroyRemoveEmails": True})
    assert done["destroyed"] == [elsewhere], done
    assert any(whole)  # gone with its mail: counted afresh
    assert [jmap.mailboxes()["INBOX"][name] for name in counts] == before


def test_query_filters_and_sorts(jmap: JmapClient, other: IMAPClient) -> None:
    other.create_folder("Work")
    other.create_folder("Work/Alpha")
    other.create_folder("Work/beta")
    other.unsubscribe_folder("Work/beta")
    boxes = jmap.mailboxes()
    ids = {name: box["id"] for name, box in boxes.items()}

    def query(**args: object) -> list[str]:
        result = jmap.call("Mailbox/query", args)
        assert "error" not in result, result
        return result["ids"]

    assert set(query(filter={"parentId": ids["Work"]})) == {ids["Work/Alpha"], ids["Work/beta"]}
    assert query(filter={"role": "trash"}) == [ids["Trash"]]
    assert ids["Work"] not in query(filter={"hasAnyRole": True})
    assert query(filter={"name": "BET"}) == [ids["Work/beta"]]
    assert ids["Work/beta"] not in query(filter={"isSubscribed": True})
    either = query(filter={"operator": "OR", "conditions": [{"role": "inbox"}, {"name": "alp"}]})
    assert set(either) == {ids["INBOX"], ids["Work/Alpha"]}
    top = query(filter={"operator": "NOT", "conditions": [{"parentId": ids["Work"]}]})
    assert ids["Work/Alpha"] not in top and ids["INBOX"] in top
    by_name = query(filter={"parentId": ids["Work"]}, sort=[{"property": "name"}])
    assert by_name == [ids["Work/Alpha"], ids["Work/beta"]]  # case-insensitive
    descending = query(
        filter={"parentId": ids["Work"]}, sort=[{"property": "name", "isAscending": False}]
    )
    assert descending == [ids["Work/beta"], ids["Work/Alpha"]]
    tree = query(sortAsTree=True, sort=[{"property": "name"}])
    assert tree.index(ids["Work"]) + 1 == tree.index(ids["Work/Alpha"])
    by_order = query(sort=[{"property": "sortOrder"}, {"property": "name"}])
    assert by_order[0] == ids["INBOX"]
    # Comparators may carry keys bridge does not use; a real client sends them.
    assert query(sort=[{"property": "name", "collation": "i;unicode-casemap", "x": 1}])
    as_tree = query(filter={"name": "a"}, filterAsTree=True)
    assert ids["Work/Alpha"] not in as_tree  # its parent "Work" has no "a"


def test_query_paging_total_and_anchor(jmap: JmapClient) -> None:
    full = jmap.call("Mailbox/query", {"sort": [{"property": "name"}], "calculateTotal": True})
    assert full["total"] == len(full["ids"]) == 6 and full["canCalculateChanges"] is True
    page = jmap.call("Mailbox/query", {"sort": [{"property": "name"}], "position": 2, "limit": 2})
    assert page["ids"] == full["ids"][2:4] and page["position"] == 2
    tail = jmap.call("Mailbox/query", {"sort": [{"property": "name"}], "position": -2})
    assert tail["ids"] == full["ids"][-2:] and tail["position"] == 4
    anchored = jmap.call(
        "Mailbox/query",
        {"sort": [{"property": "name"}], "anchor": full["ids"][3], "anchorOffset": -1},
    )
    assert anchored["ids"] == full["ids"][2:] and anchored["position"] == 2
    missing = jmap.call("Mailbox/query", {"anchor": "nope"})
    assert missing["error"]["type"] == "anchorNotFound"


def test_query_changes(jmap: JmapClient, other: IMAPClient) -> None:
    sort = [{"property": "name"}]
    other.create_folder("Zebra")
    first = jmap.call("Mailbox/query", {"sort": sort})
    other.create_folder("Aardvark")
    other.delete_folder("Zebra")
    append(other, "INBOX", 1)  # counts only: not a change to this query
    changes = jmap.call(
        "Mailbox/queryChanges",
        {"sort": sort, "sinceQueryState": first["queryState"], "calculateTotal": True},
    )
    now = jmap.call("Mailbox/query", {"sort": sort})
    boxes = jmap.mailboxes()
    assert changes["added"] == [{"id": boxes["Aardvark"]["id"], "index": 0}]
    zebra = next(i for i in first["ids"] if i not in now["ids"])
    assert set(changes["removed"]) == {zebra, boxes["Aardvark"]["id"]}
    assert changes["total"] == len(now["ids"])
    assert changes["newQueryState"] == now["queryState"]
    # Replaying the changes on the old list gives the new one.
    replayed = [i for i in first["ids"] if i not in changes["removed"]]
    for item in changes["added"]:
        replayed.insert(item["index"], item["id"])
    assert replayed == now["ids"]
    too_many = jmap.call(
        "Mailbox/queryChanges",
        {"sort": sort, "sinceQueryState": first["queryState"], "maxChanges": 1},
    )
    assert too_many["error"]["type"] == "tooManyChanges"


def quoted_name(upstream: Upstream) -> str:
    """A name that travels as a quoted string. Cyrus refuses " \\ { } % ; ! ^ ` | in names
    (NO "Invalid mailbox name"), so it gets parentheses instead of quotes."""
    return "Réunions (Q3)" if isinstance(upstream, Cyrus) else 'Réunions "Q3"'


def test_set_create_rename_subscribe_destroy(
    jmap: JmapClient, other: IMAPClient, upstream: Upstream
) -> None:
    name = quoted_name(upstream)
    state = jmap.call("Mailbox/get", {"ids": []})["state"]
    created = jmap.call(
        "Mailbox/set",
        {
            "ifInState": state,
            "create": {
                "p": {"name": "Projects", "parentId": None, "sortOrder": 7},
                "c": {"name": name, "parentId": "#p", "isSubscribed": False},
            },
        },
    )
    assert created["notCreated"] == {}, created
    parent, child = created["created"]["p"]["id"], created["created"]["c"]["id"]
    names = {name for _, _, name in other.list_folders()}
    assert {"Projects", f"Projects/{name}"} <= names
    assert f"Projects/{name}" not in {folder for _, _, folder in other.list_sub_folders()}
    boxes = jmap.mailboxes()
    assert boxes["Projects"]["sortOrder"] == 7 and boxes["Projects"]["isSubscribed"] is True
    assert boxes[f"Projects/{name}"]["id"] == child
    assert created["oldState"] == state and created["newState"] != state

    renamed = jmap.call(
        "Mailbox/set",
        {"update": {child: {"name": "Meetings", "parentId": None, "isSubscribed": True}}},
    )
    assert renamed["updated"] == {child: None}, renamed
    assert "Meetings" in {name for _, _, name in other.list_sub_folders()}
    assert jmap.mailboxes()["Meetings"]["id"] == child

    patched = jmap.call("Mailbox/set", {"update": {parent: {"sortOrder": 3}}})
    assert patched["updated"] == {parent: None}
    assert jmap.mailboxes()["Projects"]["sortOrder"] == 3

    destroyed = jmap.call("Mailbox/set", {"destroy": [parent, child]})
    assert sorted(destroyed["destroyed"]) == sorted([parent, child])
    names = {name for _, _, name in other.list_folders()}
    assert "Projects" not in names and "Meetings" not in names
    changes = jmap.call("Mailbox/changes", {"sinceState": state})
    assert changes["created"] == [] and changes["destroyed"] == []  # born and gone since


def test_set_errors(jmap: JmapClient, other: IMAPClient) -> None:
    other.create_folder("Full")
    other.create_folder("Parent")
    other.create_folder("Parent/Kid")
    append(other, "Full", 1)
    boxes = jmap.mailboxes()
    ids = {name: box["id"] for name, box in boxes.items()}
    result = jmap.call(
        "Mailbox/set",
        {
            "create": {
                "dup": {"name": "Full"},
                # U+2215 stands for "/" inside a name (bridge/mail/names.py).
                "slash": {"name": "a\u2215b"},
                "empty": {"name": ""},
                "orphan": {"name": "x", "parentId": "nope"},
                "serverset": {"name": "y", "totalEmails": 3},
            },
            "update": {
                "nope": {"name": "z"},
                ids["INBOX"]: {"name": "Inbox2"},
                ids["Parent"]: {"parentId": ids["Parent/Kid"]},
                ids["Full"]: {"myRights/mayDelete": False},
            },
            "destroy": [ids["Full"], ids["Parent"], ids["INBOX"], "gone"],
        },
    )
    not_created = result["notCreated"]
    assert not_created["dup"]["type"] == "invalidProperties"
    assert not_created["slash"]["properties"] == ["name"]
    assert not_created["empty"]["properties"] == ["name"]
    assert not_created["orphan"]["properties"] == ["parentId"]
    assert not_created["serverset"]["properties"] == ["totalEmails"]
    not_updated = result["notUpdated"]
    assert not_updated["nope"]["type"] == "notFound"
    assert not_updated[ids["INBOX"]]["type"] == "forbidden"
    assert not_updated[ids["Parent"]]["properties"] == ["parentId"]  # a cycle
    assert not_updated[ids["Full"]]["type"] == "invalidProperties"
    not_destroyed = result["notDestroyed"]
    assert not_destroyed[ids["Full"]]["type"] == "mailboxHasEmail"
    assert not_destroyed[ids["Parent"]]["type"] == "mailboxHasChild"
    assert not_destroyed[ids["INBOX"]]["type"] == "forbidden"
    assert not_destroyed["gone"]["type"] == "notFound"
    assert result["created"] is None and result["destroyed"] is None
    # Nothing changed upstream.
    names = {name for _, _, name in other.list_folders()}
    assert {"Full", "Parent", "Parent/Kid", "INBOX"} <= names and "a\u2215b" not in names
    assert "x" not in names and "y" not in names
    removed = jmap.call("Mailbox/set", {"destroy": [ids["Full"]], "onDestroyRemoveEmails": True})
    assert removed["destroyed"] == [ids["Full"]]
    assert "Full" not in {name for _, _, name in other.list_folders()}
    stale = jmap.call("Mailbox/set", {"ifInState": "stale-1", "destroy": [ids["Parent/Kid"]]})
    assert stale["error"]["type"] == "stateMismatch"
    assert "Parent/Kid" in {name for _, _, name in other.list_folders()}


def test_injection_in_names_stays_a_name(
    jmap: JmapClient, other: IMAPClient, upstream: Upstream
) -> None:
    hostile = 'x" DELETE INBOX\r\nA1 DELETE Trash'
    result = jmap.call("Mailbox/set", {"create": {"h": {"name": hostile}}})
    assert result["notCreated"]["h"]["properties"] == ["name"]
    quoted = 'Evil" {5}\\ (name)'
    before = {name for _, _, name in other.list_folders()}
    result = jmap.call("Mailbox/set", {"create": {"q": {"name": quoted}}})
    names = {name for _, _, name in other.list_folders()}
    assert {"INBOX", "Trash"} <= names
    if isinstance(upstream, Cyrus):
        # Refused as a name (Cyrus allows none of " { \\), and nothing else happened.
        refused = result["notCreated"]["q"]
        assert refused["type"] == "invalidProperties" and refused["properties"] == ["name"]
        assert "Invalid mailbox name" in refused["description"]
        assert names == before
    else:
        assert result["created"], result
        assert names == before | {quoted}


def test_a_folder_is_not_destroyed_with_mail_the_cache_has_not_seen_yet(
    jmap: JmapClient, other: IMAPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another client files mail in a folder the cache holds as empty, just after the
    request's sync. Destroying the folder without onDestroyRemoveEmails must answer
    mailboxHasEmail, not DELETE the new mail with it."""
    other.create_folder("Quiet")
    quiet = jmap.mailboxes()["Quiet"]
    assert quiet["totalEmails"] == 0
    between_sync_and_write(monkeypatch, MailboxSetter, "_destroy",
                           lambda: other.append("Quiet", message(1, "Just filed")))  # fmt: skip
    result = jmap.call("Mailbox/set", {"destroy": [quiet["id"]]})
    assert result["notDestroyed"][quiet["id"]]["type"] == "mailboxHasEmail", result
    assert other.folder_status("Quiet", ["MESSAGES"])[b"MESSAGES"] == 1
