"""I/O adapters that move SIP bytes between sockets and the sans-IO endpoint."""
