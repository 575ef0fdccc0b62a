"""State survives a restart on the same data dir; the AuthToken rules of bootstrap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.server import ServerProcess


def test_clients_and_numbers_survive_a_restart(tmp_path: Path) -> None:
    proc = ServerProcess(data_dir=tmp_path / "data").start()
    with proc.client() as api:
        client = api.post(f"{proc.api}/Clients.json", data={"Login": "alice", "Password": "s"})
        number = api.post(
            f"{proc.api}/IncomingPhoneNumbers.json", data={"PhoneNumber": "+15550001111"}
        )
        assert client.status_code == 201 and number.status_code == 201
    assert proc.stop() == 0
    again = ServerProcess(
        data_dir=proc.data_dir, account_sid=proc.account_sid, auth_token=proc.auth_token
    ).start()
    try:
        with again.client() as api:
            clients = api.get(f"{again.api}/Clients.json").json()["clients"]
            numbers = api.get(f"{again.api}/IncomingPhoneNumbers.json").json()
            assert [c["sid"] for c in clients] == [client.json()["sid"]]
            assert [n["sid"] for n in numbers["incoming_phone_numbers"]] == [number.json()["sid"]]
    finally:
        again.stop()


def test_generated_credentials_are_printed_once_and_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = ServerProcess(data_dir=data)
    proc.extra_env = {}
    env = proc.env()
    del env["DIALTONE_ACCOUNT_SID"], env["DIALTONE_AUTH_TOKEN"]
    proc.env = lambda: env  # type: ignore[method-assign]
    proc.start()
    assert proc.stop() == 0
    log = proc.log()
    assert "AccountSid:" in log and "AuthToken:" in log
    sid = log.split("AccountSid:")[1].split()[0]
    token = log.split("AuthToken:")[1].split()[0]
    printed = subprocess.run(
        [sys.executable, "-m", "dialtone", "account", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert f"AccountSid: {sid}" in printed.stdout and f"AuthToken:  {token}" in printed.stdout
    # A second start keeps the account and does not print the token again.
    second = ServerProcess(data_dir=data)
    second.env = lambda: env  # type: ignore[method-assign]
    second.start()
    try:
        assert httpx.get(f"{second.base_url}/2010-04-01/Accounts/{sid}.json", auth=(sid, token))
        assert "AuthToken:" not in second.log()  # printed by the first start only
    finally:
        second.stop()


def test_a_changed_auth_token_updates_the_account(tmp_path: Path) -> None:
    proc = ServerProcess(data_dir=tmp_path / "data").start()
    assert proc.stop() == 0
    new_token = "f" * 32
    again = ServerProcess(
        data_dir=proc.data_dir, account_sid=proc.account_sid, auth_token=new_token
    ).start()
    try:
        url = f"{again.api}.json"
        assert httpx.get(url, auth=(proc.account_sid, proc.auth_token)).status_code == 401
        assert httpx.get(url, auth=(proc.account_sid, new_token)).status_code == 200
    finally:
        again.stop()
