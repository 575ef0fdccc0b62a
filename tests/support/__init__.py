"""Helpers shared by the test suite (not shipped)."""
