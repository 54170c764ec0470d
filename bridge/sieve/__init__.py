"""ManageSieve (RFC 5804) and the bits of the Sieve language (RFC 5228) bridge writes.

``client`` speaks the protocol over a socket; ``protocol`` is its wire format without
I/O; ``language`` quotes Sieve strings and reads what a user's script requires and
includes. Like ``imap/``, nothing here knows JMAP.
"""
