"""SIP status codes and their reason phrases.

RFC 3261 §21 defines the base set; the extension codes dialtone may send or receive are
listed with the RFC that defines them.  A reason phrase is only a hint for humans
(RFC 3261 §7.2): peers must act on the code, so an unknown code is reported with the
phrase of its class's x00 code, the same way §8.1.3.2 says to *treat* it.
"""

from __future__ import annotations

REASON_PHRASES: dict[int, str] = {
    # 1xx provisional (RFC 3261 §21.1)
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",  # RFC 6228
    # 2xx success (RFC 3261 §21.2)
    200: "OK",
    202: "Accepted",  # RFC 3265 (deprecated by RFC 6665, still seen)
    204: "No Notification",  # RFC 5839
    # 3xx redirection (RFC 3261 §21.3)
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    # 4xx request failure (RFC 3261 §21.4)
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",  # RFC 3903
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",  # RFC 4412
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",  # RFC 4028
    423: "Interval Too Brief",
    428: "Use Identity Header",  # RFC 8224
    429: "Provide Referrer Identity",  # RFC 3892
    430: "Flow Failed",  # RFC 5626
    433: "Anonymity Disallowed",  # RFC 5079
    436: "Bad Identity Info",  # RFC 8224
    437: "Unsupported Credential",  # RFC 8224
    438: "Invalid Identity Header",  # RFC 8224
    439: "First Hop Lacks Outbound Support",  # RFC 5626
    440: "Max-Breadth Exceeded",  # RFC 5393
    469: "Bad Info Package",  # RFC 6086
    470: "Consent Needed",  # RFC 5360
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",  # RFC 6665
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",  # RFC 3329
    # 5xx server failure (RFC 3261 §21.5)
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",  # RFC 8599
    580: "Precondition Failure",  # RFC 3312
    # 6xx global failure (RFC 3261 §21.6)
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",  # RFC 8197
    608: "Rejected",  # RFC 8688
}


def reason_phrase(code: int) -> str:
    """Return the reason phrase for ``code``.

    Unknown codes of a valid class get their class's x00 phrase (``499`` -> ``"Bad
    Request"``), mirroring RFC 3261 §8.1.3.2.  Raises ``ValueError`` outside 100..699,
    which is not a SIP status code at all (§7.2: exactly three digits, first 1-6).
    """
    if not 100 <= code <= 699:
        raise ValueError(f"not a SIP status code: {code}")
    phrase = REASON_PHRASES.get(code)
    if phrase is None:
        phrase = REASON_PHRASES[code // 100 * 100]
    return phrase
