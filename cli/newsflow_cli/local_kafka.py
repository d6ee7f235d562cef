"""A real Apache Kafka broker without Docker: jars from Maven Central, one KRaft node on 127.0.0.1.

The jars are resolved once with Maven into ``~/.cache/newsflow/kafka-<version>``;
each broker gets its own data folder, so tests and demos never share state by
accident. Everything runs as child processes: the Kafka tools call System.exit.
"""

from __future__ import annotations

import base64
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from newsflow_shared.lifecycle import die_with_parent

KAFKA_VERSION = "4.1.1"
CACHE = Path(os.environ.get("NEWSFLOW_CACHE", Path.home() / ".cache" / "newsflow"))


class KafkaUnavailable(RuntimeError):
    """A local broker cannot be had here; the message says what is missing and what to do instead."""


def jars_dir() -> Path:
    return CACHE / f"kafka-{KAFKA_VERSION}" / "libs"


def _java_major() -> int | None:
    java = shutil.which("java")
    if java is None:
        return None
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def check_java() -> None:
    major = _java_major()
    if major is None or major < 17:
        found = "no Java" if major is None else f"Java {major}"
        raise KafkaUnavailable(
            f"A local Kafka broker needs Java 17 or newer and found {found}: install OpenJDK 17 "
            "(apt-get install openjdk-17-jre-headless) or run the stack with `docker compose up`."
        )


def fetch_jars() -> Path:
    """Resolve the broker's jars with Maven (once; later calls reuse the cache)."""
    target = jars_dir()
    marker = target / ".complete"
    if marker.exists():
        return target
    check_java()
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaUnavailable(
            "Resolving the Kafka broker's jars needs Maven, which is not installed: install it "
            "(apt-get install maven) or run the stack with `docker compose up`."
        )
    target.mkdir(parents=True, exist_ok=True)
    pom = resources.files(__package__).joinpath("kafka-pom.xml")
    with resources.as_file(pom) as pom_path:
        subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom_path),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={target}",
                "-DincludeScope=runtime",
                f"-Dkafka.version={KAFKA_VERSION}",
            ],
            check=True,
        )
    marker.touch()
    return target


def new_cluster_id() -> str:
    """22 URL-safe base64 characters, like StorageTool random-uuid, but never starting with '-'
    (the tool would read that as an option)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port no one listens on now, for a process about to listen there, and never one handed out before.

    Not the kernel's pick (a bind to port 0): that comes from the range it also gives outgoing connections, and
    between this check and the service binding the port, one of the pipeline's own Kafka connections took it once (a
    `make demo` whose cleanup could not bind its health port). Below that range no outgoing connection lands.
    """
    start, stop = _listening_ports()
    for _ in range(1_000):
        port = random.randrange(start, stop)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))  # the wildcard: taken if anything listens on any address there
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise OSError(f"no free port found between {start} and {stop}")


def _listening_ports() -> tuple[int, int]:
    """Where to look: up to 16,000 ports below the outgoing range, above 10,000 (well-known services, 8080) and below
    30,000 (Kubernetes' node ports, which a local cluster rewrites unseen by a bind). A range tuned to start lower
    leaves no room there: then 20,000-30,000, inside it, as likely to race as the kernel's own pick was."""
    stop = min(_ephemeral_low(), 30_000)
    start = max(stop - 16_000, 10_000)
    return (start, stop) if stop - start >= 1_000 else (20_000, 30_000)


def _ephemeral_low() -> int:
    """Where the kernel's range for outgoing connections starts (Linux's is 32768-60999 by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # elsewhere (macOS: 49152 up) the same is below it too


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


JVM_PERFORMANCE_OPTS = "-XX:+UseG1GC -XX:TieredStopAtLevel=1"  # quicker start; a test broker never warms up anyway

_LOG4J = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass
class SecureListener:
    """An extra TLS listener beside the plain one, to run Newsflow as it runs against a managed Kafka.

    ``SASL_SSL`` logs ``users`` in with SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN; ``SSL``
    requires a client certificate signed by a CA in ``truststore`` (mutual TLS). The
    broker reads PEM files: ``keystore`` holds its unencrypted PKCS#8 private key and
    certificate chain, ``truststore`` the CA certificates it trusts.
    """

    protocol: Literal["SASL_SSL", "SSL"]
    keystore: Path
    truststore: Path
    users: dict[str, str] = field(default_factory=dict)
    port: int = 0

    def properties(self) -> dict[str, str]:
        prefix = f"listener.name.{self.protocol.lower()}"
        properties = {
            f"{prefix}.ssl.keystore.type": "PEM",
            f"{prefix}.ssl.keystore.location": str(self.keystore),
            f"{prefix}.ssl.truststore.type": "PEM",
            f"{prefix}.ssl.truststore.location": str(self.truststore),
        }
        if self.protocol == "SSL":
            properties[f"{prefix}.ssl.client.auth"] = "required"
            return properties
        plain_users = " ".join(f'user_{name}="{password}"' for name, password in self.users.items())
        properties[f"{prefix}.sasl.enabled.mechanisms"] = ",".join([*SCRAM_MECHANISMS, "PLAIN"])
        properties[f"{prefix}.plain.sasl.jaas.config"] = (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
        )
        for mechanism in SCRAM_MECHANISMS:
            properties[f"{prefix}.{mechanism.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
        return properties

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` creates the SCRAM users in the cluster's first metadata."""
        return [
            argument
            for name, password in self.users.items()
            for mechanism in SCRAM_MECHANISMS
            for argument in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
        ]


@dataclass
class LocalKafka:
    """One single-node KRaft broker with its data in ``workdir``, and any ``secure`` listeners beside."""

    workdir: Path
    port: int = 0
    controller_port: int = 0
    heap: str = "512m"
    secure: list[SecureListener] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def address(self, protocol: str) -> str:
        """The bootstrap address of the listener speaking ``protocol``."""
        if protocol == "PLAINTEXT":
            return self.bootstrap_servers
        [listener] = [listener for listener in self.secure if listener.protocol == protocol]
        return f"127.0.0.1:{listener.port}"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.workdir / "kafka.log"

    def _java(self, main: str, *args: str) -> list[str]:
        # Kafka's own variable, as its start scripts read it: to try other collectors or compilers.
        performance = os.environ.get("KAFKA_JVM_PERFORMANCE_OPTS", JVM_PERFORMANCE_OPTS).split()
        return [
            "java",
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            *performance,
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "-cp",
            f"{jars_dir()}/*",
            main,
            *args,
        ]

    def _configure(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        for listener in self.secure:
            listener.port = listener.port or free_port()
        advertised = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        advertised += [f"{listener.protocol}://127.0.0.1:{listener.port}" for listener in self.secure]
        protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
        protocols += [f"{listener.protocol}:{listener.protocol}" for listener in self.secure]
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": ",".join([*advertised, f"CONTROLLER://127.0.0.1:{self.controller_port}"]),
            "advertised.listeners": ",".join(advertised),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": str(self.workdir / "data"),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "num.partitions": "6",
            "message.max.bytes": str(33 * 1024 * 1024),
            "replica.fetch.max.bytes": str(33 * 1024 * 1024),
            "log.cleaner.dedupe.buffer.size": "2097152",
            # A single-node broker on a developer's machine idles at 15-17 ms of CPU a second with these, 25-28 with
            # Kafka's defaults (bench/HISTORY.md, session 6): at 20 articles/s that is a millisecond of CPU per article.
            "num.network.threads": "1",
            "num.io.threads": "2",
            "background.threads": "1",
            "metadata.max.idle.interval.ms": "10000",  # KRaft's no-op metadata record: every 0.5 s by default
            "broker.heartbeat.interval.ms": "5000",
            # Also how long a broker killed mid-run takes to come back: its new start is refused ("duplicate broker
            # registration") until the old one's session lapses. 30 s: 33 s to serve again; 15 s: 18 s.
            "broker.session.timeout.ms": "15000",
            "group.coordinator.rebalance.protocols": "classic,consumer",  # no share groups: their threads idle too
        }
        for listener in self.secure:
            properties.update(listener.properties())
        config = self.workdir / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
        (self.workdir / "log4j2.properties").write_text(_LOG4J.format(log=self.log_file))
        return config

    def start(self, timeout: float = 90.0, *, tied_to_parent: bool = False) -> LocalKafka:
        """Format storage (first time only), start the broker, and return once it serves.

        ``tied_to_parent``: the broker dies with this process, even when it is killed (``newsflow run``
        and ``process``); ``newsflow kafka start`` leaves it running on purpose.
        """
        fetch_jars()
        config = self._configure()
        if not (self.workdir / "data" / "meta.properties").exists():
            users = [argument for listener in self.secure for argument in listener.scram_arguments()]
            formatted = subprocess.run(
                self._java(
                    "kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(config), "-g", *users
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if formatted.returncode != 0:
                raise KafkaUnavailable(
                    f"formatting Kafka's storage failed: {formatted.stdout}{formatted.stderr}".strip()
                )
        stdout = open(self.workdir / "kafka.stdout", "ab")  # noqa: SIM115 - the broker owns it from here
        self.process = subprocess.Popen(
            self._java("kafka.Kafka", str(config)),
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us, and we stop the broker cleanly
            preexec_fn=die_with_parent if tied_to_parent else None,
        )
        self.pid_file.write_text(f"{self.process.pid} {self.port} {self.controller_port}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise KafkaUnavailable(
                    f"the Kafka broker exited with {self.process.returncode}{self._exit_reason()}; see {self.log_file}"
                )
            if self._started() and port_open(self.port):
                return self
            time.sleep(0.2)
        self.stop()
        raise KafkaUnavailable(f"the Kafka broker did not start within {timeout:.0f}s; see {self.log_file}")

    def _exit_reason(self) -> str:
        """The cause a user can act on, where the log names one: most often a port another process holds."""
        if taken := re.search(r"failed to bind to (\S+?): Address already in use", self._log_text()):
            return (
                f": {taken.group(1)} is already in use (a broker left running? `newsflow kafka stop` stops the one"
                " `newsflow kafka start` started)"
            )
        return ""

    def _started(self) -> bool:
        return "Kafka Server started" in self._log_text()

    def _log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then wait for a clean shutdown; SIGKILL only if it hangs."""
        pid = self.process.pid if self.process else _read_pid(self.pid_file)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        else:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _alive(pid, self.process):
                time.sleep(0.1)
            if _alive(pid, self.process):
                os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=5)
        self.pid_file.unlink(missing_ok=True)

    @classmethod
    def attach(cls, workdir: Path) -> LocalKafka | None:
        """The broker a previous ``start`` left running in ``workdir``, if it still runs."""
        pid_file = Path(workdir) / "kafka.pid"
        if not pid_file.exists():
            return None
        pid, port, controller_port = (int(x) for x in pid_file.read_text().split())
        if not _alive(pid, None):
            pid_file.unlink(missing_ok=True)
            return None
        return cls(Path(workdir), port=port, controller_port=controller_port)


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _alive(pid: int, process: subprocess.Popen[bytes] | None) -> bool:
    if process is not None:
        return process.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
