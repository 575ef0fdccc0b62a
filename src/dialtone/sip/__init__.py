"""Sans-IO SIP (RFC 3261): messages, URIs, headers, framing, digest, transactions, dialogs.

Nothing in this package performs I/O or reads a clock; import the submodules directly
(``from dialtone.sip.message import parse_message``).
"""
