"""Local classify replicas share the machine's cores instead of each taking them all."""

from __future__ import annotations

import os

import pytest

from newsflow_cli.supervisor import Supervisor, process_names, service_of, threads_per_replica


@pytest.mark.parametrize(("replicas", "cores", "threads"), [(2, 2, 1), (3, 2, 1), (2, 8, 4), (3, 8, 2), (1, 4, 4)])
def test_threads_per_replica_shares_out_the_cores(replicas: int, cores: int, threads: int) -> None:
    assert threads_per_replica(replicas, cores) == threads


def test_threads_per_replica_counts_the_cores_this_process_may_use() -> None:
    assert threads_per_replica(1) == len(os.sched_getaffinity(0))


def test_each_classify_replica_gets_its_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLASSIFY_THREADS", raising=False)
    supervisor = Supervisor(env={}, replicas={"classify": 2, "cleanup": 1})
    expected = str(threads_per_replica(2))
    assert supervisor.service_env("classify")["CLASSIFY_THREADS"] == expected
    assert supervisor.service_env("classify-2")["CLASSIFY_THREADS"] == expected
    assert "CLASSIFY_THREADS" not in supervisor.service_env("cleanup")


def test_one_replica_keeps_torch_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLASSIFY_THREADS", raising=False)
    assert "CLASSIFY_THREADS" not in Supervisor(env={}, replicas={"classify": 1}).service_env("classify")


@pytest.mark.parametrize("where", ["environment", "supervisor"])
def test_a_threads_setting_given_is_kept(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    env: dict[str, str] = {}
    if where == "environment":
        monkeypatch.setenv("CLASSIFY_THREADS", "3")
    else:
        monkeypatch.delenv("CLASSIFY_THREADS", raising=False)
        env = {"CLASSIFY_THREADS": "3"}
    supervisor = Supervisor(env=env, replicas={"classify": 2})
    assert supervisor.service_env("classify-2")["CLASSIFY_THREADS"] == "3"


def test_process_names_name_each_replica_after_its_service() -> None:
    names = process_names({"ingest": 1, "cleanup": 0, "classify": 3})
    assert names == ["ingest", "classify", "classify-2", "classify-3", "storage"]
    assert [service_of(name) for name in names] == ["ingest", "classify", "classify", "classify", "storage"]
