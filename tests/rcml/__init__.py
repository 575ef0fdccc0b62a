"""Tests of the RCML parser and validator (verbs.md, dial.md §1, whisper.md WSP-4)."""
