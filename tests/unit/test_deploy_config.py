"""docker-compose.yml and the Kubernetes manifests name the same topics, env vars and services as the code."""

from __future__ import annotations

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
    config = list(yaml.safe_load_all((ROOT / "deploy/k8s/config.yaml").read_text()))
    shared = set(config[0]["data"]) | set(config[1]["stringData"])
    assert shared <= env_names(ServiceSettings) | {"STORAGE_API_TOKEN"}
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
