"""Outbound-call benchmark: POST /Calls to a registered SIPp device (see README.md)."""
