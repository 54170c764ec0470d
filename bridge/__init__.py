"""bridge: JMAP for every IMAP mailbox."""
