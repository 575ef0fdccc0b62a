"""RCML: the XML call-control documents dialtone fetches from the user's web application.

The pure core lives here and needs no event loop:

- :mod:`dialtone.rcml.parser` — ``parse_document(body, url, content_type=...)`` turns the bytes
  of a response into a fully validated :class:`~dialtone.rcml.nodes.Document`, or raises
  :class:`~dialtone.rcml.errors.RcmlError` before any verb runs (DOC-2..DOC-5);
- :mod:`dialtone.rcml.nodes` — frozen dataclasses, one per verb and noun;
- :mod:`dialtone.rcml.attributes` — the value parsers (integers, methods, URLs with their
  fragment overrides, status callback events, numbers, SIP URIs, DTMF strings);
- :mod:`dialtone.rcml.errors` — ``RcmlError`` and the ``RcmlWarning`` record whose
  ``message_text`` follows DOC-21.
"""
