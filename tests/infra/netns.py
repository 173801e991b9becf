"""Network-namespace topologies for tests: hosts on private subnets behind one router namespace.

Layout: one router namespace; each host namespace gets one veth (`eth0`) on its own subnet
`<base>.<n>.0/24` (router `.1`, host `.2`) and a default route via the router, which forwards
between all subnets except the pairs passed to `isolate()` (policy rules that drop the traffic
silently, like a NAT or firewall would). The 10.77.x.y addresses exist only inside these
namespaces, never in the namespace pytest runs in.

Works as root inside the `unshare -n` namespace the test run uses: `ip netns add` bind-mounts
the namespace under /run/netns (a shared directory unless the run also has a private mount
namespace), so names carry the pytest pid and a random tag, and namespaces left over by a
killed run (whose pid is gone) are swept at the next start.

`netns_entered(name)` moves only the calling thread into a namespace (setns), so sockets made
inside the `with` block live there: useful to run an in-process peer or connect to a server
started with `run_in()`. Leave the block before awaiting anything unrelated.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.infra.tools import require_tool

NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000
_NAME_RE = re.compile(r"^ect(\d+)x[0-9a-f]+-")


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def netns_entered(name: str | None) -> Iterator[None]:
    """Run the block with the calling thread in network namespace `name` (None: stay put)."""
    if name is None:
        yield
        return
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(original)
    finally:
        os.close(original)


def netns_argv(name: str | None, argv: Sequence[str]) -> list[str]:
    """`argv` prefixed to run inside namespace `name` (unchanged for None)."""
    if name is None:
        return list(argv)
    return ["ip", "netns", "exec", name, *argv]


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _kill_netns_processes(name: str) -> None:
    result = subprocess.run(
        ["ip", "netns", "pids", name], capture_output=True, text=True, check=False
    )
    for pid in result.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _delete_netns(name: str) -> None:
    _kill_netns_processes(name)
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def sweep_stale_namespaces() -> None:
    """Delete namespaces made by earlier test runs whose pytest process no longer exists."""
    if not NETNS_DIR.is_dir():
        return
    for entry in NETNS_DIR.iterdir():
        match = _NAME_RE.match(entry.name)
        if match is None:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            _delete_netns(entry.name)
        except PermissionError:
            pass


@dataclass(frozen=True)
class Host:
    """One host namespace: its logical name, `ip netns` name and address on its subnet."""

    name: str
    netns: str
    address: str
    gateway: str
    subnet: str


class Topology:
    """Host namespaces behind a router namespace; a context manager that always cleans up.

    Typical use::

        with Topology() as topo:
            agent, viewer, turn = (topo.add_host(n) for n in ("agent", "viewer", "turn"))
            topo.isolate(agent, viewer)
            with Coturn(workdir, pki, host=turn.address, netns=turn.netns):
                proc = topo.run_in(agent, [sys.executable, "-m", "agent.tools.cli", ...])
    """

    def __init__(self, *, base: str = "10.77") -> None:
        self.base = base
        self.tag = f"ect{os.getpid()}x{secrets.token_hex(3)}"
        self.router = f"{self.tag}-router"
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []
        self._procs: list[subprocess.Popen[Any]] = []
        self._started = False

    def start(self) -> Topology:
        """Create the router namespace (idempotent)."""
        if self._started:
            return self
        require_tool("ip", "iproute2")
        if os.geteuid() != 0:
            pytest.fail("network-namespace tests need root: run them through `make test`")
        sweep_stale_namespaces()
        self._started = True
        self._add_netns(self.router)
        with netns_entered(self.router):
            Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
        return self

    def _add_netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def add_host(self, name: str) -> Host:
        """Add host namespace `name` on the next free subnet, reachable through the router."""
        self.start()
        if name in self.hosts:
            raise ValueError(f"host {name!r} already exists")
        index = len(self.hosts) + 1
        if index > 254:
            raise ValueError("at most 254 hosts")
        netns = f"{self.tag}-{name}"
        prefix = f"{self.base}.{index}"
        host = Host(name, netns, f"{prefix}.2", f"{prefix}.1", f"{prefix}.0/24")
        self._add_netns(netns)
        router_if = f"h{index}"
        _ip(
            "link",
            "add",
            "eth0",
            "netns",
            netns,
            "type",
            "veth",
            "peer",
            "name",
            router_if,
            "netns",
            self.router,
        )
        # A veth pair hands a UDP GSO batch (agent/net/udp_batch.py) to the other side as one
        # 60 KB skb, where a real NIC puts separate frames on the wire; the userspace router
        # (tests/infra/linkemu.py) reads frames with AF_PACKET and could not forward one that
        # size. One segment per skb makes the kernel split them first, as a NIC would.
        _ip("-n", netns, "link", "set", "dev", "eth0", "gso_max_segs", "1")
        _ip("-n", self.router, "link", "set", "dev", router_if, "gso_max_segs", "1")
        _ip("-n", netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        _ip("-n", self.router, "addr", "add", f"{host.gateway}/24", "dev", router_if)
        _ip("-n", self.router, "link", "set", router_if, "up")
        _ip("-n", netns, "route", "add", "default", "via", host.gateway)
        self.hosts[name] = host
        return host

    def isolate(self, a: Host, b: Host, *, action: str = "blackhole") -> None:
        """Make the router drop traffic between `a` and `b` in both directions.

        `action` is an `ip rule` type: `blackhole` (silent, like a NAT), or `prohibit` /
        `unreachable` (answered with ICMP, so connects fail at once).
        """
        for src, dst in ((a, b), (b, a)):
            _ip(
                "-n",
                self.router,
                "rule",
                "add",
                "from",
                src.subnet,
                "to",
                dst.subnet,
                action,
                "pref",
                "100",
            )

    def _netns_name(self, host: Host | str) -> str:
        return host.netns if isinstance(host, Host) else self.hosts[host].netns

    def run_in(
        self, host: Host | str, argv: Sequence[str], **popen_kwargs: Any
    ) -> subprocess.Popen[Any]:
        """Start `argv` inside `host`'s namespace; it is killed at `close()` if still running."""
        proc: subprocess.Popen[Any] = subprocess.Popen(
            netns_argv(self._netns_name(host), argv), **popen_kwargs
        )
        self._procs.append(proc)
        return proc

    def run(
        self, host: Host | str, argv: Sequence[str], *, timeout: float = 10.0
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` to completion inside `host`'s namespace and return its output."""
        return subprocess.run(
            netns_argv(self._netns_name(host), argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def enter(self, host: Host | str) -> contextlib.AbstractContextManager[None]:
        """`netns_entered()` for `host`: sockets made in the block belong to its namespace."""
        return netns_entered(self._netns_name(host))

    def close(self) -> None:
        """Kill what was started in the namespaces and delete them (safe to call twice)."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._procs.clear()
        # Hosts first: deleting a host namespace takes its veth (and the router's end) with it.
        for name in reversed(self._namespaces):
            _delete_netns(name)
        self._namespaces.clear()
        self.hosts.clear()
        self._started = False

    def __enter__(self) -> Topology:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@pytest.fixture
def netns_topology() -> Iterator[Topology]:
    """An empty started `Topology`; add hosts with `add_host()`. Deleted after the test."""
    with Topology() as topo:
        yield topo
