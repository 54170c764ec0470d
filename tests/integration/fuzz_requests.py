"""Seeded generator of hostile JMAP requests, for tests/integration/test_fuzz.py (a CI-sized
run) and tests/bench/fuzz.py (100,000 and more).

Each request is raw bytes: garbage, broken or deep/wide JSON, huge strings, and Requests
whose shape is right often enough to reach the handlers: real method names with arguments
of the right names and random types, result references (valid, dangling, malformed),
creation-id back-references, and random capability lists. Same seed, same requests.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from bridge.mail import registered_methods
from bridge.mail.capabilities import Features

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
CAPABILITIES = (
    CORE, MAIL, "urn:ietf:params:jmap:submission", "urn:ietf:params:jmap:vacationresponse",
    "urn:ietf:params:jmap:quota", "urn:ietf:params:jmap:websocket",
    "urn:ietf:params:jmap:contacts", "urn:x:nonsense", "", "urn:ietf:params:jmap:core ",
)  # fmt: skip

# Argument names the standard methods and the mail ones read (RFC 8620 §5, RFC 8621).
ARGUMENTS = (
    "accountId", "ids", "properties", "bodyProperties", "fetchTextBodyValues",
    "fetchHTMLBodyValues", "fetchAllBodyValues", "maxBodyValueBytes", "sinceState",
    "maxChanges", "filter", "sort", "position", "anchor", "anchorOffset", "limit",
    "calculateTotal", "collapseThreads", "sortAsTree", "filterAsTree", "sinceQueryState",
    "upToId", "ifInState", "create", "update", "destroy", "onDestroyRemoveEmails",
    "emails", "blobIds", "fromAccountId", "onSuccessUpdateEmail", "onSuccessDestroyEmail",
    "emailIds", "onSuccessDestroyOriginal", "destroyFromIfInState",
)  # fmt: skip
# The arguments each kind of standard method takes (RFC 8620 §5.1-5.6).
ARGUMENTS_BY_VERB = {
    "get": ("ids", "properties", "bodyProperties", "fetchTextBodyValues", "maxBodyValueBytes"),
    "changes": ("sinceState", "maxChanges"),
    "query": ("filter", "sort", "position", "limit", "anchor", "anchorOffset",
              "calculateTotal", "collapseThreads"),
    "queryChanges": ("filter", "sort", "sinceQueryState", "maxChanges", "upToId",
                     "calculateTotal"),
    "set": ("ifInState", "create", "update", "destroy"),
}  # fmt: skip
FILTER_KEYS = (
    "inMailbox", "inMailboxOtherThan", "before", "after", "minSize", "maxSize",
    "allInThreadHaveKeyword", "someInThreadHaveKeyword", "noneInThreadHaveKeyword",
    "hasKeyword", "notKeyword", "hasAttachment", "text", "from", "to", "cc", "bcc",
    "subject", "body", "header", "name", "role", "parentId", "hasAnyRole", "isSubscribed",
    "operator", "conditions", "identityIds", "emailIds", "threadIds", "undoStatus",
)  # fmt: skip
PROPERTIES = (
    "id", "name", "parentId", "role", "mailboxIds", "keywords", "subject", "from", "to",
    "receivedAt", "size", "preview", "bodyStructure", "textBody", "htmlBody", "bodyValues",
    "header:Subject", "header:From:asAddresses", "header:X-Long:all", "threadId", "blobId",
    "messageId", "attachments", "isSubscribed", "sortOrder", "totalEmails", "emailIds",
)  # fmt: skip
TEXT = ("", "a", "INBOX", "Drafts", "$seen", "$flagged", "é", "\u0000", "\r\nA1 LOGOUT",
        "{5}\r\nhello", '"', "\\", "*", "%", "2024-01-01T00:00:00Z", "not a date",
        "../../etc/passwd", "#c0", "\ud800", "x" * 300)  # fmt: skip


def served_methods() -> list[str]:
    """Every method a bridge with its default features serves, and a few of capabilities
    it leaves out (those must answer unknownMethod)."""
    served = [spec.name for spec in registered_methods(Features())]
    return [*served, "PushSubscription/get", "PushSubscription/set", "Quota/get",
            "Identity/get", "EmailSubmission/set", "VacationResponse/get"]  # fmt: skip


class Generator:
    def __init__(self, seed: int, methods: Sequence[str], account_id: str) -> None:
        self.rng = random.Random(seed)
        self.methods = [*methods, "Core/echo", "Email/nothing", "Foo/bar", "", "x" * 500]
        self.account_id = account_id
        self.kinds: list[tuple[Callable[[], bytes], int]] = [
            (self.request, 70),
            (self.garbage, 5),
            (self.deep, 5),
            (self.wide, 3),
            (self.huge_string, 3),
            (self.wrong_shape, 8),
            (self.deep_filter, 3),
            (self.huge_filter, 3),
        ]

    def __iter__(self) -> Iterator[bytes]:
        kinds, weights = zip(*self.kinds, strict=True)
        while True:
            yield self.rng.choices(kinds, weights)[0]()

    # -- values ---------------------------------------------------------------------------

    def scalar(self) -> Any:
        rng = self.rng
        return rng.choice([
            None, True, False, 0, -1, 1, 2**53, 2**64, -(2**63), 1.5, float(rng.randint(0, 9)),
            rng.choice(TEXT), self.account_id, "".join(rng.choices("abc-_#$", k=rng.randint(1, 9))),
        ])  # fmt: skip

    def value(self, depth: int = 0) -> Any:
        rng = self.rng
        roll = rng.random()
        if depth > 4 or roll < 0.55:
            return self.scalar()
        if roll < 0.75:
            return [self.value(depth + 1) for _ in range(rng.randint(0, 4))]
        if roll < 0.85:
            return self.filter(depth)
        keys = rng.choices(PROPERTIES + FILTER_KEYS + ("#c0", "c1"), k=rng.randint(0, 4))
        return {key: self.value(depth + 1) for key in keys}

    def filter(self, depth: int = 0) -> Any:
        rng = self.rng
        if depth < 4 and rng.random() < 0.4:
            return {
                "operator": rng.choice(["AND", "OR", "NOT", "XOR", 1]),
                "conditions": [self.filter(depth + 1) for _ in range(rng.randint(0, 3))],
            }
        keys = rng.choices(FILTER_KEYS, k=rng.randint(0, 3))
        return {key: self.value(depth + 2) for key in keys}  # fmt: skip

    def arguments(self, method: str, call_index: int) -> dict[str, Any]:
        rng = self.rng
        args: dict[str, Any] = {}
        if rng.random() < 0.85:
            args["accountId"] = self.account_id if rng.random() < 0.9 else self.scalar()
        # Some calls get only arguments the method takes, of the right types: those reach
        # the handlers' real work.
        fitting = ARGUMENTS_BY_VERB.get(method.rpartition("/")[2])
        plausible = 1.0 if fitting and rng.random() < 0.5 else 0.4
        names = ARGUMENTS if plausible < 1 or fitting is None else fitting
        for name in rng.choices(names, k=rng.randint(0, 5)):
            if rng.random() < plausible:
                args[name] = self.plausible(name)
            elif name == "filter":
                args[name] = self.filter()
            elif name == "properties":
                args[name] = rng.choices(PROPERTIES, k=rng.randint(0, 5))
            elif name in ("create", "update") and rng.random() < 0.7:
                args[name] = {f"c{n}": self.value(1) for n in range(rng.randint(0, 3))}
            else:
                args[name] = self.value()
        if call_index and rng.random() < 0.3:
            args["#" + rng.choice(["ids", "emailIds", "filter", "accountId", "x"])] = (
                self.reference(call_index)
            )
        return args

    def plausible(self, name: str) -> Any:
        """A value of the right type for argument ``name``, so the call gets past its
        argument checks and into the handler."""
        rng = self.rng
        word = rng.choice(["INBOX", "Drafts", "fuzz", "é", "x" * 40, "a b", "$seen"])
        by_name: dict[str, Callable[[], Any]] = {
            "ids": lambda: None if rng.random() < 0.5 else [word, "Mabc", "M" + word],
            "properties": lambda: rng.sample(PROPERTIES, k=rng.randint(0, 6)),
            "bodyProperties": lambda: rng.sample(["partId", "type", "size", "name"], k=2),
            "filter": lambda: {
                rng.choice(
                    ["text", "subject", "from", "hasKeyword", "name", "minSize", "inMailbox"]
                ): rng.choice([word, 10])
            },
            "sort": lambda: [
                {
                    "property": rng.choice(
                        ["receivedAt", "size", "subject", "name", "sortOrder", "from"]
                    ),
                    "isAscending": rng.random() < 0.5,
                }
            ],
            "position": lambda: rng.choice([0, 1, -1, 5, 10**6]),
            "limit": lambda: rng.choice([0, 1, 10, 1000, 10**9]),
            "anchorOffset": lambda: rng.choice([0, -1, 3]),
            "maxChanges": lambda: rng.choice([1, 10, 0]),
            "maxBodyValueBytes": lambda: rng.choice([1, 100]),
            "sinceState": lambda: rng.choice(["0", "x-1", word]),
            "sinceQueryState": lambda: rng.choice(["0", "x-1", word]),
            "create": lambda: {
                "c0": rng.choice(
                    [
                        {"name": f"Fuzz {word} {rng.randint(0, 99)}"},
                        {
                            "mailboxIds": {word: True},
                            "subject": word,
                            "keywords": {"$seen": True},
                            "bodyValues": {"1": {"value": word}},
                            "textBody": [{"partId": "1", "type": "text/plain"}],
                        },
                        {"mailboxIds": {}, "header:X-Long": "y" * rng.choice([10, 2000, 100_000])},
                    ]
                )
            },
            "update": lambda: {word: {"name": word, "keywords/$seen": True, "isSubscribed": 1}},
            "destroy": lambda: [word, "Mabc"],
        }
        make = by_name.get(name)
        return make() if make is not None else rng.choice([True, False, None, word, 1])

    def reference(self, call_index: int) -> Any:
        rng = self.rng
        if rng.random() < 0.1:
            return self.value()
        return {
            "resultOf": f"c{rng.randint(0, call_index)}" if rng.random() < 0.8 else self.scalar(),
            "name": rng.choice(self.methods) if rng.random() < 0.8 else self.scalar(),
            "path": rng.choice(["/ids", "/list/*/id", "/list/*/emailIds", "/created/c0/id",
                                "/*", "", "/ids/0", "/list/*/threadId/*", "~1", self.scalar()]),
        }  # fmt: skip

    # -- requests -----------------------------------------------------------------------

    def request(self) -> bytes:
        rng = self.rng
        using = (
            rng.sample(CAPABILITIES[:2], k=2)
            if rng.random() < 0.7
            else rng.sample(CAPABILITIES, k=rng.randint(0, 4))
        )
        methods = [rng.choice(self.methods) for _ in range(rng.randint(1, 4))]
        calls = [[method, self.arguments(method, index), f"c{index}"]
                 for index, method in enumerate(methods)]  # fmt: skip
        body: dict[str, Any] = {"using": using, "methodCalls": calls}
        if rng.random() < 0.1:
            body["createdIds"] = self.value() if rng.random() < 0.5 else {"c0": "x"}
        return dumps(body)

    def garbage(self) -> bytes:
        rng = self.rng
        choice = rng.randint(0, 3)
        if choice == 0:
            return rng.randbytes(rng.randint(0, 200))
        if choice == 1:
            return self.request()[: rng.randint(0, 40)]  # truncated
        if choice == 2:
            return b'{"using":["' + b"\xff\xfe" + b'"],"methodCalls":[]}'
        return b"\x00" * rng.randint(1, 10)

    def deep(self) -> bytes:
        depth = self.rng.choice([60, 61, 64, 65, 100, 1000, 10_000, 100_000])
        opener, closer = self.rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        return (b'{"using":["' + CORE.encode() + b'"],"methodCalls":[["Core/echo",{"x":'
                + opener * depth + b"1" + closer * depth + b'},"0"]]}')  # fmt: skip

    def wide(self) -> bytes:
        count = self.rng.choice([1000, 10_000, 100_000])
        items = [self.scalar() for _ in range(20)] * (count // 20)
        return dumps(
            {
                "using": [CORE, MAIL],
                "methodCalls": [
                    [
                        self.rng.choice(self.methods),
                        {"accountId": self.account_id, "ids": items},
                        "w",
                    ]
                ],
            }
        )

    def huge_string(self) -> bytes:
        size = self.rng.choice([10_000, 100_000, 1_000_000, 9_000_000])
        text = "é" * (size // 2)
        method = self.rng.choice(["Core/echo", "Email/query", "Mailbox/set", "Email/set"])
        args = {"accountId": self.account_id, "filter": {"text": text},
                "create": {"c": {"name": text, "subject": text}}, "x": text}  # fmt: skip
        return dumps({"using": [CORE, MAIL], "methodCalls": [[method, args, "h"]]})

    def wrong_shape(self) -> bytes:
        rng = self.rng
        return dumps(rng.choice([
            [], "text", 5, None, {"using": CORE, "methodCalls": []},
            {"using": [CORE], "methodCalls": {}},
            {"using": [CORE], "methodCalls": [["Core/echo"]]},
            {"using": [CORE], "methodCalls": [["Core/echo", [], "0"]]},
            {"using": [CORE], "methodCalls": [[1, {}, 2]]},
            {"using": [CORE, MAIL], "methodCalls": [[rng.choice(self.methods), {}, "0"]] * 100},
            {"using": [None], "methodCalls": []},
            {"methodCalls": [["Core/echo", {}, "0"]]},
        ]))  # fmt: skip

    def deep_filter(self) -> bytes:
        levels = self.rng.choice([7, 8, 9, 30, 500])
        operator = self.rng.choice([b"OR", b"AND", b"NOT"])
        node = b'{"operator":"' + operator + b'","conditions":['
        nested = node * levels + b'{"text":"x"}' + b"]}" * levels
        method = self.rng.choice([b"Email/query", b"Mailbox/query", b"Email/queryChanges"])
        return (b'{"using":["' + CORE.encode() + b'","' + MAIL.encode() + b'"],"methodCalls":[["'
                + method + b'",{"accountId":"' + self.account_id.encode() + b'","filter":'
                + nested + b',"sinceQueryState":"x"},"f"]]}')  # fmt: skip

    def huge_filter(self) -> bytes:
        count = self.rng.choice([100, 129, 1000, 10_000])
        node = {"operator": "OR", "conditions": [{"subject": f"w{n}"} for n in range(count)]}
        return dumps(
            {
                "using": [CORE, MAIL],
                "methodCalls": [
                    ["Email/query", {"accountId": self.account_id, "filter": node}, "f"]
                ],
            }
        )


def dumps(value: Any) -> bytes:
    # Lone surrogates cannot be UTF-8: json escapes them, as a hostile client might.
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


class Tally:
    """What a run saw: HTTP statuses, request-level and method-level error types."""

    def __init__(self) -> None:
        self.requests = 0
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()  # method responses that are not errors
        self.failures: list[tuple[int, bytes, str]] = []  # (status, request, response)

    def add(self, body: bytes, response: httpx.Response) -> None:
        self.requests += 1
        self.statuses[response.status_code] += 1
        if response.status_code >= 500 or "Traceback" in response.text:
            self.failures.append((response.status_code, body[:2000], response.text[:2000]))
            return
        if response.status_code == 200:
            for name, args, _ in response.json()["methodResponses"]:
                if name == "error":
                    self.errors[args["type"]] += 1
                else:
                    self.answered[name] += 1
        elif response.headers.get("content-type", "").startswith("application/problem+json"):
            self.errors[response.json().get("type", "?").rsplit(":", 1)[-1]] += 1

    def merge(self, other: Tally) -> None:
        self.requests += other.requests
        self.statuses.update(other.statuses)
        self.errors.update(other.errors)
        self.answered.update(other.answered)
        self.failures.extend(other.failures)


def send(url: str, auth: tuple[str, str], requests: Iterator[bytes], count: int) -> Tally:
    tally = Tally()
    with httpx.Client(base_url=url, auth=auth, timeout=120) as client:
        for body in itertools.islice(requests, count):
            response = client.post(
                "/jmap/api", content=body, headers={"Content-Type": "application/json"}
            )
            tally.add(body, response)
    return tally
