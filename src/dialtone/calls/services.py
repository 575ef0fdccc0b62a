"""What a live call may use: a narrow bundle built by the call manager (composition root)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dialtone.calls.audio import AudioCache
from dialtone.calls.records import CallRecords
from dialtone.media.tts import SpeechEngine
from dialtone.sip.events import Peer
from dialtone.sip.message import Request, Response
from dialtone.webhooks.client import WebhookClient
from dialtone.webhooks.dispatcher import CallbackDispatcher

if TYPE_CHECKING:
    from dialtone.calls.inbound import InboundCall


@dataclass
class CallServices:
    """Shared services of every call of one process."""

    account_sid: str
    auth_token: str
    public_url: str
    records: CallRecords
    webhooks: WebhookClient
    callbacks: CallbackDispatcher
    speech: SpeechEngine
    audio: AudioCache
    respond: Callable[[str, Response], None]
    send_request: Callable[[Request, Peer], str]
    loop_time: Callable[[], float]
    utcnow: Callable[[], datetime]
    dialog_changed: Callable[[], None]
    forget: Callable[[InboundCall], None]
    send_stateless: Callable[[Request, Peer], None] = lambda request, peer: None
    cancel: Callable[[str], object] = lambda transaction: None
    extra: dict[str, Any] | None = None
