"""Push to the push services of clients' devices (RFC 8620 §7.2): which URLs bridge may
POST to (targets), RFC 8291 encryption, one POST (sender), and the deliveries (service)."""
