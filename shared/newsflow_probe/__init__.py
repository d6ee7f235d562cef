"""The containers' health probe: ``python -m newsflow_probe [PORT_VARIABLE]`` asks ``/health`` on this container.

Docker and Podman run a HEALTHCHECK as a command inside the container. It used to be a ``python -c "..."`` one-liner,
an argument with spaces in it, and Podman's Docker API (4.x, which ``docker compose`` talks to on a Podman host)
splits such an argument at its spaces: every probe then failed on a SyntaxError and every service read unhealthy.
This probe's arguments have no spaces to split. It prints why a probe failed, which ``docker inspect`` then shows in
the container's health log.

It runs every 10 s in every container for as long as the pipeline runs, so what it imports is its cost: the
services' own package takes over a second, and even ``urllib.request`` (with ``http.client`` and ``email``) made a
probe 66 ms of CPU, where this one takes 28 (20 probes in a row; Python's own start is ~20). So it speaks HTTP/1.0
over a socket: one request, and the status line of the answer, which the server ends by closing the connection.

It asks where the service listens: the ``*_HOST`` variable beside the port's (``HEALTH_HOST`` for ``HEALTH_PORT``),
a wildcard read as this machine. Always asking 127.0.0.1, it failed for ever where a service listened on ``::``
(asyncio's listener there takes IPv6 alone) or on one interface's address.
"""

from __future__ import annotations

import os
import socket
import time

__all__ = ["DEFAULT_HOSTS", "DEFAULT_PORTS", "connect_hosts", "main", "probe"]

DEFAULT_PORTS = {"HEALTH_PORT": 8000, "STORAGE_API_PORT": 8080}
"""The port each variable names when the container does not set it: the services' own defaults."""
DEFAULT_HOSTS = {"HEALTH_HOST": "0.0.0.0", "STORAGE_API_HOST": "127.0.0.1"}
"""Where each service listens when the container does not say: the services' own defaults."""
TIMEOUT_SECONDS = 2.5  # inside the 3 s the images' HEALTHCHECK gives the whole command, Python's start included
MOST_BYTES_READ = 64 * 1024  # /health answers a few hundred bytes; more is not a health answer


def connect_hosts(host: str) -> list[str]:
    """The addresses to ask, in order, for a service that listens on ``host``: a wildcard is every interface, so
    this machine's loopback (for ``::`` ::1 first, as asyncio listens there for IPv6 alone, then 127.0.0.1 where this
    machine has no IPv6); a host name or address is asked itself, each address it resolves to."""
    host = host.strip()  # as the services' settings read it
    if _is_wildcard(socket.AF_INET, host):
        return ["127.0.0.1"]
    if _is_wildcard(socket.AF_INET6, host):
        return ["::1", "127.0.0.1"]
    return [host]


def _is_wildcard(family: socket.AddressFamily, host: str) -> bool:
    """Whether ``host`` spells ``family``'s any-address ("0.0.0.0"; "::", "::0", ...): parsed, not compared as text."""
    try:
        return not any(socket.inet_pton(family, host))
    except (OSError, ValueError):  # not an address of that family (ValueError: a NUL in it)
        return False


def probe(port: int, *, host: str = "127.0.0.1", timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """Whether ``/health`` on ``port`` answers 2xx within ``timeout`` seconds, and a line saying what it answered.
    ``host``: where the service listens (its ``HEALTH_HOST``), a wildcard meaning this machine."""
    deadline = time.monotonic() + timeout
    refused: list[str] = []
    for address in connect_hosts(host):
        url = f"http://{_in_url(address)}:{port}/health"
        try:
            answer = _get(address, port, "/health", deadline)
        except _NotConnected as error:  # nothing listens there (refused, no route, no such name): the next address
            refused.append(f"{url}: {_said(error.__cause__)}")
            continue
        except TimeoutError:  # connected, or not, and the answer did not come whole in time
            return False, f"{url}: no whole answer within {timeout:g} s"
        except OSError as error:  # connected, and the connection failed: the service is not answering
            return False, f"{url}: {_said(error)}"
        return _verdict(url, answer)
    return False, "; ".join(refused)


def _verdict(url: str, answer: bytes) -> tuple[bool, str]:
    """Whether ``answer`` is a 2xx HTTP answer, and a line saying what it was."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    version, _, rest = status_line.partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/") or len(code) != 3 or not code.isdigit():
        return False, f"{url}: not an HTTP answer: {status_line[:100]!r}"
    if code.startswith(b"2"):
        return True, f"{url}: {code.decode()}"
    # The service answered, and not with "healthy": say what it found.
    said = body[:2000].decode(errors="replace").strip()
    return False, f"{url}: {code.decode()} {said}".rstrip()


class _NotConnected(Exception):
    """The connection itself failed (its cause says how), not a time-out: another address may answer."""


def _in_url(address: str) -> str:
    return f"[{address}]" if ":" in address else address  # an IPv6 address, bracketed in a URL and a Host header


def _said(error: BaseException | None) -> str:
    return (str(error) or type(error).__name__) if error is not None else "not connected"


def _get(host: str, port: int, path: str, deadline: float) -> bytes:
    """The whole answer to ``GET path`` on ``host``:``port``, read until the server closes, by ``deadline`` in all (a
    server that trickles bytes does not stretch it). A connection that fails raises :class:`_NotConnected`."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    try:
        connection = socket.create_connection((host, port), timeout=left)
    except TimeoutError:  # the deadline is spent: no other address is asked
        raise
    except (OSError, UnicodeError) as error:  # UnicodeError: a host name the IDNA codec refuses
        raise _NotConnected from error
    with connection:
        connection.sendall(f"GET {path} HTTP/1.0\r\nHost: {_in_url(host)}:{port}\r\n\r\n".encode())
        chunks: list[bytes] = []
        received = 0
        while received < MOST_BYTES_READ:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            connection.settimeout(left)
            chunk = connection.recv(MOST_BYTES_READ - received)
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
    return b"".join(chunks)


def main(argv: list[str]) -> int:
    """The probe's exit status: 0 healthy, 1 not. ``argv``: at most the name of the variable holding the port; the
    host is the ``*_HOST`` variable beside it."""
    if len(argv) > 1:
        print("usage: python -m newsflow_probe [PORT_VARIABLE]   (default HEALTH_PORT)")
        return 1
    variable = argv[0] if argv else "HEALTH_PORT"
    value = os.environ.get(variable) or str(DEFAULT_PORTS.get(variable, DEFAULT_PORTS["HEALTH_PORT"]))
    port = int(value) if value.isascii() and value.isdecimal() else 0  # "²" is a digit to str.isdigit, not to int
    if not 0 < port < 65536:
        print(f"{variable}={value!r} is not a port")
        return 1
    # The host the service listens on is the variable beside its port's: HEALTH_HOST for HEALTH_PORT.
    host_variable = variable.removesuffix("_PORT") + "_HOST" if variable.endswith("_PORT") else None
    host = os.environ.get(host_variable) if host_variable else None
    if host is None:
        host = DEFAULT_HOSTS.get(host_variable or "", DEFAULT_HOSTS["HEALTH_HOST"])
    elif not host.strip():  # the service refuses an empty host at its start: it never listens
        print(f"{host_variable}={host!r} is not a host")
        return 1
    healthy, said = probe(port, host=host)
    print(said)
    return 0 if healthy else 1
