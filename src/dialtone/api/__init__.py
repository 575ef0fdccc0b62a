"""The Twilio/Restcomm-compatible REST API (FastAPI)."""
