"""A TCP relay from inside a job's network namespace to a server of this process.

A job without network isolation may call AWS (and download from the Hub) but has no route out of
its namespaces. The relay gives it exactly one way: a listening socket created inside the job's
switch namespace (a throwaway thread enters it with setns(2); a socket stays in the namespace it was
made in), whose connections this process forwards to one port on 127.0.0.1. Nothing is added to the
machine's own network namespace, and nothing else becomes reachable.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def listen_in_namespace(pid: int, address: str, port: int = 0) -> socket.socket:
    """A listening TCP socket on `address:port` in the network namespace of process `pid`."""
    made: dict[str, object] = {}

    def create() -> None:
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                made["error"] = OSError(ctypes.get_errno(), f"setns into the network namespace of {pid}")
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((address, port))
            listener.listen(64)
            made["socket"] = listener
        except OSError as error:
            made["error"] = error
        finally:
            os.close(target)

    thread = threading.Thread(target=create)  # ends in the job's namespace; no other code runs on it
    thread.start()
    thread.join()
    if "error" in made:
        raise made["error"]  # type: ignore[misc]
    return made["socket"]  # type: ignore[return-value]


class Relay:
    """Forward every connection accepted on `listener` to 127.0.0.1:`target_port`."""

    def __init__(self, listener: socket.socket, target_port: int):
        self.listener = listener
        self.target_port = target_port
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="netns-relay", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return self.listener.getsockname()[:2]

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for side in (sink, source):
            with contextlib.suppress(OSError):
                side.shutdown(socket.SHUT_WR if side is sink else socket.SHUT_RD)
