"""docker-compose.yml and the Kubernetes manifests name the same topics, env vars and services as the code."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from newsflow_classify.settings import ClassifySettings
from newsflow_cleanup.settings import CleanupSettings
from newsflow_cli.supervisor import SERVICES
from newsflow_ingest.settings import IngestSettings
from newsflow_shared import ServiceSettings
from newsflow_storage.settings import StorageSettings

ROOT = Path(__file__).parents[2]
SETTINGS = {
    "ingest": IngestSettings,
    "cleanup": CleanupSettings,
    "classify": ClassifySettings,
    "storage": StorageSettings,
}


def env_names(settings: type[ServiceSettings]) -> set[str]:
    return {name.upper() for name in settings.model_fields}


def test_compose_runs_every_service_with_known_env_vars() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(SERVICES) <= set(services)
    for name in SERVICES:
        env = services[name]["environment"]
        unknown = set(env) - env_names(SETTINGS[name])
        assert not unknown, f"{name} sets env vars no setting reads: {unknown}"
        assert services[name]["build"]["dockerfile"] == f"services/{name}/Dockerfile"
        assert (ROOT / f"services/{name}/Dockerfile").exists()
        assert "ports" not in services[name] or name == "storage"
        # The database's password only where it is used: classify keeps no state (as in deploy/k8s/classify.yaml).
        uses_database = name != "classify"
        assert ("DATABASE_URL" in env) == uses_database, name
        assert ("postgres" in services[name]["depends_on"]) == uses_database, name
    assert "DATABASE_URL" in services["topic-init"]["environment"]  # `newsflow db upgrade`


def test_compose_topics_are_the_defaults() -> None:
    env = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-newsflow-env"]
    defaults = ServiceSettings()
    for field in ServiceSettings.model_fields:
        if field.startswith("topic_") and field.upper() in env and field not in {"topic_partitions"}:
            assert env[field.upper()] == getattr(defaults, field)
    assert {k for k in env if k.startswith("TOPIC_") and k not in {"TOPIC_PARTITIONS"}} == {
        f.upper()
        for f in ServiceSettings.model_fields
        if f.startswith("topic_") and f not in {"topic_partitions", "topic_replication_factor"}
    }


def test_kubernetes_manifests_match() -> None:
    [config] = yaml.safe_load_all((ROOT / "deploy/k8s/config.yaml").read_text())
    secrets = list(yaml.safe_load_all((ROOT / "deploy/k8s/secrets.example.yaml").read_text()))
    shared = set(config["data"]) | set(secrets[0]["stringData"])
    assert shared <= env_names(ServiceSettings)  # what every pod gets: no secret only one service reads
    # The API's token is storage's alone, in a Secret only its Deployment names.
    assert secrets[1]["metadata"]["name"] == "newsflow-api-token"
    assert set(secrets[1]["stringData"]) == {"STORAGE_API_TOKEN"}
    for name in [*SERVICES, "topic-init"]:
        mentions = "newsflow-api-token" in (ROOT / f"deploy/k8s/{name}.yaml").read_text()
        assert mentions == (name == "storage"), name
    for name in SERVICES:
        [deployment, *_] = yaml.safe_load_all((ROOT / f"deploy/k8s/{name}.yaml").read_text())
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        own = {item["name"] for item in container.get("env", [])}
        assert own <= env_names(SETTINGS[name]), f"{name}: {own - env_names(SETTINGS[name])}"
        assert container["image"] == f"newsflow-{name}"  # registry and tag: the kustomization's images
    kustomization = yaml.safe_load((ROOT / "deploy/k8s/kustomization.yaml").read_text())
    assert {f"{name}.yaml" for name in SERVICES} <= set(kustomization["resources"])


def test_readme_documents_every_env_var() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = {name for settings in SETTINGS.values() for name in env_names(settings) if f"`{name}`" not in readme}
    assert not missing, f"README lacks: {sorted(missing)}"


def compose_services() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_compose_runs_our_containers_locked_down_with_probes() -> None:
    services = compose_services()
    for name in [*SERVICES, "topic-init"]:
        service = services[name]
        assert service["read_only"] is True, name
        # Classify's loads the kernels torch.compile writes there: Docker's default tmpfs is noexec.
        assert service["tmpfs"] == (["/tmp:exec"] if name == "classify" else ["/tmp"]), name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    for name in SERVICES:
        # The healthcheck asks /health on the port the service's own setting names.
        port_var = "STORAGE_API_PORT" if name == "storage" else "HEALTH_PORT"
        assert port_var.lower() in SETTINGS[name].model_fields
        test = services[name]["healthcheck"]["test"]
        assert test == ["CMD", "python", "-m", "newsflow_probe", *([port_var] if name == "storage" else [])], name
        # Exec form, no argument with a space: Podman's Docker API splits arguments at their spaces.
        assert not any(" " in argument for argument in test), name
        assert port_var in services[name]["environment"], name
    for name in ("kafka", "postgres"):
        assert services[name]["cap_drop"] == ["ALL"], name
        # After a crash or a reboot the services come back and wait for these: they must come back too.
        assert services[name]["restart"] == "unless-stopped", name
    # Kafka's check is the bash probe of the listener the services use, mounted from the repository: Kafka's own
    # tool starts a JVM (~1.4 s of CPU) every time.
    kafka = services["kafka"]
    test = kafka["healthcheck"]["test"]
    assert test[:2] == ["CMD", "bash"]
    assert not any(" " in argument for argument in test)
    mounted = dict(volume.split(":")[:2] for volume in kafka["volumes"] if volume.startswith("./"))
    assert mounted == {"./deploy/compose/kafka-health.sh": test[2]}
    assert (ROOT / "deploy/compose/kafka-health.sh").exists()
    internal = kafka["environment"]["KAFKA_LISTENERS"].split(",")[0]
    assert internal == f"INTERNAL://:{test[3]}"


def test_compose_publishes_on_loopback_only_and_guards_the_api() -> None:
    services = compose_services()
    published = [(name, port) for name, service in services.items() for port in service.get("ports", [])]
    assert published, "storage's API and Kafka's external listener are published"
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), (name, port)
    # ${STORAGE_API_TOKEN:?...}: Compose refuses to start the API without a token.
    assert services["storage"]["environment"]["STORAGE_API_TOKEN"].startswith("${STORAGE_API_TOKEN:?")


# The Kafka security settings, under the names agreed in issue #13 for ServiceSettings.
KAFKA_SECURITY_ENV = {
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SASL_PASSWORD_FILE",
    "KAFKA_SSL_CA_FILE",
    "KAFKA_SSL_CERT_FILE",
    "KAFKA_SSL_KEY_FILE",
    "KAFKA_SSL_CHECK_HOSTNAME",
}


def test_secure_override_talks_sasl_ssl_to_the_broker() -> None:
    secure = yaml.safe_load((ROOT / "deploy/compose/secure.yml").read_text())
    base = compose_services()
    assert set(secure["services"]) <= set(base)
    for name in [*SERVICES, "topic-init"]:
        env = secure["services"][name]["environment"]
        assert set(env) <= KAFKA_SECURITY_ENV | {"KAFKA_BOOTSTRAP_SERVERS"}, name
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert (
            env["KAFKA_SASL_MECHANISM"] in secure["services"]["kafka"]["environment"]["KAFKA_SASL_ENABLED_MECHANISMS"]
        )
        # The password and CA come as Compose secrets (files), never as a value in the environment.
        assert "KAFKA_SASL_PASSWORD" not in env
        for key, secret in (("KAFKA_SASL_PASSWORD_FILE", "kafka-password"), ("KAFKA_SSL_CA_FILE", "kafka-ca")):
            assert env[key] == f"/run/secrets/{secret}"
            assert secret in secure["services"][name]["secrets"]
        assert (
            env["KAFKA_BOOTSTRAP_SERVERS"]
            == base["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")[0].split("://")[1]
        )
    listeners = dict(
        item.split(":")
        for item in secure["services"]["kafka"]["environment"]["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert listeners == {"INTERNAL": "SASL_SSL", "EXTERNAL": "SASL_SSL", "CONTROLLER": "PLAINTEXT"}
    assert "--command-config" in secure["services"]["kafka"]["healthcheck"]["test"][1]
    assert (ROOT / "deploy/compose/secure-certs.sh").exists()


def test_secure_override_sets_only_known_settings() -> None:
    secure = yaml.safe_load((ROOT / "deploy/compose/secure.yml").read_text())
    for name in SERVICES:
        unknown = set(secure["services"][name]["environment"]) - env_names(SETTINGS[name])
        assert not unknown, f"{name} sets env vars no setting reads: {unknown}"


def test_secure_certs_makes_a_pem_keystore_and_converts_an_older_pkcs12_one(tmp_path: Path) -> None:
    """secure.yml names broker/kafka-keystore.pem: a new folder gets one whose key matches its certificate, and a
    folder an earlier version made (broker/kafka.p12 and its password) is converted, keeping the CA and passwords."""
    script = ROOT / "deploy/compose/secure-certs.sh"

    def run(*args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    fresh = tmp_path / "fresh"
    run(str(script), str(fresh))
    keystore = fresh / "broker/kafka-keystore.pem"
    assert keystore.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert run("openssl", "pkey", "-in", str(keystore), "-pubout") == run(
        "openssl", "x509", "-in", str(keystore), "-noout", "-pubkey"
    )
    assert not (fresh / "broker/kafka.p12").exists()

    # The earlier layout: the same folder with the keystore as PKCS12 and its password beside it.
    old = tmp_path / "old"
    run("cp", "-r", str(fresh), str(old))
    broker = old / "broker"
    (broker / "keystore.password").write_text("old-keystore-password")
    run("openssl", "pkcs12", "-export", "-in", str(broker / "kafka-keystore.pem"), "-passout",
        "file:" + str(broker / "keystore.password"), "-out", str(broker / "kafka.p12"))  # fmt: skip
    (broker / "kafka-keystore.pem").unlink()
    kept = {name: (old / name).read_bytes() for name in ("ca.pem", "ca.key", "newsflow.password", "admin.password")}
    run(str(script), str(old))
    assert {name: (old / name).read_bytes() for name in kept} == kept
    assert not (broker / "kafka.p12").exists()
    assert not (broker / "keystore.password").exists()
    converted = (broker / "kafka-keystore.pem").read_text()
    assert converted.startswith("-----BEGIN PRIVATE KEY-----")
    assert run("openssl", "pkey", "-in", str(broker / "kafka-keystore.pem")) == run(
        "openssl", "pkey", "-in", str(keystore)
    )
