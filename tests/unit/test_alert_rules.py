"""The alerts evaluated, not only parsed: Prometheus' own rule tester (promtool) runs
tests/alerts/newsflow-alerts.test.yml against deploy/k8s/monitoring/alerts.yaml's rules, on series shaped as the
stages serve them. A rule that reads the wrong label or threshold fires for the wrong namespace, stage or time there.

promtool comes from Debian's prometheus package, which deploy/local/prometheus.sh unpacks into the cache on the first
run (nothing is installed or started).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from newsflow_shared.metrics import StageMetrics

ROOT = Path(__file__).parents[2]
ALERTS = ROOT / "deploy/k8s/monitoring/alerts.yaml"
ALERT_TESTS = ROOT / "tests/alerts/newsflow-alerts.test.yml"
# Labels Prometheus adds to what it scrapes (a ServiceMonitor's or annotation-based scraping's relabelling).
TARGET_LABELS = {"namespace", "instance", "pod", "job", "service", "container", "endpoint"}
# Series the alerts read from Prometheus itself and from kube-state-metrics, with the labels those give them.
OUTSIDE_SERIES = {"up": TARGET_LABELS, "kube_pod_container_status_restarts_total": {"namespace", "pod", "container"}}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = subprocess.run(
        [str(ROOT / "deploy/local/prometheus.sh"), "promtool"], capture_output=True, text=True, timeout=300, check=False
    )
    assert found.returncode == 0, f"no promtool for the alerts' tests: {found.stderr.strip()}"
    return found.stdout.strip()


def run_alert_tests(promtool: str, folder: Path, rules: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """promtool's unit tests of ``rules`` (a Prometheus rule file's content), in ``folder``."""
    (folder / "newsflow.rules.yml").write_text(yaml.safe_dump(rules))
    shutil.copy(ALERT_TESTS, folder / ALERT_TESTS.name)
    return subprocess.run(
        [promtool, "test", "rules", ALERT_TESTS.name],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def the_rules() -> dict[str, Any]:
    """alerts.yaml's ``spec``: the plain rule file the README says to take without the Prometheus Operator."""
    return yaml.safe_load(ALERTS.read_text())["spec"]


def test_promtool_finds_the_rules_valid(promtool: str, tmp_path: Path) -> None:
    (tmp_path / "newsflow.rules.yml").write_text(yaml.safe_dump(the_rules()))
    checked = subprocess.run(
        [promtool, "check", "rules", "newsflow.rules.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in the_rules()['groups'])} rules found" in checked.stdout


def test_each_alert_fires_where_and_when_it_should(promtool: str, tmp_path: Path) -> None:
    result = run_alert_tests(promtool, tmp_path, the_rules())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("alert", "change"),
    [
        # Read per stage instead of per replica: the caught-up sibling hides the stuck one.
        ("NewsflowStageStuck", lambda expr: expr.replace("namespace, instance, stage", "namespace, stage")),
        # An hour without progress instead of ten minutes.
        ("NewsflowStageStuck", lambda expr: expr.replace("> 600", "> 3600")),
        # One stage's targets summed across namespaces: staging's healthy storage hides production's.
        ("NewsflowStageDown", lambda expr: expr.replace("sum by (namespace, stage)", "sum by (stage)")),
        ("NewsflowDeadLetterRate", lambda expr: expr.replace("> 0.05", "> 0.1")),
    ],
    ids=["per-stage", "threshold", "across-namespaces", "rate"],
)
def test_the_tests_fail_a_rule_that_misfires(promtool: str, tmp_path: Path, alert: str, change: Any) -> None:
    """The scenarios are strict enough to catch the mistakes the rules' comments warn of."""
    rules = the_rules()
    [rule] = [r for group in rules["groups"] for r in group["rules"] if r["alert"] == alert]
    changed = change(rule["expr"])
    assert changed != rule["expr"]
    rule["expr"] = changed
    result = run_alert_tests(promtool, tmp_path, rules)
    assert result.returncode != 0
    assert f"alertname: {alert}" in result.stderr  # promtool names each failed check there


def test_every_alert_is_tested_firing_and_quiet() -> None:
    alerts = {r["alert"] for group in the_rules()["groups"] for r in group["rules"]}
    fired: set[str] = set()
    quiet: set[str] = set()
    for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for check in test["alert_rule_test"]:
            expected = check.get("exp_alerts") or []
            (fired if expected else quiet).add(check["alertname"])
            # Every firing alert is checked with its annotations: they are templates too.
            assert all("exp_annotations" in alert for alert in expected), check
    assert fired == alerts
    # Quiet as well: at an earlier time, or for the healthy namespace's series beside the firing one.
    assert quiet | {t["alert_rule_test"][0]["alertname"] for t in _tests_with_a_healthy_namespace()} >= alerts


def _tests_with_a_healthy_namespace() -> list[dict[str, Any]]:
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    return [t for t in tests if any('namespace="staging"' in s["series"] for s in t["input_series"])]


def test_the_tests_series_are_the_ones_the_stages_serve() -> None:
    """Each series a scenario feeds the rules is a metric the stages serve, with the labels it has there (and those
    Prometheus adds), or one of Prometheus' or kube-state-metrics' own."""
    metrics = StageMetrics("ingest")
    # Series with labels exist once a value is given to them.
    metrics.lag.labels("ingest", "articles.raw", "0").set(1)
    metrics.records.labels("ingest", "dead_lettered", "ValidationError").inc()
    served: dict[str, set[str]] = {}
    for metric in metrics.registry.collect():
        for sample in metric.samples:
            served.setdefault(sample.name, set()).update(sample.labels)
    for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for series in test["input_series"]:
            name, labels = re.fullmatch(r"([a-z_]+)\{(.*)\}", series["series"]).groups()  # type: ignore[union-attr]
            given = set(re.findall(r'([a-z_]+)="', labels))
            if name in OUTSIDE_SERIES:
                assert given <= OUTSIDE_SERIES[name], series
                continue
            assert name in served, f"{name} is not a metric the stages serve"
            assert given - TARGET_LABELS == served[name], series
