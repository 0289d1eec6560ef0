"""Invalid CUSTODY_* settings stop every command at start-up, naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.settings import Settings, configuration_problems

ROOT = Path(__file__).resolve().parents[2]


def problems_of(**environment: str) -> list[str]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        with pytest.raises(ValidationError) as caught:
            Settings(_env_file=None)
    return configuration_problems(caught.value)


def test_each_problem_names_its_environment_variable() -> None:
    assert problems_of(CUSTODY_INGEST_PORT="abc", CUSTODY_CONSUMER_BATCH_MAX="-5") == [
        "CUSTODY_CONSUMER_BATCH_MAX: Input should be greater than or equal to 1",
        "CUSTODY_INGEST_PORT: Input should be a valid integer, unable to parse string as an "
        "integer",
    ]


def test_the_offending_value_is_not_echoed() -> None:
    [problem] = problems_of(CUSTODY_LOG_FORMAT="s3cr3t")
    assert problem == "CUSTODY_LOG_FORMAT: Input should be 'text' or 'json'"


def run_cli(*arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")}
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_refuses_a_bad_setting_without_a_traceback() -> None:
    result = run_cli("serve", "consumer", CUSTODY_INGEST_PORT="abc")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (
        "error: invalid configuration: CUSTODY_INGEST_PORT: Input should be a valid integer"
        in result.stderr
    )


def test_other_commands_report_it_the_same_way() -> None:
    result = run_cli("keys", "init", CUSTODY_CONSUMER_BATCH_MAX="-1")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "CUSTODY_CONSUMER_BATCH_MAX: Input should be greater than or equal to 1" in (
        result.stderr
    )
