"""Startup errors: one clear line naming the cause, non-zero exit, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ports import free_port, free_udp_tcp_port


def run_dialtone(
    *args: str, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.pop("DIALTONE_ACCOUNT_SID", None)
    full_env.pop("DIALTONE_AUTH_TOKEN", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "dialtone", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


def serve_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "serve",
        "--data-dir",
        str(tmp_path / "data"),
        "--http-port",
        str(free_port()),
        "--sip-port",
        str(free_udp_tcp_port()),
        *extra,
    ]


def assert_clean_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    line = [ln for ln in result.stderr.splitlines() if ln.startswith("dialtone: error:")]
    assert len(line) == 1, result.stderr
    for word in words:
        assert word in line[0], line[0]


def test_http_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_dialtone(
            "serve", "--data-dir", str(tmp_path), "--http-port", str(port), "--sip-port", "0"
        )
    assert_clean_error(result, "already in use", str(port))


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"DIALTONE_ACCOUNT_SID": "AC123"}, ("DIALTONE_ACCOUNT_SID", "32 lowercase hex")),
        ({"DIALTONE_ACCOUNT_SID": "AC" + "A" * 32}, ("DIALTONE_ACCOUNT_SID",)),
        ({"DIALTONE_AUTH_TOKEN": "short"}, ("DIALTONE_AUTH_TOKEN",)),
        ({"DIALTONE_SIP_PORT": "70000"}, ("DIALTONE_SIP_PORT", "port")),
        ({"DIALTONE_LOG_FORMAT": "xml"}, ("DIALTONE_LOG_FORMAT",)),
        ({"DIALTONE_PUBLIC_URL": "nope"}, ("DIALTONE_PUBLIC_URL",)),
        ({"DIALTONE_OUTBOUND_PROXY": "a b"}, ("DIALTONE_OUTBOUND_PROXY",)),
        ({"DIALTONE_DIGEST_ALGORITHMS": "md5,sha1"}, ("sha1",)),
    ],
)
def test_bad_settings(tmp_path: Path, env: dict[str, str], words: tuple[str, ...]) -> None:
    # No port flags: a flag would win over DIALTONE_SIP_PORT, and config errors come before binding.
    result = run_dialtone("serve", "--data-dir", str(tmp_path / "data"), env=env)
    assert result.returncode == 2
    assert_clean_error(result, *words)


def test_bad_flag_value_names_the_flag(tmp_path: Path) -> None:
    result = run_dialtone("serve", "--data-dir", str(tmp_path), "--http-port", "x")
    assert_clean_error(result, "--http-port")


def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_dialtone(*serve_args(tmp_path)[:1], "--data-dir", str(blocker / "sub"))
    assert_clean_error(result, "data directory", "not writable")


@pytest.mark.parametrize(
    "url", ["not a url", "nosuchdb+driver://x/y", "postgresql+asyncpg://u:pw@127.0.0.1:1/db"]
)
def test_bad_database_url(tmp_path: Path, url: str) -> None:
    result = run_dialtone(*serve_args(tmp_path, "--database-url", url))
    assert_clean_error(result, "database")
    assert "pw@" not in result.stderr, "the password leaked into the message"


def test_account_before_first_start_is_a_clear_error(tmp_path: Path) -> None:
    result = run_dialtone("account", "--data-dir", str(tmp_path))
    assert_clean_error(result, "no account yet")


def test_help_documents_every_setting() -> None:
    from dialtone.config import env_name, flag_name, setting_fields

    result = run_dialtone("serve", "--help")
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    for field in setting_fields():
        if field.metadata["flag"]:
            assert flag_name(field.name) in help_text
        assert env_name(field.name) in help_text, field.name


def test_readme_documents_every_setting() -> None:
    from dialtone.config import env_name, setting_fields

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for field in setting_fields():
        assert env_name(field.name) in readme, f"README misses {env_name(field.name)}"
