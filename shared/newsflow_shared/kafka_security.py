"""How Newsflow authenticates to Kafka and encrypts the connection: the settings and FastStream's security object.

Managed Kafka services ask for TLS and a SASL login (or a client certificate). The
``KAFKA_SECURITY_*``, ``KAFKA_SASL_*`` and ``KAFKA_SSL_*`` variables describe that once;
:func:`security_for` turns them into FastStream's own security object, and
:mod:`newsflow_shared.kafka_clients` hands the very same options to the plain
aiokafka clients of the CLI, so a service and ``newsflow push`` can never disagree::

    KAFKA_SECURITY_PROTOCOL=SASL_SSL KAFKA_SASL_MECHANISM=SCRAM-SHA-512 \\
    KAFKA_SASL_USERNAME=newsflow KAFKA_SASL_PASSWORD_FILE=/run/secrets/kafka-password \\
    KAFKA_SSL_CA_FILE=/etc/kafka/ca.pem newsflow push samples/
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import KafkaSecurityError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_SASL_CLASSES: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
    "PLAIN": SASLPlaintext,
    "SCRAM-SHA-256": SASLScram256,
    "SCRAM-SHA-512": SASLScram512,
}


class KafkaSecuritySettings(BaseSettings):
    """The Kafka login and TLS settings; a mixin of every process's settings, the CLI's included."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (a login over TLS)."
    )
    kafka_sasl_mechanism: SaslMechanism = Field(default="PLAIN", description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.")
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = Field(
        default=None, description="A file holding the SASL password (a mounted Kubernetes Secret); read at start."
    )
    kafka_ssl_ca_file: Path | None = Field(
        default=None, description="PEM CA certificates to trust; unset: the system's trusted CAs."
    )
    kafka_ssl_cert_file: Path | None = Field(default=None, description="PEM client certificate, for mutual TLS.")
    kafka_ssl_key_file: Path | None = Field(default=None, description="PEM private key of the client certificate.")
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = Field(
        default=True, description="Check that the broker's certificate names the host connected to."
    )

    @field_validator(
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_sasl_password_file",
        "kafka_ssl_ca_file",
        "kafka_ssl_cert_file",
        "kafka_ssl_key_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``KAFKA_SSL_CA_FILE=""`` (a template's empty value) was the path ".", a folder, and TLS failed on it."""
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _consistent_security(self) -> KafkaSecuritySettings:
        # A login or TLS file given to a protocol that uses neither was ignored: the client connected without it.
        protocol = self.kafka_security_protocol
        login = [
            name
            for name in ("kafka_sasl_username", "kafka_sasl_password", "kafka_sasl_password_file")
            if getattr(self, name) is not None
        ]
        if login and not protocol.startswith("SASL_"):
            raise ValueError(
                f"{', '.join(name.upper() for name in login)} set, but KAFKA_SECURITY_PROTOCOL={protocol} sends no "
                "login: use SASL_SSL (or SASL_PLAINTEXT), or unset them"
            )
        tls = [
            name
            for name in ("kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file")
            if getattr(self, name) is not None
        ]
        if tls and not self.kafka_uses_tls:
            raise ValueError(
                f"{', '.join(name.upper() for name in tls)} set, but KAFKA_SECURITY_PROTOCOL={protocol} uses no TLS: "
                "use SSL or SASL_SSL, or unset them"
            )
        if self.kafka_security_protocol.startswith("SASL_"):
            if not self.kafka_sasl_username:
                raise ValueError(f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs KAFKA_SASL_USERNAME")
            if (self.kafka_sasl_password is None) == (self.kafka_sasl_password_file is None):
                raise ValueError(
                    f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs exactly one of "
                    "KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE"
                )
        if (self.kafka_ssl_cert_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError("mutual TLS needs both KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE")
        return self

    @property
    def kafka_uses_tls(self) -> bool:
        return self.kafka_security_protocol in {"SSL", "SASL_SSL"}

    def kafka_sasl_secret(self) -> str:
        """The SASL password, from KAFKA_SASL_PASSWORD or else read (trailing newline dropped) from its file."""
        if self.kafka_sasl_password is not None:
            return self.kafka_sasl_password.get_secret_value()
        if self.kafka_sasl_password_file is None:
            raise KafkaSecurityError("no SASL password: set KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE")
        try:
            return self.kafka_sasl_password_file.read_text().rstrip("\r\n")
        except OSError as error:
            raise KafkaSecurityError(
                f"KAFKA_SASL_PASSWORD_FILE {self.kafka_sasl_password_file} cannot be read: {error.strerror}"
            ) from error


def ssl_context(settings: KafkaSecuritySettings) -> ssl.SSLContext:
    """A client TLS context: the broker's certificate is always verified; its host name unless switched off."""
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(settings.kafka_ssl_ca_file) if settings.kafka_ssl_ca_file else None
        )
    except (OSError, ssl.SSLError) as error:
        raise KafkaSecurityError(f"the TLS files cannot be used ({error}); check KAFKA_SSL_CA_FILE") from error
    context.check_hostname = settings.kafka_ssl_check_hostname
    if settings.kafka_ssl_cert_file is not None and settings.kafka_ssl_key_file is not None:
        key_password = settings.kafka_ssl_key_password
        try:
            context.load_cert_chain(
                settings.kafka_ssl_cert_file,
                settings.kafka_ssl_key_file,
                password=key_password.get_secret_value() if key_password else None,
            )
        except (OSError, ssl.SSLError) as error:
            files = "KAFKA_SSL_CERT_FILE, KAFKA_SSL_KEY_FILE, KAFKA_SSL_KEY_PASSWORD"
            raise KafkaSecurityError(f"the TLS files cannot be used ({error}); check {files}") from error
    return context


def security_for(settings: KafkaSecuritySettings) -> BaseSecurity | None:
    """FastStream's security object for these settings; ``None`` for PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings) if settings.kafka_uses_tls else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    sasl = _SASL_CLASSES[settings.kafka_sasl_mechanism]
    assert settings.kafka_sasl_username is not None, "the settings validator requires it"
    return sasl(
        settings.kafka_sasl_username,
        settings.kafka_sasl_secret(),
        ssl_context=context,
        use_ssl=protocol == "SASL_SSL",
    )
