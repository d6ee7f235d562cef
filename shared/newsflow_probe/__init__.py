"""The containers' health probe: ``python -m newsflow_probe [PORT_VARIABLE]`` asks ``/health`` on this container.

Docker and Podman run a HEALTHCHECK as a command inside the container. It used to be a ``python -c "..."`` one-liner,
an argument with spaces in it, and Podman's Docker API (4.x, which ``docker compose`` talks to on a Podman host)
splits such an argument at its spaces: every probe then failed on a SyntaxError and every service read unhealthy.
This probe's arguments have no spaces to split. It imports only the standard library, because the services' own
package takes over a second to import against the probe's few seconds, and it prints why a probe failed, which
``docker inspect`` then shows in the container's health log.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

__all__ = ["DEFAULT_PORTS", "main", "probe"]

DEFAULT_PORTS = {"HEALTH_PORT": 8000, "STORAGE_API_PORT": 8080}
"""The port each variable names when the container does not set it: the services' own defaults."""
TIMEOUT_SECONDS = 2.5  # inside the 3 s the images' HEALTHCHECK gives the whole command, Python's start included


def probe(port: int, *, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """Whether ``/health`` on ``port`` answers 2xx, and a line saying what it answered."""
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return True, f"{url}: {response.status}"
    except urllib.error.HTTPError as error:  # the service answered, and not with "healthy": say what it found
        body = error.read(2000).decode(errors="replace").strip()
        return False, f"{url}: {error.code} {body}".rstrip()
    except OSError as error:  # refused, timed out: the service is not listening (yet)
        return False, f"{url}: {error}"


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
