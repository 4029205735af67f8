"""``rpcviz interop-server`` / ``interop-client`` take grpc's ``--use_tls`` flag, and refuse TLS in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def rpcviz(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=False
    )


COMMANDS = {
    "interop-server": ["interop-server", "--port", "0"],
    "interop-client": ["interop-client", "--server_port", "1", "--test_case", "empty_unary"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("flag", [["--use_tls=true"], ["--use_tls", "TRUE"], ["--use_tls"], ["--use_tls=1"]])
def test_tls_is_refused_in_one_line(command: str, flag: list[str]) -> None:
    proc = rpcviz(*COMMANDS[command], *flag)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert (
        proc.stderr == f"rpcviz {command}: --use_tls=true is not supported: rpcviz speaks plaintext HTTP/2 (h2c) only\n"
    )


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_use_tls_that_is_not_a_boolean_is_a_usage_error(command: str) -> None:
    proc = rpcviz(*COMMANDS[command], "--use_tls=maybe")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "expected true or false, not 'maybe'" in proc.stderr, proc.stderr


def test_an_unknown_case_is_a_usage_error_in_one_line() -> None:
    proc = rpcviz("interop-client", "--server_port", "1", "--test_case", "cacheable_unary")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "invalid choice: 'cacheable_unary'" in proc.stderr, proc.stderr


def test_the_commands_are_listed_in_rpcviz_help() -> None:
    proc = rpcviz("--help")
    assert proc.returncode == 0
    assert "interop-server" in proc.stdout and "interop-client" in proc.stdout
