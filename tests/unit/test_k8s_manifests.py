"""deploy/k8s is valid for a current Kubernetes and for KEDA and the Prometheus Operator, and production grade:
restricted Pod Security, autoscaling on lag, disruption budgets, images set in one place, alerts on real metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import promql_parser
import pytest
import yaml

from newsflow_cli.supervisor import SERVICES
from newsflow_shared import ServiceSettings
from newsflow_shared.kafka_clients import TOPICS_TIMEOUT
from newsflow_shared.metrics import StageMetrics

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy/k8s"
KUBERNETES_VERSION = "1.35.0"
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject-v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "prometheus-operator-servicemonitor-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheus-operator-prometheusrule-v1.json",
}
INPUT_TOPIC_ENV = {
    "ingest": "TOPIC_RAW",
    "cleanup": "TOPIC_INGESTED",
    "classify": "TOPIC_CLEAN",
    "storage": "TOPIC_ENRICHED",
}


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted([*K8S.glob("*.yaml"), *K8S.glob("monitoring/*.yaml")]):
        if path.name != "kustomization.yaml":
            found += [(str(path.relative_to(ROOT)), doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == kind}


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    return json.loads((ROOT / "deploy/schemas" / CRD_SCHEMAS[(api_version, kind)]).read_text())["openAPIV3Schema"]


def validate_custom(doc: dict[str, Any]) -> None:
    """A custom resource against its CRD's schema. OpenAPI v3 schemas are JSON Schema draft 4/5 with extensions
    (draft 7 reads them the same); the schema itself is not checked: its Go regular expressions are not Python's."""
    jsonschema.Draft7Validator(crd_schema(doc["apiVersion"], doc["kind"])).validate(doc)


@pytest.mark.parametrize(("path", "doc"), manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_every_manifest_is_valid(path: str, doc: dict[str, Any]) -> None:
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SCHEMAS:
        validate_custom(doc)
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_validation_catches_mistakes() -> None:
    """The validators reject what a typo makes: the test above would catch it."""
    scaled = next(iter(of_kind("ScaledObject").values()))
    broken = {**scaled, "spec": {**scaled["spec"], "maxReplicaCount": "six"}}
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(broken)
    deployment = of_kind("Deployment")["newsflow-ingest"]
    typo = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_file_and_sets_every_image() -> None:
    for folder in (K8S, K8S / "monitoring"):
        listed = set(yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"])
        examples = {p.name for p in folder.glob("*.example.yaml")}
        assert listed == {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"} - examples
    images = {i["name"]: i for i in yaml.safe_load((K8S / "kustomization.yaml").read_text())["images"]}
    used = {c["image"] for pod in pod_specs().values() for c in pod["containers"]}
    assert used == {f"newsflow-{name}" for name in SERVICES}
    for name in used:  # registry and tag come from the kustomization alone
        assert ":" not in name
        assert {"newName", "newTag"} <= set(images[name])


def test_no_apply_puts_placeholder_secrets_back() -> None:
    """The Secrets with "change-me" were resources: every `kubectl apply -k` after an image bump overwrote the real
    ones, and storage stopped on a 9-character token. They are examples now, and every one a pod reads is there."""
    applied = [
        doc
        for folder in (K8S, K8S / "kafka-sasl", K8S / "monitoring", K8S / "network-policy")
        for name in yaml.safe_load((folder / "kustomization.yaml").read_text()).get("resources", [])
        for doc in yaml.safe_load_all((folder / name).read_text())
        if doc
    ]
    assert [doc["metadata"]["name"] for doc in applied if doc["kind"] == "Secret"] == []
    examples = {
        doc["metadata"]["name"]: doc
        for path in (K8S / "secrets.example.yaml", K8S / "kafka-sasl/secrets.example.yaml")
        for doc in yaml.safe_load_all(path.read_text())
    }
    for secret in examples.values():
        kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
        assert secret["metadata"]["namespace"] == "newsflow"
    read = {
        ref["secretRef"]["name"]
        for pod in pod_specs().values()
        for c in pod["containers"]
        for ref in c.get("envFrom", [])
        if "secretRef" in ref
    }
    read |= {
        item["valueFrom"]["secretKeyRef"]["name"]
        for pod in pod_specs().values()
        for c in pod["containers"]
        for item in c.get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    assert read == {"newsflow-secrets", "newsflow-api-token"}
    assert read <= set(examples)


def pod_specs() -> dict[str, dict[str, Any]]:
    pods = {name: d["spec"]["template"]["spec"] for name, d in of_kind("Deployment").items()}
    pods |= {name: d["spec"]["template"]["spec"] for name, d in of_kind("Job").items()}
    return pods


def test_every_pod_meets_the_restricted_pod_security_standard() -> None:
    [namespace] = of_kind("Namespace").values()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert set(pod_specs()) == {f"newsflow-{name}" for name in SERVICES} | {"newsflow-topic-init"}
    for name, pod in pod_specs().items():
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            c = container["securityContext"]
            assert c["allowPrivilegeEscalation"] is False, name
            assert c["capabilities"]["drop"] == ["ALL"], name
            assert c.get("seccompProfile", security["seccompProfile"]) == {"type": "RuntimeDefault"}
            assert c["readOnlyRootFilesystem"] is True, name
            assert "limits" in container["resources"], name


def test_each_stage_scales_on_its_own_lag_up_to_the_partitions() -> None:
    partitions = int(of_kind("ConfigMap")["newsflow-config"]["data"]["TOPIC_PARTITIONS"])
    scaled = of_kind("ScaledObject")
    defaults = ServiceSettings()
    assert set(scaled) == {f"newsflow-{name}" for name in SERVICES}
    for name in SERVICES:
        spec = scaled[f"newsflow-{name}"]["spec"]
        assert spec["scaleTargetRef"]["name"] in of_kind("Deployment")
        assert spec["maxReplicaCount"] == partitions
        [trigger] = spec["triggers"]
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == defaults.group_id(name)
        assert trigger["metadata"]["topicFromEnv"] == INPUT_TOPIC_ENV[name]
        assert trigger["metadata"]["bootstrapServersFromEnv"] == "KAFKA_BOOTSTRAP_SERVERS"
        # The ScaledObject owns the replica count: applying the Deployment again must not reset it.
        assert "replicas" not in of_kind("Deployment")[f"newsflow-{name}"]["spec"]


def test_budgets_probes_threads_and_scraping() -> None:
    budgets = of_kind("PodDisruptionBudget")
    shutdown = float(yaml.safe_load((K8S / "config.yaml").read_text())["data"]["SHUTDOWN_TIMEOUT_S"])
    for name, deployment in of_kind("Deployment").items():
        # The replica uses the grace period to finish its batch, and exits before Kubernetes kills it.
        assert shutdown + 3 <= deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] <= shutdown + 10
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert budgets[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()
        # Unready in an outage of Kafka or the database, replicas would otherwise hold every node drain.
        assert budgets[name]["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        # Storage's Service carries its API, which needs only the database.
        ready = "/ready/api" if name.endswith("storage") else "/ready"
        assert container["readinessProbe"]["httpGet"]["path"] == ready
        startup = container["startupProbe"]
        # Start-up waits for Kafka (60 s), the topic job's topics (TOPICS_TIMEOUT) and the database (120 s; classify
        # loads its model instead): the probe must not kill a replica that is still waiting as it should.
        waits = 60 + TOPICS_TIMEOUT + (30 if name.endswith("classify") else 120)
        assert startup["periodSeconds"] * startup["failureThreshold"] >= waits
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        port = container["ports"][0]["containerPort"]
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == "/metrics"
        [spread] = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert spread["labelSelector"]["matchLabels"].items() <= labels.items()
    # A Job's template is immutable: a finished topic-init must go, or the next apply with a new image fails.
    assert of_kind("Job")["newsflow-topic-init"]["spec"]["ttlSecondsAfterFinished"] > 0
    [classify] = of_kind("Deployment")["newsflow-classify"]["spec"]["template"]["spec"]["containers"]
    # Classify uses no database: it is not given DATABASE_URL and its password.
    assert {"secretRef": {"name": "newsflow-secrets"}} not in classify["envFrom"]
    [threads] = [e for e in classify["env"] if e["name"] == "CLASSIFY_THREADS"]
    assert threads["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu"
    assert classify["resources"]["requests"]["cpu"] == classify["resources"]["limits"]["cpu"]  # the threads' CPUs
    [storage] = of_kind("Deployment")["newsflow-storage"]["spec"]["template"]["spec"]["containers"]
    assert storage["lifecycle"]["preStop"]["exec"]["command"][0] == "python"  # in the image; `sleep` may not be
    scraped = {
        s["metadata"]["name"] for s in of_kind("Service").values() if s["metadata"]["labels"].get("newsflow.io/metrics")
    }
    assert len(scraped) == len(SERVICES)
    [monitor] = of_kind("ServiceMonitor").values()
    assert monitor["spec"]["selector"]["matchLabels"] == {"newsflow.io/metrics": "true"}


def test_alerts_use_metrics_the_stages_serve() -> None:
    served = {m.name for m in StageMetrics("ingest").registry.collect()}
    [rules] = of_kind("PrometheusRule").values()
    alerts = {r["alert"]: r["expr"] for group in rules["spec"]["groups"] for r in group["rules"]}
    assert {"NewsflowStageStuck", "NewsflowDeadLetterRate", "NewsflowLagGrowing"} <= set(alerts)
    # A stage that is down serves no metrics: those two read Prometheus' and kube-state-metrics' own series.
    outside = {"NewsflowStageDown": "up{", "NewsflowStageRestarting": "kube_pod_container_status_restarts_total{"}
    for alert, expr in alerts.items():
        used = {re.sub(r"_total$", "", name) for name in re.findall(r"newsflow_[a-z_]+", expr)}
        if alert in outside:
            assert outside[alert] in expr, alert
            assert not used, alert
            continue
        assert used, alert
        assert used <= served, f"{alert} uses {used - served}"


def test_every_alert_is_promql_prometheus_can_read() -> None:
    [rules] = of_kind("PrometheusRule").values()
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            promql_parser.parse(rule["expr"])  # raises with what is wrong, e.g. "unclosed left parenthesis"
    with pytest.raises(Exception, match="unclosed left parenthesis"):
        promql_parser.parse("sum by (stage) (up ==")


def test_the_down_alert_names_every_stage_and_the_pods_it_scrapes() -> None:
    """Each stage has its vector(0), and the pods' regular expression covers every stage's pods and no other."""
    [rules] = of_kind("PrometheusRule").values()
    down = next(r["expr"] for g in rules["spec"]["groups"] for r in g["rules"] if r["alert"] == "NewsflowStageDown")
    assert set(re.findall(r'label_replace\(vector\(0\), "stage", "([a-z]+)"', down)) == set(SERVICES)
    # The pods' names, as both a ServiceMonitor and annotation-based scraping label them (`service` is the
    # ServiceMonitor's alone: without the operator that rule saw every stage down, for good).
    pattern = re.search(r'up\{pod=~"([^"]+)"\}', down).group(1)  # type: ignore[union-attr]
    for name, deployment in of_kind("Deployment").items():
        pod = f"{name}-5d8f7c9b4-x2x7q"  # a Deployment's pods: its name, the ReplicaSet's hash, their own
        assert re.fullmatch(pattern, pod), pod
        assert re.fullmatch(r"newsflow-([a-z]+)-.+", pod).group(1) in SERVICES  # type: ignore[union-attr]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
    assert not re.fullmatch(pattern, "newsflow-topic-init-abcde")


def test_grafana_dashboard_charts_metrics_the_stages_serve() -> None:
    served = {m.name for m in StageMetrics("ingest").registry.collect()}
    dashboard = json.loads((ROOT / "deploy/grafana/newsflow-dashboard.json").read_text())
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"  # Grafana asks for the data source on import
    charted = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        for target in panel["targets"]:
            names = {
                re.sub(r"_(total|bucket|sum|count)$", "", n) for n in re.findall(r"newsflow_[a-z_]+", target["expr"])
            }
            assert names, panel["title"]
            assert names <= served, f"{panel['title']}: {names - served}"
            charted |= names
    assert charted == served, f"metrics on no panel: {served - charted}"


def _add(doc: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON patch "add" operations kustomize applies (RFC 6902; "-" appends), to a copy of ``doc``."""
    doc = json.loads(json.dumps(doc))
    for operation in operations:
        assert operation["op"] == "add", operation
        *parents, last = operation["path"].strip("/").split("/")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), operation["value"])
        else:
            node[last] = operation["value"]
    return doc


def test_the_sasl_component_logs_every_client_in_and_its_manifests_are_valid() -> None:
    """kafka-sasl/: KEDA's scaler could not read the lag on a Kafka that wants a login, and nothing mounted the
    files KAFKA_SSL_CA_FILE and KAFKA_SASL_PASSWORD_FILE name."""
    folder = K8S / "kafka-sasl"
    component = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    added = [doc for name in component["resources"] for doc in yaml.safe_load_all((folder / name).read_text())]
    examples = yaml.safe_load_all((folder / "secrets.example.yaml").read_text())
    secrets = {doc["metadata"]["name"]: doc for doc in examples if doc["kind"] == "Secret"}
    for secret in secrets.values():
        kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
    [auth] = [doc for doc in added if doc["kind"] == "TriggerAuthentication"]
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["key"] in secrets[ref["name"]]["stringData"], ref
    assert {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]} >= {"sasl", "username", "password", "tls"}

    patches = {patch["target"]["kind"]: patch for patch in component["patches"]}
    scaled_patch = yaml.safe_load(patches["ScaledObject"]["patch"])
    for scaled in of_kind("ScaledObject").values():
        patched = _add(scaled, scaled_patch)
        validate_custom(patched)
        assert patched["spec"]["triggers"][0]["authenticationRef"] == {"name": auth["metadata"]["name"]}
    for kind in ("Deployment", "Job"):
        operations = yaml.safe_load((folder / patches[kind]["path"]).read_text())
        for workload in of_kind(kind).values():
            patched = _add(workload, operations)
            kubernetes_validate.validate(patched, KUBERNETES_VERSION, strict=True)
            [container] = patched["spec"]["template"]["spec"]["containers"]
            env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
            [mount] = [m for m in container["volumeMounts"] if m["name"] == "kafka-client"]
            [volume] = [v for v in patched["spec"]["template"]["spec"]["volumes"] if v["name"] == "kafka-client"]
            files = set(secrets[volume["secret"]["secretName"]]["stringData"])
            for variable in ("KAFKA_SSL_CA_FILE", "KAFKA_SASL_PASSWORD_FILE"):
                assert variable.lower() in ServiceSettings.model_fields, variable
                assert env[variable].removeprefix(mount["mountPath"] + "/") in files, variable
            # The settings the container starts with (its env over the ConfigMap's, and the username the README asks
            # for in config.yaml) are taken: with config.yaml's PLAINTEXT, the files stopped every pod (exit 78).
            config = yaml.safe_load((K8S / "config.yaml").read_text())["data"]
            started = {**config, "KAFKA_SASL_USERNAME": "newsflow", **env}
            settings = ServiceSettings(**{name.lower(): value for name, value in started.items()})
            assert settings.kafka_security_protocol == "SASL_SSL"


def test_the_network_policy_component_lets_in_only_the_api_and_prometheus() -> None:
    """network-policy/: every pod closed but for storage's API (any client) and the stages' /metrics (Prometheus'
    namespace); each policy names pods that exist and a port their container has."""
    folder = K8S / "network-policy"
    component = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    policies = {
        doc["metadata"]["name"]: doc
        for name in component["resources"]
        for doc in yaml.safe_load_all((folder / name).read_text())
    }
    for policy in policies.values():
        kubernetes_validate.validate(policy, KUBERNETES_VERSION, strict=True)
    deny = policies["newsflow-default-deny-ingress"]["spec"]
    # Newsflow's pods, all of them, and no other: a PostgreSQL in the same namespace must still take connections.
    assert deny == {
        "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "newsflow"}},
        "policyTypes": ["Ingress"],
    }
    for workload in [*of_kind("Deployment").values(), *of_kind("Job").values()]:
        assert workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "newsflow"

    def pods(selector: dict[str, Any]) -> set[str]:
        names = set(selector.get("matchLabels", {}).values())
        for expression in selector.get("matchExpressions", []):
            names |= set(expression["values"])
        return names

    opened = {}
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []):
            for selected in pods(policy["spec"]["podSelector"]):
                opened[selected] = (name, rule)
    assert set(opened) == {f"newsflow-{service}" for service in SERVICES}
    for selected, (_, rule) in opened.items():
        [container] = of_kind("Deployment")[selected]["spec"]["template"]["spec"]["containers"]
        assert {p["port"] for p in rule["ports"]} <= {p["name"] for p in container["ports"]}
        everyone = "from" not in rule
        assert everyone is (selected == "newsflow-storage"), selected  # only the API is open to every client


def test_alerts_and_dashboard_keep_each_namespace_s_pipeline_apart() -> None:
    """A PrometheusRule applies to every series its Prometheus holds: with staging and production scraped by one,
    rules that summed by stage let a healthy staging replica hide a stuck or down production stage."""
    [rules] = of_kind("PrometheusRule").values()
    for group in rules["spec"]["groups"]:
        for rule in group["rules"]:
            groupings = re.findall(r"\b(?:by|on) \(([^)]*)\)", rule["expr"])
            assert groupings, rule["alert"]
            for labels in groupings:
                # `on (stage)` only where a stage has a target in no namespace at all (NewsflowStageDown's vector(0)s)
                assert "namespace" in labels or (labels == "stage" and rule["alert"] == "NewsflowStageDown"), (
                    rule["alert"],
                    labels,
                )
    stuck = next(r["expr"] for g in rules["spec"]["groups"] for r in g["rules"] if r["alert"] == "NewsflowStageStuck")
    assert "instance" in stuck  # per replica: a caught-up sibling kept a per-stage clock fresh
    dashboard = json.loads((ROOT / "deploy/grafana/newsflow-dashboard.json").read_text())
    [variable] = dashboard["templating"]["list"]
    assert variable["name"] == "namespace"
    assert variable["allValue"] == ".*"  # also matches a Compose stack's series, which have no namespace
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names = re.findall(r"newsflow_[a-z_]+(\{[^}]*\})?", target["expr"])
            assert names, target["expr"]
            assert all('namespace=~"$namespace"' in selector for selector in names), target["expr"]
