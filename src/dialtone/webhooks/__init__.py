"""Webhooks: every HTTP request dialtone makes to the user's web application.

Voice requests fetch RCML (voice URL, fallback, action, redirect, whisper); status callbacks
report call-progress events (spec/callbacks.md REQ-*, CB-*, HOOK-*).  The package is layered
like the rest of dialtone (design.md §2):

- :mod:`~dialtone.webhooks.params` (pure): the REQ-1 parameter set of a call, the CB-5
  status-callback fields, RFC 2822 timestamps.
- :mod:`~dialtone.webhooks.signing` (pure): ``X-Twilio-Signature`` (HOOK-10).
- :mod:`~dialtone.webhooks.urls` (pure): URL resolution and checks (HOOK-2/3), fragment
  overrides of the connection settings (HOOK-4), GET query and POST body (HOOK-1).
- :mod:`~dialtone.webhooks.client` (I/O, owns httpx): one request with its timeouts,
  retries, redirects and failure codes (HOOK-4..HOOK-8); :class:`WebhookError`.
- :mod:`~dialtone.webhooks.dispatcher`: one ordered lane per (CallSid, callback URL), lanes in
  parallel, ``fire`` never blocks call control (CB-7, CB-10..CB-13).

Nothing is re-exported here, so importing a pure module does not import httpx.
"""
