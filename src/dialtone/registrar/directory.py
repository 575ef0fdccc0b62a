"""The registrar as the REST API sees it: live bindings and Client change notices (API-32)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dialtone.registrar.auth import Authenticator, Credentials
from dialtone.registrar.service import Registrar
from dialtone.registrar.store import BindingStore
from dialtone.storage.models import Client


def credentials_of(client: Client) -> Credentials:
    """The registrar's view of a Client's stored password hashes."""
    return Credentials(
        client_sid=client.sid,
        account_sid=client.account_sid,
        login=client.login,
        ha1_md5=client.ha1_md5,
        ha1_sha256=client.ha1_sha256,
        realm=client.ha1_realm,
    )


class RegistrarDirectory:
    """Implements the API's ``ClientDirectory`` over the in-memory registrar."""

    def __init__(
        self,
        registrar: Registrar,
        auth: Authenticator,
        store: BindingStore,
        wall: Callable[[], float],
    ) -> None:
        self.registrar = registrar
        self.auth = auth
        self.store = store
        self.wall = wall

    def bindings(self, client_sid: str) -> list[dict[str, Any]]:
        """The Client's live registrations."""
        return self.registrar.bindings_view(client_sid, self.wall())

    def client_saved(self, client: Client) -> None:
        """New or changed credentials take effect for the next REGISTER."""
        self.auth.put(credentials_of(client))

    def client_removed(self, client_sid: str) -> None:
        """A deleted Client cannot authenticate and loses its bindings (REG-7)."""
        self.auth.remove(client_sid)
        self.registrar.location.forget_client(client_sid)
        self.store.discard(client_sid)
