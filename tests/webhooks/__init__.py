"""Tests of dialtone.webhooks: parameters, signatures, URLs, the HTTP client, the dispatcher."""
