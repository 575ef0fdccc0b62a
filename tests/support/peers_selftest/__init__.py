"""Self-tests of the real-softphone harness (baresip, sipsak) — no dialtone needed."""
