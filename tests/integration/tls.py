"""Certificates made for a test, with the openssl command: a CA, the broker's, a client's, and a stranger CA."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA that signed the broker's and the client's certificates
    broker_keystore: Path  # the broker's PKCS#8 key and certificate chain, as Kafka's PEM keystore reads it
    client_cert: Path
    client_key: Path
    stranger_ca: Path  # a CA that signed nothing here: trusting only it must fail the handshake


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _self_signed_ca(folder: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=Newsflow test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip


def _signed(folder: Path, name: str, extensions: str) -> None:
    (folder / f"{name}.ext").write_text(
        "basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n" + extensions
    )
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
        "-subj", f"/CN=newsflow-{name}", cwd=folder,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=folder,
    )  # fmt: skip


def make_certificates(folder: Path) -> Certificates:
    """Everything a SASL_SSL and a mutual-TLS listener on 127.0.0.1 need; the broker's names 127.0.0.1 and localhost."""
    folder.mkdir(parents=True, exist_ok=True)
    _self_signed_ca(folder, "ca")
    _self_signed_ca(folder, "stranger")
    _signed(folder, "broker", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _signed(folder, "client", "extendedKeyUsage=clientAuth\n")
    keystore = folder / "broker-keystore.pem"
    keystore.write_text(
        (folder / "broker.key").read_text() + (folder / "broker.pem").read_text() + (folder / "ca.pem").read_text()
    )
    return Certificates(
        ca=folder / "ca.pem",
        broker_keystore=keystore,
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        stranger_ca=folder / "stranger.pem",
    )
