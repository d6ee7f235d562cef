"""The Kafka security settings become one FastStream security object, and the same aiokafka options everywhere."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import ValidationError

from newsflow_shared import KafkaSecurityError, ServiceSettings, make_broker, security_for
from newsflow_shared.kafka_clients import connection_options
from newsflow_shared.kafka_security import ssl_context
from tests.integration.tls import Certificates, make_certificates

SASL = {"kafka_sasl_username": "newsflow", "kafka_sasl_password": "s3cret"}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    settings = ServiceSettings(kafka_bootstrap_servers="k1:9092,k2:9092")
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert security_for(settings) is None
    assert connection_options(settings) == {"bootstrap_servers": "k1:9092,k2:9092"}


@pytest.mark.parametrize(
    ("mechanism", "kind"),
    [("PLAIN", SASLPlaintext), ("SCRAM-SHA-256", SASLScram256), ("SCRAM-SHA-512", SASLScram512)],
)
def test_sasl_ssl_gives_faststreams_object_and_the_same_aiokafka_options(
    mechanism: str, kind: type[BaseSecurity], certificates: Certificates
) -> None:
    settings = ServiceSettings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism=mechanism, kafka_ssl_ca_file=certificates.ca, **SASL
    )
    security = security_for(settings)
    assert type(security) is kind
    assert security.use_ssl
    assert security.ssl_context is not None
    assert security.ssl_context.check_hostname
    assert security.ssl_context.verify_mode == ssl.CERT_REQUIRED
    options = connection_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == mechanism
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("newsflow", "s3cret")
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_the_services_broker_carries_the_login() -> None:
    settings = ServiceSettings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-512", **SASL)
    connection = make_broker(settings, "ingest")._connection_kwargs
    assert connection["security_protocol"] == "SASL_PLAINTEXT"
    assert connection["sasl_mechanism"] == "SCRAM-SHA-512"
    assert connection["sasl_plain_password"] == "s3cret"
    assert connection["ssl_context"] is None


def test_settings_come_from_the_environment_and_keep_the_password_out_of_sight(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("from-a-secret\n")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "reader")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD_FILE", str(password_file))
    settings = ServiceSettings()
    assert settings.kafka_sasl_secret() == "from-a-secret"  # the file's trailing newline is not the password's
    assert connection_options(settings)["sasl_plain_password"] == "from-a-secret"
    monkeypatch.delenv("KAFKA_SASL_PASSWORD_FILE")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "hunter2")
    assert "hunter2" not in repr(ServiceSettings())


def test_an_unreadable_password_file_names_the_variable(tmp_path: Path) -> None:
    settings = ServiceSettings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_username="u", kafka_sasl_password_file=tmp_path / "missing"
    )
    with pytest.raises(KafkaSecurityError, match="KAFKA_SASL_PASSWORD_FILE"):
        security_for(settings)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_password": "p"}, "KAFKA_SASL_USERNAME"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u"}, "KAFKA_SASL_PASSWORD"),
        (
            {"kafka_security_protocol": "SASL_SSL", **SASL, "kafka_sasl_password_file": "/run/p"},
            "exactly one of KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE",
        ),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "/c.pem"}, "KAFKA_SSL_KEY_FILE"),
        ({"kafka_security_protocol": "SASL_SSL", **SASL, "kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
        # Ignored before: the client connected without the login or the CA it was given.
        ({"kafka_sasl_username": "u", "kafka_sasl_password": "p"}, "PLAINTEXT sends no login"),
        ({"kafka_security_protocol": "SSL", **SASL}, "KAFKA_SECURITY_PROTOCOL=SSL sends no login"),
        ({"kafka_ssl_ca_file": "/ca.pem"}, "KAFKA_SSL_CA_FILE set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no TLS"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", **SASL, "kafka_ssl_ca_file": "/ca.pem"}, "uses no TLS"),
    ],
)
def test_inconsistent_settings_are_refused_at_start(fields: dict[str, str], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        ServiceSettings(**fields)


def test_mutual_tls_loads_the_client_certificate_and_hostname_checks_can_be_switched_off(
    certificates: Certificates,
) -> None:
    settings = ServiceSettings(
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=certificates.ca,
        kafka_ssl_cert_file=certificates.client_cert,
        kafka_ssl_key_file=certificates.client_key,
        kafka_ssl_check_hostname=False,
    )
    security = security_for(settings)
    assert type(security) is BaseSecurity
    assert security.use_ssl
    context = security.ssl_context
    assert context is not None
    assert not context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED  # the certificate itself is still verified
    assert connection_options(settings)["security_protocol"] == "SSL"


def test_unusable_tls_files_name_the_variables(certificates: Certificates, tmp_path: Path) -> None:
    with pytest.raises(KafkaSecurityError, match="KAFKA_SSL_CA_FILE"):
        ssl_context(ServiceSettings(kafka_security_protocol="SSL", kafka_ssl_ca_file=tmp_path / "nope.pem"))
    with pytest.raises(KafkaSecurityError, match="KAFKA_SSL_KEY_FILE"):
        ssl_context(
            ServiceSettings(
                kafka_security_protocol="SSL",
                kafka_ssl_cert_file=certificates.client_cert,
                kafka_ssl_key_file=certificates.ca,  # a certificate, not a key
            )
        )


def test_a_certificate_for_another_name_is_told_apart_from_an_untrusted_one() -> None:
    from newsflow_shared.kafka_clients import _explain

    settings = ServiceSettings(kafka_security_protocol="SSL")
    mismatch = ssl.SSLCertVerificationError(1, "certificate verify failed")
    mismatch.verify_message = "IP address mismatch, certificate is not valid for '10.0.0.7'."
    explained = _explain(mismatch, "10.0.0.7:9093", settings)
    assert explained is not None
    assert "KAFKA_SSL_CHECK_HOSTNAME=false" in str(explained)
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "unable to get local issuer certificate"
    assert "KAFKA_SSL_CA_FILE" in str(_explain(untrusted, "10.0.0.7:9093", settings))
    assert _explain(ConnectionRefusedError(), "10.0.0.7:9093", settings) is None  # a broker still starting: wait


def test_an_empty_file_setting_is_unset() -> None:
    """A template's empty value was the path ".", and TLS failed on a folder, naming no variable."""
    settings = ServiceSettings(kafka_security_protocol="SSL", kafka_ssl_ca_file="", kafka_ssl_cert_file=" ")
    assert (settings.kafka_ssl_ca_file, settings.kafka_ssl_cert_file) == (None, None)
    blank = ServiceSettings(kafka_sasl_username="", kafka_sasl_password="", kafka_sasl_password_file="")
    assert (blank.kafka_sasl_username, blank.kafka_sasl_password, blank.kafka_sasl_password_file) == (None, None, None)
