"""The OTLP exporter follows OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL: it was always the http one, so a collector's gRPC
port (4317, OTEL_EXPORTER_OTLP_PROTOCOL=grpc) got only the exporter's errors, and nothing said why."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from newsflow_shared import tracing
from newsflow_shared.settings import EXIT_CONFIG

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
GRPC_PACKAGE = "opentelemetry.exporter.otlp.proto.grpc"


class GrpcSpanExporter(SpanExporter):
    """Stands in for the gRPC exporter's class, whose package the images do not install."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@pytest.fixture
def grpc_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    package = types.ModuleType(GRPC_PACKAGE)
    module = types.ModuleType(f"{GRPC_PACKAGE}.trace_exporter")
    module.OTLPSpanExporter = GrpcSpanExporter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, GRPC_PACKAGE, package)
    monkeypatch.setitem(sys.modules, f"{GRPC_PACKAGE}.trace_exporter", module)


@pytest.fixture
def grpc_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, GRPC_PACKAGE, None)  # `import` of it raises ImportError, installed or not


def exporter(environ: dict[str, str]) -> SpanExporter:
    made = tracing._exporter(environ)
    made.shutdown()
    return made


def test_http_protobuf_is_the_default() -> None:
    assert isinstance(exporter(ENDPOINT), HttpSpanExporter)
    assert isinstance(exporter(ENDPOINT | {"OTEL_EXPORTER_OTLP_PROTOCOL": " HTTP/Protobuf "}), HttpSpanExporter)


@pytest.mark.usefixtures("grpc_installed")
def test_grpc_makes_the_grpc_exporter() -> None:
    assert isinstance(exporter(ENDPOINT | {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}), GrpcSpanExporter)
    assert isinstance(exporter(ENDPOINT | {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}), GrpcSpanExporter)
    provider = tracing.tracer_provider("ingest", ENDPOINT | {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert provider is not None
    provider.shutdown()


@pytest.mark.usefixtures("grpc_installed")
def test_the_traces_own_variable_wins() -> None:
    """As the OTel spec says: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL over OTEL_EXPORTER_OTLP_PROTOCOL."""
    both = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}
    assert isinstance(exporter(ENDPOINT | both), GrpcSpanExporter)
    both = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}
    assert isinstance(exporter(ENDPOINT | both), HttpSpanExporter)
    # Set but empty is not set.
    assert isinstance(
        exporter(ENDPOINT | {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": " "}),
        GrpcSpanExporter,
    )


def refusal(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """What ``configure`` says as it refuses ``environ``: one line on stderr, exit 78 as for any setting."""
    monkeypatch.setattr(tracing, "_configured", False)
    with pytest.raises(SystemExit) as exit_info:
        tracing.configure("ingest", environ)
    assert exit_info.value.code == EXIT_CONFIG
    assert not tracing._configured
    said = capsys.readouterr()
    assert said.out == ""
    [line] = said.err.splitlines()
    assert line.startswith("error: ")
    return line


@pytest.mark.usefixtures("grpc_missing")
def test_grpc_without_its_package_is_refused_at_start_saying_what_to_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refusal(ENDPOINT | {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, monkeypatch, capsys)
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in line
    assert "http/protobuf" in line
    assert "opentelemetry-exporter-otlp-proto-grpc" in line
    line = refusal(ENDPOINT | {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, monkeypatch, capsys)
    assert "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc" in line
    with pytest.raises(tracing.UnusableExporter):
        tracing.tracer_provider("ingest", ENDPOINT | {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


@pytest.mark.parametrize("protocol", ["http/json", "thrift", "grpc/protobuf"])
def test_any_other_protocol_is_refused_at_start(
    protocol: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refusal(ENDPOINT | {"OTEL_EXPORTER_OTLP_PROTOCOL": protocol}, monkeypatch, capsys)
    assert f"OTEL_EXPORTER_OTLP_PROTOCOL='{protocol}'" in line
    assert "http/protobuf" in line
    assert "grpc" in line


def test_the_protocol_matters_only_to_an_otlp_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracing off, or the console exporter: a protocol variable left in the environment is not a reason to stop."""
    monkeypatch.setattr(tracing, "_configured", False)
    tracing.configure("ingest", {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})  # no endpoint: tracing is off
    assert not tracing._configured
    console = {"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
    provider = tracing.tracer_provider("ingest", console)
    assert provider is not None
    provider.shutdown()


def test_a_service_refuses_an_unusable_exporter_before_it_waits_for_kafka(tmp_path: Path) -> None:
    """Found when the app was built, the refusal came after the Kafka wait (a minute with Kafka away), not at start."""
    import subprocess
    import sys
    import time

    from newsflow_cli.local_kafka import free_port

    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # nothing answers: the wait would be a minute
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/n.db",
        "HEALTH_PORT": str(free_port()),
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "bogus",
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "newsflow_ingest"], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 78, done.stderr[-2000:]
    assert "OTEL_EXPORTER_OTLP_PROTOCOL='bogus'" in done.stderr
    assert "does not answer" not in done.stderr
    assert time.monotonic() - started < 30
