"""The upstream IMAP adapter: the only part of bridge that speaks IMAP.

- ``quoting``: the one path by which client-supplied strings reach the wire.
- ``wire``: sends a command (literals included) and reads its responses.
- ``responses``: pure parsers from responses to the typed results in ``models``.
- ``session``: connecting, TLS, authentication, capabilities.
- ``connection``: ``ImapConnection``, the typed, synchronous commands.
- ``pool``: idle authenticated connections per user, for worker threads.
- ``flags``: IMAP flags <-> JMAP keywords.
- ``errors``: what callers catch.
"""
