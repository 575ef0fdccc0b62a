"""The curl and twilio-python examples of docs/api.md, run against a live server (issue 7).

Every fenced ``sh`` and ``python`` block of docs/api.md is extracted and run as written,
with only these substitutions (the placeholders the document itself explains):

* ``http://127.0.0.1:8080`` → the server's base URL; ``http://127.0.0.1:9000`` → a recording
  webhook app (every path answers a short ``<Pause>``, so voice URLs and callbacks work);
* ``$ACCOUNT_SID``, ``$AUTH_TOKEN``, ``$API`` are set in the shell's environment, and
  ``ACCOUNT_SID``/``AUTH_TOKEN`` in the Python block's globals;
* ``CL…`` → the Client created by an earlier command of the same block; ``CA…`` → a live,
  answered call the harness places just before that command (every ``CA…`` command gets a
  fresh one, so "hang up" and "redirect" each find a call to act on);
* ``curl`` gets ``-sS --fail-with-body``, so an HTTP error fails the command.

Each block starts from an account with no Clients, numbers or live calls. Blocks under
``## Calls`` also get the Client ``alice`` (password ``secret``) with one registered SIPp
device that answers every call, and the server's ``--outbound-proxy`` is a SIPp that answers
the numbers dialled through it.  A block passes when every command succeeds and every call
it placed was answered (never ``failed``, ``busy`` or ``no-answer``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from dialtone.testing.webhook_app import Route, WebhookApp, serve_in_thread
from tests.interop.conftest import Api, wait_for
from tests.interop.test_calls_twilio import RtpSink, Uas, register_device, wait_status
from tests.support.ports import free_port
from tests.support.server import ServerProcess

pytestmark = pytest.mark.interop

DOC = Path(__file__).parents[2] / "docs" / "api.md"
DOC_BASE = "http://127.0.0.1:8080"
DOC_APP = "http://127.0.0.1:9000"
PAUSE = '<Response><Pause length="3"/></Response>'
HOLD = '<Response><Pause length="30"/></Response>'
LIVE = ("queued", "ringing", "in-progress")
UNANSWERED = ("failed", "busy", "no-answer", "canceled")
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


@dataclass(frozen=True)
class Example:
    """One fenced block of the document: its language, code, line and headings above it."""

    lang: str
    code: str
    line: int
    section: str
    subsection: str | None

    @property
    def name(self) -> str:
        where = self.section + (f" / {self.subsection}" if self.subsection else "")
        return f"{self.lang} at line {self.line} ({where})"

    def commands(self) -> list[str]:
        """Shell commands: backslash-continued lines joined, comments and blanks dropped."""
        commands: list[str] = []
        pending = ""
        for raw in self.code.splitlines():
            line = raw.rstrip()
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            commands.append((pending + line).strip())
            pending = ""
        if pending:
            commands.append(pending.strip())
        return commands


def examples(text: str) -> list[Example]:
    """Every ``sh`` and ``python`` block of ``text``, in order."""
    found: list[Example] = []
    for match in FENCE.finditer(text):
        lang = match.group(1)
        if lang not in ("sh", "python"):
            continue
        before = text[: match.start()]
        sections = re.findall(r"^## (.+)$", before, re.M)
        subsection: str | None = None
        last_section = before.rfind("\n## ")
        subs = re.findall(r"^### (.+)$", before[last_section:], re.M)
        if subs:
            subsection = subs[-1].strip()
        found.append(
            Example(
                lang=lang,
                code=match.group(2),
                line=before.count("\n") + 1,
                section=sections[-1].strip() if sections else "",
                subsection=subsection,
            )
        )
    return found


DOC_EXAMPLES = examples(DOC.read_text())


# --- the environment the examples run in -------------------------------------------------------


@dataclass
class DocsEnv:
    """A server with an outbound proxy, a webhook app and the SIPp devices of one block."""

    server: ServerProcess
    rest: Api
    app: WebhookApp
    app_base: str
    workdir: Path
    sink: RtpSink
    uases: list[Uas] = field(default_factory=list)
    harness_calls: set[str] = field(default_factory=set)

    def substitute(self, text: str) -> str:
        return text.replace(DOC_BASE, self.server.base_url).replace(DOC_APP, self.app_base)

    def shell_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ACCOUNT_SID=self.server.account_sid,
            AUTH_TOKEN=self.server.auth_token,
            API=self.server.api,
        )
        return env

    # -- state ---------------------------------------------------------------------------

    def listing(self, resource: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = f"{self.server.api}/{resource}.json?PageSize=1000"
        while url:
            response = self.rest.http.get(url)
            assert response.status_code == 200, response.text
            body = response.json()
            items += body[key]
            url = self.server.base_url + body["next_page_uri"] if body["next_page_uri"] else None
        return items

    def reset(self) -> None:
        """No live calls, Clients or numbers; the previous block's devices stopped."""
        for call in self.listing("Calls", "calls"):
            if call["status"] in LIVE:
                self.rest.http.post(
                    f"{self.server.api}/Calls/{call['sid']}.json", data={"Status": "completed"}
                )
        wait_for(lambda: self.rest.stats()["calls"] == 0, timeout=20)
        for uas in self.uases:
            uas.stop()
        self.uases.clear()
        for resource, key in (
            ("IncomingPhoneNumbers", "incoming_phone_numbers"),
            ("Clients", "clients"),
        ):
            for item in self.listing(resource, key):
                response = self.rest.http.delete(f"{self.server.api}/{resource}/{item['sid']}.json")
                assert response.status_code == 204, response.text

    def alice_with_a_device(self) -> None:
        """The Client alice (password secret), registered from a SIPp that answers every call."""
        self.rest.create_client("alice", "secret")
        registrar = register_device(self.server, "alice", "secret")
        port = registrar.port
        registrar.close()
        uas = Uas("api_uas_until_bye", port, self.workdir, self.server.account_sid, self.sink.port)
        uas.calls, uas.timeout = 100, 300
        self.uases.append(uas.start())

    def live_call(self) -> str:
        """A call to alice, answered and holding (for a ``CA…`` placeholder)."""
        response = self.rest.http.post(
            f"{self.server.api}/Calls.json",
            data={"To": "client:alice", "From": "+15550000000", "Url": f"{self.app_base}/hold"},
        )
        assert response.status_code == 201, response.text
        sid: str = response.json()["sid"]
        self.harness_calls.add(sid)
        wait_status(self.rest, sid, "in-progress")
        return sid


@pytest.fixture(scope="module")
def proxy_port() -> int:
    return free_port(socket.SOCK_DGRAM)


@pytest.fixture(scope="module")
def docs_server(
    tmp_path_factory: pytest.TempPathFactory, proxy_port: int
) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        data_dir=tmp_path_factory.mktemp("dialtone-docs"),
        extra_args=["--outbound-proxy", f"127.0.0.1:{proxy_port}"],
    ).start()
    yield proc
    assert proc.stop() == 0, proc.log()[-4000:]


@pytest.fixture(scope="module")
def docs_env(
    docs_server: ServerProcess,
    proxy_port: int,
    tmp_path_factory: pytest.TempPathFactory,
    peer_binaries: None,
) -> Iterator[DocsEnv]:
    workdir = tmp_path_factory.mktemp("docs-peers")
    app = WebhookApp(auth_token=docs_server.auth_token, default=Route(body=PAUSE))
    app.route("/hold", Route(body=HOLD))
    sink = RtpSink()
    proxy = Uas(
        "api_uas_until_bye", proxy_port, workdir, docs_server.account_sid, sink.port, None, 100, 600
    )
    proxy.start()
    rest = Api(docs_server)
    try:
        with serve_in_thread(app) as running:
            env = DocsEnv(docs_server, rest, app, running.base_url, workdir, sink)
            try:
                yield env
            finally:
                env.reset()
    finally:
        proxy.stop()
        sink.close()
        rest.http.close()


# --- running one block -------------------------------------------------------------------------


SID = re.compile(r'"sid":\s*"((?:CL|CA|PN)[0-9a-f]{32})"')


def run_shell(env: DocsEnv, example: Example) -> list[str]:
    """Run every command of a ``sh`` block; returns the CallSids they created."""
    assert example.commands(), f"{example.name}: no command"
    clients: list[str] = []
    created_calls: list[str] = []
    for written in example.commands():
        command = env.substitute(written)
        assert command.startswith("curl "), f"{example.name}: not a curl command: {written}"
        command = "curl -sS --fail-with-body " + command.removeprefix("curl ")
        if "CL…" in command:
            assert clients, f"{example.name}: CL… before any Client was created: {written}"
            command = command.replace("CL…", clients[-1])
        targets: list[str] = []
        while "CA…" in command:
            targets.append(env.live_call())
            command = command.replace("CA…", targets[-1], 1)
        assert "…" not in command, (
            f"{example.name}: a placeholder the harness does not know: {written}"
        )
        done = subprocess.run(
            ["bash", "-c", command],
            env=env.shell_env(),
            cwd=env.workdir,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, (
            f"{example.name}: `{written}` failed ({done.returncode}):\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
        if done.stdout.strip():
            body = json.loads(done.stdout)  # every example asks for .json
            assert "code" not in body or "sid" in body, f"{example.name}: {body}"
        for sid in SID.findall(done.stdout):
            if sid.startswith("CL"):
                clients.append(sid)
            elif sid.startswith("CA") and sid not in env.harness_calls:
                created_calls.append(sid)
        for sid in targets:
            check_effect(env, example, command, sid)
    return created_calls


def check_effect(env: DocsEnv, example: Example, command: str, sid: str) -> None:
    """A command on a live call did what docs/api.md says it does."""
    if "Status=completed" in command or "Twiml=<Response><Hangup/>" in command:
        wait_status(env.rest, sid, "completed")  # hung up (BYE: the call was answered)
    if match := re.search(r"-d Url=(\S+)", command):
        path = urlsplit(match.group(1)).path

        def ran() -> bool:
            return any(r.params.get("CallSid") == sid for r in env.app.requests_to(path))

        try:
            wait_for(ran, timeout=10)
        except AssertionError:
            raise AssertionError(f"{example.name}: {path} never ran on {sid}") from None


def run_python(env: DocsEnv, example: Example) -> list[str]:
    """Run a ``python`` block; returns the CallSids it created."""
    code = env.substitute(example.code)
    assert "…" not in code, f"{example.name}: a placeholder the harness does not know"
    before = {c["sid"] for c in env.listing("Calls", "calls")}
    namespace: dict[str, Any] = {
        "__name__": "docs_example",
        "ACCOUNT_SID": env.server.account_sid,
        "AUTH_TOKEN": env.server.auth_token,
    }
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"{DOC.name}:{example.line}", "exec"), namespace)  # noqa: S102
    after = {c["sid"] for c in env.listing("Calls", "calls")}
    return sorted(after - before - env.harness_calls)


def check_calls_answered(
    env: DocsEnv, example: Example, sids: list[str], *, may_cancel: bool = False
) -> None:
    """Every call a block placed was answered: it reached in-progress (or ended completed).

    ``may_cancel``: a block that hangs up the call it has just created may catch it still
    ringing, which ends it ``canceled`` (API-24); that is the example working too.
    """
    allowed = (
        ("in-progress", "completed", "canceled") if may_cancel else ("in-progress", "completed")
    )
    for sid in sids:
        call = wait_status(env.rest, sid, "in-progress", "completed", *UNANSWERED)
        assert call["status"] in allowed, f"{example.name}: call {sid} {call}"


@pytest.mark.parametrize("example", DOC_EXAMPLES, ids=[e.name for e in DOC_EXAMPLES])
def test_doc_example_runs(docs_env: DocsEnv, example: Example) -> None:
    docs_env.reset()
    if example.section == "Calls":
        docs_env.alice_with_a_device()
    if example.lang == "sh":
        created = run_shell(docs_env, example)
        check_calls_answered(docs_env, example, created)
    else:
        created = run_python(docs_env, example)
        check_calls_answered(docs_env, example, created, may_cancel=True)


# --- coverage: every Calls operation has both kinds of example ---------------------------------


CALL_OPERATIONS: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {
    # operation: (curl pattern, twilio-python pattern)
    "create": (
        re.compile(r"curl .*-d To=.*\$API/Calls\.json"),
        re.compile(r"\.calls\.create\("),
    ),
    "list": (
        re.compile(r"curl [^\n]*\$API/Calls\.json\?"),
        re.compile(r"\.calls\.(list|stream|page)\("),
    ),
    "fetch": (
        re.compile(r"curl -u \S+ \$API/Calls/CA….json\s*$"),
        re.compile(r"\.calls\([^)]*\)\.fetch\("),
    ),
    "redirect": (
        re.compile(r"curl .*(-d Url=|Twiml=).*\$API/Calls/CA…"),
        re.compile(r"\.calls\([^)]*\)\.update\((url|twiml)="),
    ),
    "hang up": (
        re.compile(r"curl .*-d Status=completed .*\$API/Calls/CA…"),
        re.compile(r"\.calls\([^)]*\)\.update\(status=\"completed\""),
    ),
}


def test_every_calls_operation_has_a_curl_and_a_python_example() -> None:
    calls = [e for e in DOC_EXAMPLES if e.section == "Calls"]
    curl = [c for e in calls if e.lang == "sh" for c in e.commands()]
    python = "\n".join(e.code for e in calls if e.lang == "python")
    missing = []
    for operation, (curl_pattern, python_pattern) in CALL_OPERATIONS.items():
        if not any(curl_pattern.search(c) for c in curl):
            missing.append(f"{operation}: no curl example")
        if not python_pattern.search(python):
            missing.append(f"{operation}: no twilio-python example")
    assert not missing, "docs/api.md ## Calls lacks examples:\n" + "\n".join(missing)


def test_the_extractor_sees_the_blocks() -> None:
    """Guard against a silently empty parametrisation (a renamed fence language, say)."""
    langs = {(e.section, e.lang) for e in DOC_EXAMPLES}
    assert ("Calls", "sh") in langs and ("Calls", "python") in langs, langs
    assert all(e.commands() for e in DOC_EXAMPLES if e.lang == "sh")
