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
"""

from __future__ import annotations

import os
import socket
import time

__all__ = ["DEFAULT_PORTS", "main", "probe"]

DEFAULT_PORTS = {"HEALTH_PORT": 8000, "STORAGE_API_PORT": 8080}
"""The port each variable names when the container does not set it: the services' own defaults."""
TIMEOUT_SECONDS = 2.5  # inside the 3 s the images' HEALTHCHECK gives the whole command, Python's start included
MOST_BYTES_READ = 64 * 1024  # /health answers a few hundred bytes; more is not a health answer


def probe(port: int, *, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """Whether ``/health`` on ``port`` answers 2xx within ``timeout`` seconds, and a line saying what it answered."""
    url = f"http://127.0.0.1:{port}/health"
    try:
        answer = _get(port, "/health", timeout)
    except TimeoutError:  # connected, or not, and the answer did not come whole in time
        return False, f"{url}: no whole answer within {timeout:g} s"
    except OSError as error:  # refused, timed out: the service is not listening (yet), or not answering
        return False, f"{url}: {str(error) or type(error).__name__}"
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


def _get(port: int, path: str, timeout: float) -> bytes:
    """The whole answer to ``GET path`` on ``port``, read until the server closes, within ``timeout`` in all (a server
    that trickles bytes does not stretch it)."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
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
    """The probe's exit status: 0 healthy, 1 not. ``argv``: at most the name of the variable holding the port."""
    if len(argv) > 1:
        print("usage: python -m newsflow_probe [PORT_VARIABLE]   (default HEALTH_PORT)")
        return 1
    variable = argv[0] if argv else "HEALTH_PORT"
    value = os.environ.get(variable) or str(DEFAULT_PORTS.get(variable, DEFAULT_PORTS["HEALTH_PORT"]))
    port = int(value) if value.isascii() and value.isdecimal() else 0  # "²" is a digit to str.isdigit, not to int
    if not 0 < port < 65536:
        print(f"{variable}={value!r} is not a port")
        return 1
    healthy, said = probe(port)
    print(said)
    return 0 if healthy else 1
