"""The cache's SQLite schema and its migrations.

Each entry of MIGRATIONS moves the schema one version up; ``user_version`` records where a
file stands. A file newer than this code is refused rather than guessed at: the cache can
always be deleted and rebuilt from the upstream.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import tempfile
from pathlib import Path

# Migration 8's part that both databases spell alike (bridge.store.dialect has the rest in
# PostgreSQL's form).
EMAIL_QUERY_COLUMNS = """
    -- hasAttachment, made with the summary (SortKeys); NULL until then, and for Emails
    -- summarised before this column (Email/query reads their summaries once).
    ALTER TABLE emails ADD COLUMN has_attachment INTEGER;
    CREATE INDEX emails_attachment ON emails(has_attachment, id);
    -- minSize/maxSize: a range of sizes, not a walk of every Email's row.
    CREATE INDEX emails_size ON emails(size, id);
"""

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

    -- One row a folder. The status_* columns hold the last STATUS seen; the synced_*
    -- columns what the message map below reflects, so a folder whose status equals its
    -- synced state needs no SELECT.
    CREATE TABLE mailboxes (
        id TEXT PRIMARY KEY,
        upstream_key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        delimiter TEXT,
        role TEXT,
        subscribed INTEGER NOT NULL DEFAULT 0,
        selectable INTEGER NOT NULL DEFAULT 1,
        sort_order INTEGER NOT NULL DEFAULT 0,
        rights TEXT,
        status_uidvalidity INTEGER,
        status_uidnext INTEGER,
        status_modseq INTEGER,
        status_messages INTEGER,
        status_unseen INTEGER,
        synced_uidvalidity INTEGER,
        synced_uidnext INTEGER,
        synced_modseq INTEGER,
        synced_messages INTEGER,
        synced_unseen INTEGER,
        total_emails INTEGER NOT NULL DEFAULT 0,
        unread_emails INTEGER NOT NULL DEFAULT 0,
        total_threads INTEGER NOT NULL DEFAULT 0,
        unread_threads INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;

    -- One row an Email. An Email may sit in several folders (locations); keywords are the
    -- union of its locations' flags, kept here so counts need no join over flags.
    CREATE TABLE emails (
        id TEXT PRIMARY KEY,
        thread_id TEXT NOT NULL,
        keywords TEXT NOT NULL DEFAULT '',
        unread INTEGER NOT NULL DEFAULT 1,
        size INTEGER NOT NULL DEFAULT 0,
        received_at INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX emails_thread ON emails(thread_id);

    CREATE TABLE locations (
        mailbox_id TEXT NOT NULL,
        uid INTEGER NOT NULL,
        email_id TEXT NOT NULL,
        flags TEXT NOT NULL DEFAULT '',
        modseq INTEGER,
        PRIMARY KEY (mailbox_id, uid)
    ) WITHOUT ROWID;
    CREATE INDEX locations_email ON locations(email_id);

    -- Message-ID (own or referenced) -> thread, for threading without OBJECTID.
    CREATE TABLE thread_refs (
        message_id TEXT PRIMARY KEY,
        thread_id TEXT NOT NULL
    ) WITHOUT ROWID;

    -- The change log: the latest change of each object, by the cache's own counter.
    -- props_updated moves only when something other than Mailbox counts changed, which is
    -- what Mailbox/changes' updatedProperties needs.
    CREATE TABLE changelog (
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        created INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        props_updated INTEGER NOT NULL,
        destroyed INTEGER,
        PRIMARY KEY (type, id)
    ) WITHOUT ROWID;
    CREATE INDEX changelog_updated ON changelog(type, updated);
    """,
    """
    -- The Email read path: what a list view shows, parsed once (the message never
    -- changes); receivedAt beside each location, so a folder's newest page is an index
    -- range; and each thread's base subject, so a reply that changed the subject starts a
    -- thread of its own (RFC 8621 §3).
    ALTER TABLE emails ADD COLUMN summary BLOB;
    -- A folder not yet indexed whole may hold a first page of locations: this is the
    -- UIDVALIDITY they belong to.
    ALTER TABLE mailboxes ADD COLUMN index_uidvalidity INTEGER;
    ALTER TABLE locations ADD COLUMN received_at INTEGER NOT NULL DEFAULT 0;
    UPDATE locations SET received_at =
        (SELECT received_at FROM emails WHERE emails.id = locations.email_id);
    CREATE INDEX locations_received ON locations(mailbox_id, received_at, email_id);
    CREATE TABLE threads (
        id TEXT PRIMARY KEY,
        base_subject TEXT NOT NULL DEFAULT ''
    ) WITHOUT ROWID;
    INSERT INTO threads(id) SELECT DISTINCT thread_id FROM emails WHERE TRUE
        ON CONFLICT DO NOTHING;
    """,
    """
    -- Objects bridge keeps itself rather than mirroring them from IMAP (Identity,
    -- EmailSubmission): few and small, each stored whole as the JSON of its JMAP object.
    CREATE TABLE objects (
        type TEXT NOT NULL,
        id TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (type, id)
    ) WITHOUT ROWID;
    """,
    """
    -- PushSubscriptions (RFC 8620 §7.2), outside the change log: they have no state.
    -- expected_code is what the PushVerification carried; verification_code is what the
    -- client set, and the subscription is active once they match. expires: Unix seconds.
    CREATE TABLE push_subscriptions (
        id TEXT PRIMARY KEY,
        device_client_id TEXT NOT NULL,
        url TEXT NOT NULL,
        p256dh TEXT,
        auth TEXT,
        expected_code TEXT NOT NULL,
        verification_code TEXT,
        expires INTEGER NOT NULL,
        types TEXT
    ) WITHOUT ROWID;
    """,
    """
    -- Keys of the header sorts Email/query answers across folders (from, to, subject,
    -- sentAt), made with the list-view summary; NULL in sort_subject where none is made
    -- yet (the query makes them first). sent_at is NULL without a usable Date header.
    ALTER TABLE emails ADD COLUMN sort_from TEXT;
    ALTER TABLE emails ADD COLUMN sort_to TEXT;
    ALTER TABLE emails ADD COLUMN sort_subject TEXT;
    ALTER TABLE emails ADD COLUMN sent_at INTEGER;
    """,
    """
    -- The folder's SPECIAL-USE attribute as LIST gave it (RFC 6154, e.g. Flagged): what
    -- names Gmail's system labels where no role does (bridge.mail.gmail_labels).
    ALTER TABLE mailboxes ADD COLUMN special_use TEXT;
    """,
    """
    -- Email/query in SQL (bridge.store.email_query). Each keyword of an Email, so that
    -- hasKeyword and the thread-keyword conditions are index lookups; kept with
    -- emails.keywords by the cache; filled here from it (split at the spaces).
    CREATE TABLE email_keywords (
        keyword TEXT NOT NULL,
        email_id TEXT NOT NULL,
        PRIMARY KEY (keyword, email_id)
    ) WITHOUT ROWID;
    -- (substr(keywords, 1, 0): an empty word of the column's collation, which
    -- PostgreSQL's recursive query wants the same in both terms.)
    WITH RECURSIVE split(email_id, word, rest) AS (
        SELECT id, substr(keywords, 1, 0), keywords || ' ' FROM emails
        UNION ALL
        SELECT email_id, substr(rest, 1, instr(rest, ' ') - 1), substr(rest, instr(rest, ' ') + 1)
        FROM split WHERE rest <> ''
    )
    INSERT INTO email_keywords(keyword, email_id)
        SELECT word, email_id FROM split WHERE word <> '' ON CONFLICT DO NOTHING;
    -- Newest first across folders, and receivedAt ranges.
    CREATE INDEX emails_received ON emails(received_at, id);
    -- The header index of Email/query's from/to/cc/bcc/subject conditions
    -- (bridge.mail.header_text): the words of each field, decoded and case-mapped;
    -- inexact has a bit set for each field the upstream may read otherwise. NULL: not
    -- known yet (a cache from before this table, until the indexer fills it in); such an
    -- Email is always a candidate for the upstream's SEARCH.
    CREATE TABLE header_text (
        email_id TEXT PRIMARY KEY,
        from_text TEXT,
        to_text TEXT,
        cc_text TEXT,
        bcc_text TEXT,
        subject_text TEXT,
        inexact INTEGER
    ) WITHOUT ROWID;
    INSERT INTO header_text(email_id) SELECT id FROM emails;
    INSERT INTO meta(key, value) SELECT 'header_backfill', '1' WHERE EXISTS (SELECT 1 FROM emails);
    """,
    """
    -- The header index's words under a full-text index (SQLite FTS5, trigram tokenizer),
    -- so that a from/to/cc/bcc/subject word of three or more characters is found without
    -- reading every Email's row (bridge.store.email_query.header_words_match). The index
    -- holds a field only where it is exact (the narrowing reads the others, few, through
    -- header_text_uncertain), as it is stored: case-mapped already, so the tokenizer
    -- keeps case. It needs an integer key: header_text is rebuilt with one (entry, the
    -- next after the largest when a row is added, which VACUUM never renumbers as it
    -- may a rowid), and its triggers keep the index; it stores no copy of the text
    -- (content='').
    ALTER TABLE header_text RENAME TO header_text_before;
    CREATE TABLE header_text (
        email_id TEXT PRIMARY KEY,
        entry INTEGER NOT NULL UNIQUE,
        from_text TEXT,
        to_text TEXT,
        cc_text TEXT,
        bcc_text TEXT,
        subject_text TEXT,
        inexact INTEGER
    ) WITHOUT ROWID;
    -- The Emails the upstream's SEARCH must decide: not indexed yet, or a field inexact.
    CREATE INDEX header_text_uncertain ON header_text(inexact, email_id)
        WHERE inexact IS NULL OR inexact <> 0;
    CREATE VIRTUAL TABLE header_words USING fts5(
        from_text, to_text, cc_text, bcc_text, subject_text,
        content='', tokenize='trigram case_sensitive 1'
    );
    -- What the index holds of a row. A contentless index forgets a row only when told
    -- the values it was given: the triggers read them here, before the row changes.
    CREATE VIEW header_words_source AS SELECT entry,
        CASE WHEN (inexact & 1) = 0 THEN from_text END AS from_text,
        CASE WHEN (inexact & 2) = 0 THEN to_text END AS to_text,
        CASE WHEN (inexact & 4) = 0 THEN cc_text END AS cc_text,
        CASE WHEN (inexact & 8) = 0 THEN bcc_text END AS bcc_text,
        CASE WHEN (inexact & 16) = 0 THEN subject_text END AS subject_text
        FROM header_text;
    CREATE TRIGGER header_words_insert AFTER INSERT ON header_text BEGIN
        INSERT INTO header_words(rowid, from_text, to_text, cc_text, bcc_text, subject_text)
            SELECT * FROM header_words_source WHERE entry = new.entry;
    END;
    CREATE TRIGGER header_words_delete BEFORE DELETE ON header_text BEGIN
        INSERT INTO header_words(header_words, rowid, from_text, to_text, cc_text, bcc_text,
                                 subject_text)
            SELECT 'delete', * FROM header_words_source WHERE entry = old.entry;
    END;
    CREATE TRIGGER header_words_forget BEFORE UPDATE ON header_text BEGIN
        INSERT INTO header_words(header_words, rowid, from_text, to_text, cc_text, bcc_text,
                                 subject_text)
            SELECT 'delete', * FROM header_words_source WHERE entry = old.entry;
    END;
    CREATE TRIGGER header_words_update AFTER UPDATE ON header_text BEGIN
        INSERT INTO header_words(rowid, from_text, to_text, cc_text, bcc_text, subject_text)
            SELECT * FROM header_words_source WHERE entry = new.entry;
    END;
    INSERT INTO header_text(email_id, entry, from_text, to_text, cc_text, bcc_text,
                            subject_text, inexact)
        SELECT email_id, ROW_NUMBER() OVER (ORDER BY email_id), from_text, to_text, cc_text,
               bcc_text, subject_text, inexact
        FROM header_text_before;
    DROP TABLE header_text_before;
    -- Fields read before a fix of raw UTF-8 beside encoded-words were kept with Python's
    -- backslash-u escapes for words (bridge.mail.header_text._joined): read them again.
    UPDATE header_text SET from_text = NULL, to_text = NULL, cc_text = NULL, bcc_text = NULL,
        subject_text = NULL, inexact = NULL
    WHERE ' ' || IFNULL(from_text, '') || ' ' || IFNULL(to_text, '') || ' ' ||
        IFNULL(cc_text, '') || ' ' || IFNULL(bcc_text, '') || ' ' || IFNULL(subject_text, '')
        GLOB '* U[0-9A-F][0-9A-F][0-9A-F][0-9A-F]*';
    INSERT OR IGNORE INTO meta(key, value) SELECT 'header_backfill', '1'
        WHERE EXISTS (SELECT 1 FROM header_text WHERE inexact IS NULL);
    """
    + EMAIL_QUERY_COLUMNS,
    """
    -- The full-text index's entries to their Emails, read from the index alone: the
    -- unique index of entry holds email_id too, but SQLite reads each entry's row from the
    -- table for it (bridge.store.email_query.header_words_match names this one).
    CREATE INDEX header_text_entry ON header_text(entry, email_id);
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(Exception):
    pass


def migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(f"cache schema {version} is newer than this bridge ({SCHEMA_VERSION})")
    if version == SCHEMA_VERSION:
        return
    # Every step in one transaction: a new cache is made in one commit, and an old one
    # moves up whole or not at all.
    steps = "".join(MIGRATIONS[version:SCHEMA_VERSION])
    conn.executescript(f"BEGIN;{steps}PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")


@functools.cache
def table_names() -> frozenset[str]:
    """The tables a cache at SCHEMA_VERSION has."""
    return frozenset(column_types())


@functools.cache
def column_types() -> dict[str, dict[str, str]]:
    """Each table's columns at SCHEMA_VERSION with their declared types (INTEGER, TEXT,
    BLOB), for the PostgreSQL store's typed bulk inserts (bridge.store.dialect)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(conn)
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {
            table: {column[1]: column[2].upper() for column in conn.execute(
                f'PRAGMA table_info("{table}")')}
            for (table,) in tables
        }  # fmt: skip
    finally:
        conn.close()


@functools.cache
def empty_database() -> bytes:
    """The file of a cache at SCHEMA_VERSION with no data, in WAL mode: writing it is a
    quarter of the time a new cache takes to build its tables on disk, which a user's first
    request would wait for."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(conn)
        image = bytearray(conn.serialize())
    finally:
        conn.close()
    image[18:20] = b"\x02\x02"  # file format read/write versions 2: WAL (sqlite.org/fileformat)
    return bytes(image)


def create_empty(path: Path) -> bool:
    """Put an empty cache at ``path`` unless one is there; never replaces a file. Whether
    this call put it there.

    Not fsynced: a new user's first request would wait for the disk (5-20 ms on a busy
    one). After a power loss the file is whole, empty (ext4 and XFS write the data of a
    new file before its size), or, elsewhere, damaged; the first two are an empty cache
    and the third is found when the cache opens and rebuilt, as any damaged cache is."""
    if any(path.with_name(path.name + side).exists() for side in ("-wal", "-journal")):
        # Left by a cache deleted after a crash: SQLite discards it only for a database
        # with no pages, and would replay it into this one.
        return False
    # A name of its own (mode 0600) beside the cache: a crash can leave it behind, but it
    # never stands in the way of the next attempt.
    descriptor, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as staged:
            staged.write(empty_database())
        # Made first by someone else; or a file system without hard links, where SQLite
        # then builds the file itself as it always could.
        try:
            os.link(staging, path)
        except OSError:
            return False
        return True
    finally:
        os.unlink(staging)
