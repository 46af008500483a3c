"""``artfs ui`` as a user starts it: the printed URL, the loopback default, the token, Ctrl-C."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import run_cli
from tests.ui.uiutil import UiStore, stop_ui, store_bytes


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def test_serves_on_loopback_until_ctrl_c(ui_store: UiStore, serve_ui: Any) -> None:
    before = store_bytes(ui_store.home)
    served = serve_ui(ui_store.home)
    parts = urlsplit(served.url)
    assert parts.hostname == "127.0.0.1" and parts.path == "/"
    status, body, _ = fetch(served.at("api/"))
    assert status == 200
    assert {p["name"] for p in json.loads(body)["projects"]} == {"proj", "other"}
    for path in ("", "a/proj/raw", "v/proj/raw/v1", "lineage/proj/raw/v1", "raw/proj/raw/v0/x"):
        status, _, _ = fetch(served.at(path))
        assert status == (404 if path.endswith("/x") else 200), path
    # Another site's page reaching the loopback server by DNS rebinding is refused.
    assert fetch(served.url, {"Host": f"evil.example:{parts.port}"})[0] == 403
    assert stop_ui(served) == 0
    assert served.process.stdout.read() == ""  # the URL was the only, so the last, line
    assert store_bytes(ui_store.home) == before


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_every_request_needs_the_printed_token(ui_store: UiStore, serve_ui: Any, host: str) -> None:
    # On loopback too: every local user can connect, but ARTFS_HOME may be its owner's only.
    served = serve_ui(ui_store.home, "--host", host)
    parts = urlsplit(served.url)
    token = parts.query.removeprefix("token=")
    assert parts.query.startswith("token=") and len(token) >= 32
    base = f"http://127.0.0.1:{parts.port}/"
    for path in ("", "api/", "raw/proj/raw/v0/blob.bin", "v/proj/raw/v0/f/blob.bin"):
        status, body, _ = fetch(base + path)
        assert status == 401 and b"token" in body, path
    assert fetch(base + "api/?token=wrong")[0] == 401
    status, _, headers = fetch(f"{base}?token={token}")
    assert status == 200
    cookie = headers["Set-Cookie"].split(";")[0]
    assert fetch(base + "a/proj/raw", {"Cookie": cookie})[0] == 200  # links work after
    assert stop_ui(served) == 0
    assert token in served.stderr.read()  # printed at start too


def test_open_hands_the_url_to_the_browser(
    ui_store: UiStore, serve_ui: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(browser))  # what Python's webbrowser runs, if set
    served = serve_ui(ui_store.home, "--open")
    for _ in range(100):
        if opened.exists() and opened.read_text():
            break
        time.sleep(0.05)
    assert opened.read_text().strip() == served.url


def test_no_store_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "none"
    result = run_cli("ui", "--port", "0", home=home)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"artfs: error: no artfs store at {home}: give --home (or ARTFS_HOME) of one, "
        "or store something first (artfs put PATH PROJECT/NAME)"
    ]
    assert not home.exists()


def test_port_in_use_is_one_line(ui_store: UiStore) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("ui", "--port", str(port), home=ui_store.home)
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"artfs: error: cannot listen on 127.0.0.1:{port}")
    assert "pick another --port" in line


@pytest.mark.parametrize("host", ["localhost", "::1", "127.0.0.2"])
def test_loopback_names_are_served(ui_store: UiStore, serve_ui: Any, host: str) -> None:
    served = serve_ui(ui_store.home, "--host", host)
    assert fetch(served.at("api/"))[0] == 200
    assert fetch(served.base + "api/")[0] == 401


def test_concurrent_requests_all_answered_quietly(ui_store: UiStore, serve_ui: Any) -> None:
    served = serve_ui(ui_store.home)
    paths = [
        "",
        "api/",
        "v/proj/raw/v1",
        "lineage/proj/raw/v1",
        "a/proj/raw",
        "raw/proj/raw/v0/blob.bin",
    ]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda p: fetch(served.at(p))[0], paths * 8))
    assert statuses == [200] * len(statuses)
    assert stop_ui(served) == 0
    # One note at start; no warnings about requests waiting for a thread.
    assert served.stderr.read().splitlines() == [
        f"serving {ui_store.home} read-only; Ctrl-C stops",
        f"token: {served.token} (every request needs it: use the URL)",
    ]
