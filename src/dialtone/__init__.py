"""dialtone: an open-source programmable-voice server.

SIP phones register to it as Clients; calls are driven by RCML documents fetched from the
user's web application; a Twilio/Restcomm-compatible REST API steers them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
