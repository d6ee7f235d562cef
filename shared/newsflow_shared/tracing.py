"""OpenTelemetry traces across the services, configured only by the standard ``OTEL_*`` variables.

Off by default: spans are recorded and exported only when ``OTEL_TRACES_EXPORTER`` names an exporter
(``otlp`` or ``console``) or ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, and
``OTEL_SDK_DISABLED`` is not ``true``. The SDK itself reads the rest (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, the exporter's endpoint and headers). The OTLP exporter is
the one ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` or else ``OTEL_EXPORTER_OTLP_PROTOCOL`` names: ``http/protobuf`` (the
default) or ``grpc`` where its package is installed; any other is refused at start (:func:`refuse_unusable_exporter`), where it was
once ignored and a collector's gRPC port got only the HTTP exporter's errors.

FastStream's ``KafkaTelemetryMiddleware`` puts the W3C ``traceparent`` in every record's headers. A batch's own
span starts a trace of its own (linked to its records), so to keep one article's hops in one trace each output
is published in the context its own input record carried (:func:`continuing`); a record that carried none (pushed
by a client without tracing) starts its article's trace there, linked to the batch's span.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .logs import say_at_start
from .settings import EXIT_CONFIG

__all__ = [
    "TRACE_CONTEXT_HEADERS",
    "UnusableExporter",
    "configure",
    "continuing",
    "enabled",
    "recording",
    "refuse_unusable_exporter",
    "tracer_provider",
]

# The W3C trace-context headers an output inherits from its input record.
TRACE_CONTEXT_HEADERS = ("traceparent", "tracestate")
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER = trace.get_tracer("newsflow")  # follows the global provider, a no-op until one is set
_configured = False
# The variables naming the OTLP exporter's protocol, the traces' own first (it wins, as the OTel spec says).
PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
DEFAULT_PROTOCOL = "http/protobuf"


class UnusableExporter(ValueError):
    """The ``OTEL_*`` variables ask for an exporter this process cannot make; the message names the variable and
    what to set instead."""


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def recording() -> bool:
    """Whether this process records spans: a tracer provider was set (by :func:`configure`, or by a test).

    Until one is, the global provider is OpenTelemetry's proxy, whose spans only pass on the context they were given.
    """
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def tracer_provider(service: str, environ: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """The provider a service's broker traces with; ``None`` (the global, no-op unless set) when tracing is off.
    Raises :class:`UnusableExporter` when the variables name an exporter protocol this process cannot use."""
    if not enabled(environ):
        return None
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {"service.name": f"newsflow-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(_exporter(environ)))
    return provider


def configure(service: str, environ: Mapping[str, str] = os.environ) -> None:
    """Make the ``OTEL_*``-configured provider the process's global one (a service is one process); nothing when
    tracing is off. FastStream's middleware and :func:`continuing` both trace with the global provider. An exporter
    it cannot make exits (78) saying which variable to change."""
    global _configured
    if _configured:
        return
    refuse_unusable_exporter(environ)
    provider = tracer_provider(service, environ)
    if provider is not None:
        trace.set_tracer_provider(provider)
        _configured = True


def refuse_unusable_exporter(environ: Mapping[str, str] = os.environ) -> None:
    """Exit 78 now, at a service's start, where the variables ask for an exporter this process cannot make: found
    when the app was built, the refusal came only after the waits for Kafka and the database (minutes)."""
    if not enabled(environ):
        return
    try:
        _exporter_type(environ)
    except UnusableExporter as error:  # a setting, as settings are refused: one line and exit 78, not a traceback
        say_at_start(str(error))
        raise SystemExit(EXIT_CONFIG) from None


def _exporter(environ: Mapping[str, str]) -> SpanExporter:
    return _exporter_type(environ)()


def _exporter_type(environ: Mapping[str, str]) -> type[SpanExporter]:
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        return ConsoleSpanExporter
    variable, protocol = _protocol(environ)
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
        except ImportError:  # not in the images: the http one is
            raise UnusableExporter(
                f"{variable}=grpc: this install has no OTLP gRPC exporter (opentelemetry-exporter-otlp-proto-grpc);"
                " set it to http/protobuf with the collector's HTTP endpoint (port 4318), or install that package"
            ) from None
        return GrpcSpanExporter
    raise UnusableExporter(
        f"{variable}={protocol[:80]!r}: not an OTLP protocol Newsflow exports with; set it to http/protobuf (the"
        " default, the collector's port 4318) or grpc (port 4317, with opentelemetry-exporter-otlp-proto-grpc)"
    )


def _protocol(environ: Mapping[str, str]) -> tuple[str, str]:
    """The variable naming the OTLP protocol and what it names, lower case: the traces' own variable where set, else
    the general one, else the default (http/protobuf, as the OTel spec says and as before)."""
    for variable in PROTOCOL_VARIABLES:
        if protocol := environ.get(variable, "").strip().lower():
            return variable, protocol
    return PROTOCOL_VARIABLES[1], DEFAULT_PROTOCOL


@contextlib.contextmanager
def continuing(headers: Mapping[str, str], name: str) -> Iterator[None]:
    """Run the block in the trace context ``headers`` carry: a publish inside it continues that trace. Without
    one, a span ``name`` starts the article's own trace, linked to the batch being handled."""
    if "traceparent" in headers:
        token = context.attach(_PROPAGATOR.extract(dict(headers)))
        try:
            yield
        finally:
            context.detach(token)
        return
    batch = trace.get_current_span().get_span_context()
    links = [trace.Link(batch)] if batch.is_valid else []
    with _TRACER.start_as_current_span(name, context=context.Context(), links=links):
        yield
