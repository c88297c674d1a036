"""Each local job's network, built of Linux namespaces: no socket of a job leaves it.

A SageMaker job's instances reach each other (the torchrun rendezvous, NCCL, gloo), but a job with
network isolation reaches nothing else, and a job in a VPC without egress reaches no internet.
Local mode gives every job that: each host (`algo-1` ... `algo-N`) runs in its own network, mount
and UTS namespaces, made with `unshare` and entered with `nsenter`:

- `lo`, up, in every host;
- `eth0`, a veth to the job's own bridge (in a namespace of its own) with `10.0.0.<k>/24`, in every
  host of a job with several hosts, or of a job without network isolation; a network-isolated job
  with one host has no interface but `lo`;
- no default route anywhere, so a connection to any other address fails at once (ENETUNREACH),
  whatever library makes it: there is no interface to bypass;
- `/etc/hosts` (a bind mount in the host's mount namespace) names `algo-1` ... `algo-N`, and the
  hostname is the host's name.

Nothing is created in the machine's own network namespace. Each namespace is held by a `cat`
reading a pipe from this process: closing the pipe, or this process dying, releases them all.
`build_job_network` is the one place that decides a job's links.

A job without network isolation also gets a gateway, `10.0.0.254` on the job's bridge, where relays
(local_mode/netns_relay.py) lead to the emulated account's endpoint and, when there is one, the
local model hub: what such a job may call in the cloud, and nothing else.

Creating namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN). Where that is not available,
`build_job_network` returns the machine's network for one-host jobs (a warning says so) and refuses
several hosts, which cannot be told apart without namespaces.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SUBNET = ipaddress.ip_network("10.0.0.0/24")
GATEWAY = "10.0.0.254"
INTERFACE = "eth0"
BRIDGE = "br0"


class NetworkUnavailable(RuntimeError):
    """The job needs namespaces this machine does not let local mode create."""


@functools.lru_cache(maxsize=1)
def namespaces_available() -> bool:
    """Can this process create network, mount and UTS namespaces and bring up a veth pair in one?"""
    try:
        result = subprocess.run(
            [
                "unshare",
                "--net",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--",
                "ip",
                "link",
                "add",
                "probe0",
                "type",
                "veth",
                "peer",
                "name",
                "probe1",
            ],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@dataclass(frozen=True)
class HostLink:
    """One host's place in the job's network: its name, and its eth0 address (None: `lo` only)."""

    name: str
    address: str | None


class HostNetwork:
    """The machine's own network, for a one-host job where namespaces cannot be made."""

    sandboxed = False
    interface: str | None = None

    def __init__(self, gateway: dict[str, int] | None = None):
        # Without namespaces the job reaches this machine's loopback directly.
        self.gateway_urls = {name: f"http://127.0.0.1:{port}" for name, port in (gateway or {}).items()}

    def command(self, host: str, command: list[str]) -> list[str]:
        return list(command)

    def close(self) -> None:
        pass


class JobNetwork:
    """Namespaces for every host of one job; `command` runs a command inside a host."""

    sandboxed = True

    def __init__(self, links: list[HostLink], folder: Path, gateway: dict[str, int] | None = None):
        self.links = links
        self.folder = Path(folder)
        self.interface = INTERFACE if any(link.address for link in links) else None
        self.gateway = dict(gateway or {}) if self.interface else {}
        self.gateway_urls: dict[str, str] = {}
        self._holders: dict[str, subprocess.Popen] = {}
        self._relays: list = []

    def start(self) -> JobNetwork:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        hosts_file = self.folder / "hosts"
        hosts_file.write_text(self.hosts_file_text(), encoding="utf-8")
        if self.interface:
            switch = self._hold("switch", ["--net"])
            _run("nsenter", "-t", str(switch.pid), "-n", "ip", "link", "add", BRIDGE, "type", "bridge")
            _run("nsenter", "-t", str(switch.pid), "-n", "ip", "link", "set", BRIDGE, "up")
        for index, link in enumerate(self.links, start=1):
            holder = self._hold(link.name, ["--net", "--mount", "--uts", "--propagation", "private"])
            inside = ["nsenter", "-t", str(holder.pid)]
            _run(*inside, "-n", "ip", "link", "set", "lo", "up")
            _run(*inside, "-u", "hostname", link.name)
            _run(*inside, "-m", "mount", "--bind", str(hosts_file), "/etc/hosts")
            if link.address:
                port = f"port{index}"
                _run(
                    "ip",
                    "link",
                    "add",
                    INTERFACE,
                    "netns",
                    str(holder.pid),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    port,
                    "netns",
                    str(self._holders["switch"].pid),
                )
                _run(
                    "nsenter", "-t", str(self._holders["switch"].pid), "-n", "ip", "link", "set", port, "master", BRIDGE
                )
                _run("nsenter", "-t", str(self._holders["switch"].pid), "-n", "ip", "link", "set", port, "up")
                _run(*inside, "-n", "ip", "addr", "add", f"{link.address}/{SUBNET.prefixlen}", "dev", INTERFACE)
                _run(*inside, "-n", "ip", "link", "set", INTERFACE, "up")
        if self.gateway:
            self._open_gateway()

    def _open_gateway(self) -> None:
        from local_mode.netns_relay import Relay, listen_in_namespace

        switch = self._holders["switch"].pid
        _run("nsenter", "-t", str(switch), "-n", "ip", "addr", "add", f"{GATEWAY}/{SUBNET.prefixlen}", "dev", BRIDGE)
        for name, target_port in self.gateway.items():
            relay = Relay(listen_in_namespace(switch, GATEWAY), target_port)
            self._relays.append(relay)
            self.gateway_urls[name] = f"http://{GATEWAY}:{relay.address[1]}"

    def hosts_file_text(self) -> str:
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        for link in self.links:
            lines.append(f"{link.address or '127.0.1.1'}\t{link.name}")
        return "\n".join(lines) + "\n"

    def _hold(self, name: str, namespaces: list[str]) -> subprocess.Popen:
        """A process in new namespaces; returns once they exist, so nothing lands in the machine's own."""
        holder = subprocess.Popen(
            ["unshare", *namespaces, "--", "cat"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._holders[name] = holder
        kinds = [
            {"--net": "net", "--mount": "mnt", "--uts": "uts"}[flag]
            for flag in namespaces
            if flag in ("--net", "--mount", "--uts")
        ]
        deadline = time.monotonic() + 30
        while True:
            if holder.poll() is not None:
                raise NetworkUnavailable(
                    f"unshare {' '.join(namespaces)} failed: {holder.stderr.read().decode(errors='replace').strip()}"
                )
            try:
                if all(
                    os.readlink(f"/proc/{holder.pid}/ns/{kind}") != os.readlink(f"/proc/self/ns/{kind}")
                    for kind in kinds
                ):
                    return holder
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                raise NetworkUnavailable(f"unshare {' '.join(namespaces)} did not create its namespaces")
            time.sleep(0.005)

    def command(self, host: str, command: list[str]) -> list[str]:
        """`command` as it runs inside `host`'s namespaces (nsenter execs it: same process, same signals)."""
        return ["nsenter", "-t", str(self._holders[host].pid), "-n", "-m", "-u", "--", *command]

    def close(self) -> None:
        for relay in self._relays:
            relay.close()
        self._relays.clear()
        for holder in self._holders.values():
            with contextlib.suppress(OSError):
                holder.stdin.close()
        for holder in self._holders.values():
            try:
                holder.wait(10)
            except subprocess.TimeoutExpired:
                holder.kill()
                holder.wait()
        self._holders.clear()


def build_job_network(
    hosts: list[str],
    isolated: bool,
    folder: Path,
    use_namespaces: bool | None = None,
    gateway: dict[str, int] | None = None,
):
    """The network of one job's hosts: who gets an eth0 on the job's bridge, and at which address.

    A job with several hosts always links them (SageMaker lets the instances of one job talk, with
    network isolation too); a one-host job gets eth0 unless it is network-isolated. No host gets a
    route out of the job; a job without isolation reaches `gateway`'s ports (name -> port on
    127.0.0.1) through relays at GATEWAY.
    """
    gateway = None if isolated else gateway
    if use_namespaces is None:
        use_namespaces = namespaces_available()
    if not use_namespaces:
        if len(hosts) > 1:
            raise NetworkUnavailable(
                f"a job with {len(hosts)} instances runs in local mode only in network namespaces, one per "
                "host, which need root (unshare, nsenter, ip): run local mode as root, or use InstanceCount 1"
            )
        return HostNetwork(gateway)
    linked = len(hosts) > 1 or not isolated
    addresses = list(SUBNET.hosts())
    links = [HostLink(name, str(addresses[index]) if linked else None) for index, name in enumerate(hosts)]
    return JobNetwork(links, folder, gateway).start()


def _run(*command: str) -> None:
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise NetworkUnavailable(f"{' '.join(command)} failed: {result.stderr.strip() or result.returncode}")
