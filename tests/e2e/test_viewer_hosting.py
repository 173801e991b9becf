"""The viewer page from a plain static host, on another origin than the broker, over WSS to the
mosquitto that `edgecam broker-config` configured, in Chromium: it plays with the documented
password account, and every refusal on the way reads as a sentence (README "Host the viewer
page"). The README's nginx and Caddy snippets are run as written there (names, ports and
paths replaced), the WebSocket proxied on the page's origin. Chromium trusts only the broker's
own key (--ignore-certificate-errors-spki-list), not every certificate. Run inside
tests/tools/isolated.sh.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import shutil
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.async_api import Browser, Page

from agent.config import load_config
from agent.runtime.app import Agent
from agent.tools import broker_config, pki
from agent.tools.cli import main
from agent.web.server import ROUTES, WEB_ROOT
from tests.infra.browsers import launch_chromium, open_page
from tests.infra.tools import free_port, require_tool, start_server, stop_process, tcp_accepts

DEVICE = "cam-01"
VIEWER, SECRET = "viewer-x", "s3cret:with:colons"
WAIT_MS = 30_000


@dataclass
class Fleet:
    """What broker-config wrote, the running broker's ports, and the page's static host."""

    dir: Path
    out: Path
    tls_port: int
    wss_port: int
    site: str
    site_dir: Path

    @property
    def wss_url(self) -> str:
        return f"wss://localhost:{self.wss_port}/"

    def page_url(self, **params: str) -> str:
        query = {"broker": self.wss_url, "device": DEVICE, "autoplay": "1", **params}
        return f"{self.site}?{urlencode(query)}"


def _static_copy(target: Path) -> Path:
    """The page's files alone, as an operator copies them to a web server's root."""
    for name, _ in ROUTES.values():
        source = WEB_ROOT / name
        if not source.is_file():
            pytest.fail(f"{source} missing (run `make web-deps`)", pytrace=False)
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
    return target


@contextlib.contextmanager
def running(argv: list[str], log: Path, port: int, what: str) -> Iterator[None]:
    proc = start_server(
        argv, log, ready=lambda: tcp_accepts("127.0.0.1", port), timeout=15, what=what
    )
    try:
        yield
    finally:
        stop_process(proc)


@contextlib.contextmanager
def fleet_setup(tmp_path: Path, extra_accounts: dict[str, str], acl: str | None) -> Iterator[Fleet]:
    """`edgecam ca`, `edgecam broker-config --viewer viewer-x:...`, mosquitto from its files, and
    `python -m http.server` serving a copy of the page on another port (another origin).

    `extra_accounts` are added to the password file as an operator would with mosquitto_passwd
    (broker-config itself refuses names no [access] pattern matches); `acl` replaces the ACL.
    """
    mosquitto = require_tool("mosquitto", "mosquitto")
    fleet = tmp_path / "pki"
    ca = pki.init_ca(fleet)
    pki.issue(ca, "device", DEVICE, out_dir=fleet)
    pki.issue(ca, "broker", "localhost", out_dir=fleet, sans=["localhost", "127.0.0.1"])
    tls_port, wss_port, site_port = free_port(), free_port(), free_port()
    out = tmp_path / "broker"
    argv = ["broker-config", "--ca-dir", str(fleet), "--out", str(out), "--bind", "127.0.0.1"]
    argv += ["--tls-port", str(tls_port), "--wss-port", str(wss_port), "--run-as", "root"]
    assert main([*argv, "--viewer", f"{VIEWER}:{SECRET}"]) == 0
    with (out / broker_config.PASSWD).open("a") as passwd:
        for name, password in extra_accounts.items():
            passwd.write(broker_config.pbkdf2_line(name, password) + "\n")
    if acl is not None:
        (out / broker_config.ACL).write_text(acl)
    site = _static_copy(tmp_path / "site")
    server = [sys.executable, "-m", "http.server", str(site_port), "--bind", "127.0.0.1"]
    with (
        running(
            [mosquitto, "-c", str(out / "mosquitto.conf")],
            tmp_path / "mq.log",
            wss_port,
            "mosquitto",
        ),
        running(
            [*server, "--directory", str(site)], tmp_path / "http.log", site_port, "http.server"
        ),
    ):
        yield Fleet(fleet, out, tls_port, wss_port, f"http://127.0.0.1:{site_port}/", site)


def _agent_config(fleet: Fleet, directory: Path, max_viewers: int) -> Path:
    """The device's edgecam.toml as `edgecam provision` would write it, on the test stream."""
    path = directory / "edgecam.toml"
    path.write_text(f"""
[device]
id = "{DEVICE}"
state_dir = "{directory / "state"}"

[mqtt]
url = "mqtts://localhost:{fleet.tls_port}"
ca = "{fleet.dir / "ca.pem"}"
cert = "{fleet.dir / "device" / f"{DEVICE}.pem"}"
key = "{fleet.dir / "device" / f"{DEVICE}.key"}"

[camera]
source = "testsrc"
width = 320
height = 240
framerate = 30
bitrate = 500000

[webrtc]
ice_addresses = ["127.0.0.1"]
max_viewers = {max_viewers}

[access]
viewer = ["viewer-*"]
operator = ["ops-*"]
admin = ["admin-*"]
""")
    return path


@contextlib.asynccontextmanager
async def fleet_and_agent(
    tmp_path: Path,
    extra_accounts: dict[str, str] | None = None,
    acl: str | None = None,
    max_viewers: int = 8,
) -> AsyncIterator[tuple[Fleet, Agent]]:
    with fleet_setup(tmp_path, extra_accounts or {}, acl) as fleet:
        agent = Agent(load_config(_agent_config(fleet, tmp_path, max_viewers)))
        await agent.start()
        try:
            await agent.mqtt.wait_connected(20)
            yield fleet, agent
        finally:
            await agent.stop()


def _spki_hash(cert_pem: Path) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@contextlib.asynccontextmanager
async def chromium_trusting(fleet: Fleet) -> AsyncIterator[Browser]:
    """Chromium that accepts the broker's certificate by its key, and no other bad one."""
    flag = f"--ignore-certificate-errors-spki-list={_spki_hash(fleet.out / 'certs/broker.pem')}"
    async with launch_chromium(extra_args=[flag]) as browser:
        yield browser


async def _text(page: Page, selector: str) -> str:
    return (await page.text_content(selector)) or ""


async def test_page_on_a_static_host_plays_over_wss_with_a_broker_config_account(
    tmp_path: Path,
) -> None:
    async with fleet_and_agent(tmp_path) as (fleet, agent), chromium_trusting(fleet) as browser:
        # No client id given: the page takes the user name, which the broker imposes anyway.
        page = await open_page(browser, fleet.page_url(username=VIEWER, password=SECRET))
        await page.wait_for_function("window.edgecam.framesDecoded() >= 30", timeout=WAIT_MS)
        assert await page.evaluate("[edgecam.clientId, edgecam.clientSource]") == [
            VIEWER,
            "username",
        ]
        assert await _text(page, "#broker-status") == f"connected (MQTT 5, client id {VIEWER})"
        assert [row["client"] for row in agent.sessions.rows()] == [VIEWER]
        # The same page without the broker's key trusted: told what to check, in words.
        async with launch_chromium() as strict:
            untrusted = await open_page(strict, fleet.page_url(username=VIEWER, password=SECRET))
            await untrusted.wait_for_function("edgecam.broker === 'error'", timeout=WAIT_MS)
            said = await _text(untrusted, "#broker-error")
        assert said.startswith(f"No MQTT connection to {fleet.wss_url}")
        assert f"open https://localhost:{fleet.wss_port}/ in this browser" in said


async def test_a_wrong_password_is_said_in_plain_words(tmp_path: Path) -> None:
    async with fleet_and_agent(tmp_path) as (fleet, _agent), chromium_trusting(fleet) as browser:
        page = await open_page(browser, fleet.page_url(username=VIEWER, password="wrong"))
        await page.wait_for_function("edgecam.broker === 'error'", timeout=WAIT_MS)
        said = await _text(page, "#broker-error")
    assert said.startswith(f'The broker refused the account "{VIEWER}": the password is wrong')
    assert "reason code 135: not authorized" in said


async def test_a_client_id_other_than_the_user_name_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    # What the page did before: a random client id, which the broker replaces by the user name,
    # so the ACL refuses every request on rpc/<random>.
    async with fleet_and_agent(tmp_path) as (fleet, agent), chromium_trusting(fleet) as browser:
        url = fleet.page_url(username=VIEWER, password=SECRET, client="viewer-random")
        started = time.monotonic()
        page = await open_page(browser, url)
        await page.wait_for_function("edgecam.state === 'failed'", timeout=WAIT_MS)
        print(f"refusal shown {time.monotonic() - started:.2f} s after the page was opened")
        said = await _text(page, "#session-error")
        error = await page.evaluate("edgecam.lastError")
        assert agent.sessions.rows() == []
    assert said.startswith(
        f"The broker's ACL refused the request on edgecam/{DEVICE}/rpc/viewer-random"
    )
    assert "use_username_as_clientid" in said and "leave Client id empty" in said
    assert error["code"] == 0x87  # the PUBACK's reason: no 15 s wait for an answer


async def test_an_account_whose_role_the_device_refuses(tmp_path: Path) -> None:
    # "viewer" (no viewer- prefix): the broker takes it, the device gives it no role.
    accounts = {"viewer": "pw"}
    async with (
        fleet_and_agent(tmp_path, accounts) as (fleet, agent),
        chromium_trusting(fleet) as browser,
    ):
        page = await open_page(browser, fleet.page_url(username="viewer", password="pw"))
        await page.wait_for_function("edgecam.state === 'failed'", timeout=WAIT_MS)
        said = await _text(page, "#session-error")
        assert await page.evaluate("edgecam.lastError.code") == -32001
        assert await _text(page, "#session-status") == "failed (unauthorized)"
        assert agent.sessions.rows() == []
    assert said.startswith(f'The device {DEVICE} refused webrtc.offer: the client id "viewer"')
    assert "matches none of its [access] patterns" in said
    assert "(-32001 unauthorized: client has no role)" in said


async def test_a_full_device_says_which_limit(tmp_path: Path) -> None:
    accounts = {"viewer-y": "pw"}
    async with (
        fleet_and_agent(tmp_path, accounts, max_viewers=1) as (fleet, _agent),
        chromium_trusting(fleet) as browser,
    ):
        first = await open_page(browser, fleet.page_url(username=VIEWER, password=SECRET))
        await first.wait_for_function("edgecam.framesDecoded() >= 1", timeout=WAIT_MS)
        second = await open_page(browser, fleet.page_url(username="viewer-y", password="pw"))
        await second.wait_for_function("edgecam.state === 'failed'", timeout=WAIT_MS)
        said = await _text(second, "#session-error")
        assert await second.evaluate("edgecam.lastError.code") == -32002
        assert await _text(second, "#session-status") == "failed (busy)"
    assert said.startswith(
        f"The device {DEVICE} is busy: it already streams to as many viewers as it allows"
    )
    assert "(-32002 busy: device viewer limit reached (1 sessions))" in said


async def test_an_account_without_acl_rights_is_told_so(tmp_path: Path) -> None:
    # An ACL that grants requests per account (as some operators write it): viewer-mute may
    # read status but send nothing.
    acl = "\n".join(
        [
            "pattern readwrite edgecam/%u/#",
            "pattern read edgecam/+/status",
            f"user {VIEWER}",
            f"topic write edgecam/+/rpc/{VIEWER}",
            f"topic read edgecam/+/rpc/{VIEWER}/reply",
            "",
        ]
    )
    accounts = {"viewer-mute": "pw"}
    async with (
        fleet_and_agent(tmp_path, accounts, acl) as (fleet, agent),
        chromium_trusting(fleet) as browser,
    ):
        page = await open_page(browser, fleet.page_url(username="viewer-mute", password="pw"))
        await page.wait_for_function("edgecam.state === 'failed'", timeout=WAIT_MS)
        said = await _text(page, "#session-error")
        # The account the ACL does grant still plays on that broker.
        allowed = await open_page(browser, fleet.page_url(username=VIEWER, password=SECRET))
        await allowed.wait_for_function("edgecam.framesDecoded() >= 10", timeout=WAIT_MS)
        assert [row["client"] for row in agent.sessions.rows()] == [VIEWER]
    assert said.startswith(
        f"The broker's ACL refused the request on edgecam/{DEVICE}/rpc/viewer-mute: "
        "this account may not send to the device."
    )


async def test_a_second_login_of_the_same_account_is_named_on_the_first_page(
    tmp_path: Path,
) -> None:
    async with fleet_and_agent(tmp_path) as (fleet, _agent), chromium_trusting(fleet) as browser:
        url = fleet.page_url(username=VIEWER, password=SECRET, autoplay="0")
        first = await open_page(browser, url)
        await first.click("#connect")
        await first.wait_for_function("edgecam.broker === 'connected'", timeout=WAIT_MS)
        second = await open_page(browser, url)
        await second.click("#connect")
        await second.wait_for_function("edgecam.broker === 'connected'", timeout=WAIT_MS)
        await first.wait_for_function(
            "document.getElementById('broker-error').textContent !== ''", timeout=WAIT_MS
        )
        said = await _text(first, "#broker-error")
    # mosquitto 2.0 closes the first socket without a DISCONNECT reason.
    assert said.startswith("The broker closed this connection without saying why")
    assert f'another login with the account\'s client id "{VIEWER}"' in said


# --- the README's nginx and Caddy snippets, as written there ----------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block(language: str) -> str:
    """The README's one ```language block (in "Host the viewer page")."""
    (block,) = re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.M | re.S)
    return block


def _localised(snippet: str, fleet: Fleet, port: int, site: Path) -> str:
    """The snippet with this test's names, ports and files in place of the README's."""
    certs = fleet.out / "certs"
    for old, new in (
        ("listen 443 ssl", f"listen 127.0.0.1:{port} ssl"),
        ("/etc/ssl/viewer.example.pem", str(certs / "broker.pem")),
        ("/etc/ssl/private/viewer.example.key", str(certs / "broker.key")),
        (
            "viewer.example {",
            f"https://localhost:{port} {{\n    tls {certs / 'broker.pem'} {certs / 'broker.key'}",
        ),
        ("viewer.example", "localhost"),
        ("/srv/edgecam-viewer", str(site)),
        ("https://127.0.0.1:8884", f"https://127.0.0.1:{fleet.wss_port}"),
        ("/etc/mosquitto/edgecam/certs/ca.pem", str(certs / "ca.pem")),
        ("mqtt.example", "localhost"),
    ):
        snippet = snippet.replace(old, new)
    return snippet


def _nginx(fleet: Fleet, port: int, work: Path) -> list[str]:
    server = _localised(readme_block("nginx"), fleet, port, fleet.site_dir)
    temp = " ".join(
        f"{kind}_temp_path {work / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # Workers as root: pytest's tmp directories are 0700.
    (work / "nginx.conf").write_text(
        f"daemon off; user root; pid {work / 'nginx.pid'}; error_log stderr info;\n"
        "events {}\n"
        f"http {{ include /etc/nginx/mime.types; access_log off; {temp}\n{server}\n}}\n"
    )
    nginx = require_tool("nginx", "nginx-light")
    return [nginx, "-p", str(work), "-c", str(work / "nginx.conf")]


def _caddy(fleet: Fleet, port: int, work: Path) -> list[str]:
    site = _localised(readme_block("caddyfile"), fleet, port, fleet.site_dir)
    (work / "Caddyfile").write_text(
        "{\n    admin off\n    auto_https disable_redirects\n}\n" + site
    )
    caddy = require_tool("caddy", "caddy")
    return [caddy, "run", "--config", str(work / "Caddyfile"), "--adapter", "caddyfile"]


@pytest.mark.parametrize("server", ["nginx", "caddy"])
async def test_page_behind_the_readme_web_server_plays_with_mqtt_proxied_on_its_origin(
    tmp_path: Path, server: str
) -> None:
    async with fleet_and_agent(tmp_path) as (fleet, agent), chromium_trusting(fleet) as browser:
        port = free_port()
        work = tmp_path / server
        work.mkdir()
        argv = (_nginx if server == "nginx" else _caddy)(fleet, port, work)
        # Caddy keeps state under HOME / XDG dirs: the test's own.
        env = ["env", f"HOME={work}", f"XDG_DATA_HOME={work}", f"XDG_CONFIG_HOME={work}"]
        with running([*env, *argv], work / "log", port, server):
            origin = f"https://localhost:{port}"
            url = f"{origin}/?" + urlencode(
                {"broker": f"wss://localhost:{port}/mqtt", "device": DEVICE,
                 "username": VIEWER, "password": SECRET, "autoplay": "1"}
            )  # fmt: skip
            page = await open_page(browser, url)
            await page.wait_for_function("window.edgecam.framesDecoded() >= 30", timeout=WAIT_MS)
            assert [row["client"] for row in agent.sessions.rows()] == [VIEWER]
            csp = await page.evaluate(
                "fetch('/').then((r) => r.headers.get('content-security-policy'))"
            )
            assert "script-src 'self'" in csp
