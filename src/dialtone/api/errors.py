"""API error codes, their descriptions (served at ``more_info``) and the raising helpers."""

from __future__ import annotations

from typing import Final, NoReturn

from dialtone.errors import ApiError

#: Every code the REST API answers with or a Notification carries (DOC-22), and what it
#: means (``GET /docs/errors/{code}``, the ``more_info`` of errors and Notifications).
CODES: Final[dict[int, str]] = {
    20003: "Authentication failed: use HTTP Basic auth with your AccountSid and AuthToken.",
    20004: "The HTTP method is not allowed on this resource.",
    20007: "PageSize is out of range: it must be an integer from 1 to 1000.",
    20403: "The AccountSid in the path is not the account you authenticated as.",
    20404: "The requested resource was not found.",
    20422: "A parameter is missing or invalid; the message names it.",
    20500: "An internal error occurred; the server log has the details.",
    20503: "Calls cannot be placed or modified right now: this server runs no call control "
    "(SIP is not running) or it is shutting down.",
    21201: "To is required when creating a call.",
    21205: "The URL is invalid (Url, FallbackUrl or StatusCallback), or Url is missing: a "
    "call needs Url or Twiml. A URL must be absolute http(s) (or a path resolved against the "
    "server's public URL), without whitespace, at most 4000 characters; a fragment override "
    "must be in range.",
    21208: "Timeout is invalid: an integer number of seconds from 1 to 600.",
    21209: "The HTTP method is invalid (Method, FallbackMethod or StatusCallbackMethod): use "
    "GET or POST.",
    21211: "To is invalid: use client:<login> of a Client of the account, a sip: or sips: URI, "
    "or a phone number (an optional + and 1 to 32 digits; spaces, -, ., ( and ) are ignored).",
    21212: "From is invalid: a phone number, client:<login> or a SIP user part, at most 64 "
    "characters.",
    21213: "From is required when creating a call.",
    21214: "To cannot be reached: a phone number needs an outbound proxy (--outbound-proxy).",
    21220: "The call is not in a state that allows this change: it has ended, or it is a "
    "branch of a Dial that has not answered (new RCML needs an answered branch).",
    21402: "The URL is invalid: it must be an absolute http(s) URL (or a path resolved "
    "against the server's public URL), without whitespace, at most 4000 characters.",
    21403: "The HTTP method is invalid: use GET or POST.",
    21405: "VoiceFallbackUrl was given without a VoiceUrl.",
    21421: "PhoneNumber is invalid: digits with an optional leading +, 2 to 20 digits.",
    21422: "PhoneNumber is not available: it already exists in the account or equals a "
    "Client Login.",
    # Notification codes (DOC-22); 8xxxx are dialtone's own.
    11100: "Invalid URL (also a bad ct/rt/tt/rc override in the URL fragment).",
    11200: "HTTP retrieval failure: the response status was not 2xx.",
    11203: "The HTTP request ran out of its total time.",
    11205: "HTTP connection failure: could not connect, or the request timed out.",
    11210: "HTTP bad host name: the host could not be resolved.",
    11215: "Too many HTTP redirects.",
    11220: "TLS failure while connecting to the URL.",
    11243: "Invalid rp override in the URL fragment.",
    11750: "The response body is too large.",
    11770: "The response body is empty.",
    12100: "The document is not parseable XML.",
    12102: "The root element of the document is not <Response>.",
    12200: "Schema validation: an unknown or unsupported element or attribute, or a bad value "
    "(error); an ignored attribute, a duplicate noun or an unsupported feature (warning).",
    12300: "The response has an unusable Content-Type.",
    12400: "Internal failure while handling the call.",
    13201: "<Dial> is not allowed inside a whisper.",
    13210: "Dial: invalid method.",
    13212: "Dial: invalid timeout.",
    13213: "Dial: invalid hangupOnStar.",
    13214: "Dial: invalid callerId.",
    13215: "Dial: invalid children.",
    13216: "Dial: invalid timeLimit.",
    13217: "Dial: invalid record.",
    13221: "Number: invalid method.",
    13222: "Number: invalid sendDigits.",
    13223: "Number: invalid phone number format.",
    13241: "Sip: invalid method.",
    13243: "Sip: invalid SIP URI.",
    13249: "Sip: invalid credentials.",
    13250: "Dial: more than 10 nouns.",
    13251: "Sip: the URI headers are too long.",
    13310: "Gather: invalid finishOnKey.",
    13312: "Gather: invalid method.",
    13313: "Gather: invalid timeout.",
    13314: "Gather: invalid numDigits.",
    13320: "Gather: invalid child element.",
    13326: "Gather: invalid input.",
    13410: "Play: invalid loop.",
    13420: "Play: the audio could not be fetched or played; it was skipped.",
    13430: "Play: invalid digits.",
    13510: "Say: invalid loop.",
    13511: "Say: the voice or language was mapped to a supported one.",
    13520: "Say: the text is empty.",
    13521: "Say: the text is too long.",
    13710: "Redirect: invalid method.",
    13910: "Pause: invalid length.",
    15003: "A status callback was not delivered.",
    21626: "Unknown status callback event.",
    82001: "The Client is unknown.",
    82002: "The Client has no registered device.",
    82003: "No outbound proxy is configured for <Number>.",
    82004: "The SIP destination's host name could not be resolved.",
    82005: "No RTP port was free for the Dial branch.",
    82006: "The Dial branch answered without a usable SDP answer.",
    82010: "The whisper did not finish in time.",
    82020: "Redirect loop.",
}


def fail(code: int, message: str, status: int = 400) -> NoReturn:
    """Raise the :class:`ApiError` for ``code`` (status 400 unless said otherwise)."""
    raise ApiError(code, status, message)


def not_found(what: str, sid: str) -> NoReturn:
    """Raise the 404 of an unknown resource."""
    raise ApiError(20404, 404, f"The requested resource {what} {sid} was not found")
