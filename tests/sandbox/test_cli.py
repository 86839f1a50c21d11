"""`athena-sync sandbox ...`: serve in a real process; admin verbs against a running sandbox."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import requests
from click.testing import CliRunner

from tests.sandbox.conftest import Api
from worker.cli import cli


def run(*args: str) -> Any:
    result = CliRunner().invoke(cli, ["sandbox", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_serve_answers_a_token_request() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable,
        "-c",
        "from worker.cli import main; main()",
        "sandbox",
        "serve",
        "--port",
        str(port),
        "--appointments",
        "50",
        "--seed",
        "3",
        "--rate-429",
        "0",
        "--forbidden-endpoints",
        "195900:/appointmenttypes",
        "--unserved-endpoints",
        "195900:/appointments/booked/multipledepartment",
        "--subscription-activation-seconds",
        "30",
        "--processed-retention-seconds",
        "7200",
        "--envelope-error-rate",
        "0.5",
        "--legacy-throttle-rate",
        "0.25",
        "--feed-appointment-notes",
        "--multi-department-first-only",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    stderr = process.stderr
    lines: list[str] = []
    # The request line is printed after the answer is sent: read stderr as it comes.
    reader = threading.Thread(
        target=lambda: lines.extend(line.decode() for line in iter(stderr.readline, b"")),
        daemon=True,
    )
    reader.start()
    try:
        for _ in range(100):
            try:
                config = requests.get(f"http://127.0.0.1:{port}/_sandbox/config", timeout=1).json()
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        assert config["seed"] == 3
        assert config["forbidden_endpoints"] == ["195900:/appointmenttypes"]
        assert config["unserved_endpoints"] == ["195900:/appointments/booked/multipledepartment"]
        assert config["subscription_activation_seconds"] == 30
        assert config["processed_retention_seconds"] == 7200
        assert config["feed_appointment_notes"] is True
        faults = config["faults"]
        assert (faults["envelope_error_rate"], faults["legacy_throttle_rate"]) == (0.5, 0.25)
        assert faults["multi_department_first_only"] is True
        token = requests.post(
            f"http://127.0.0.1:{port}/oauth2/v1/token",
            data={"grant_type": "client_credentials"},
            auth=("sandbox-client", "sandbox-secret"),
            timeout=5,
        )
        assert token.status_code == 200
        deadline = time.monotonic() + 10
        while not any("POST /oauth2/v1/token" in line for line in lines):
            assert time.monotonic() < deadline, "serve never logged the token request"
            time.sleep(0.02)
    finally:
        process.terminate()
        process.wait(timeout=10)
        reader.join(timeout=5)
    log = "".join(lines)
    assert f"http://127.0.0.1:{port}" in log
    assert "POST /oauth2/v1/token 200" in log
    assert token.json()["access_token"] not in log


def test_admin_verbs(api: Api) -> None:
    url = ["--url", api.url]
    assert run("faults", *url, "--error-rate", "1", "--fault-seed", "4")["error_rate"] == 1.0
    assert api.get("/v1/195900/ping").status_code >= 500
    assert run("faults", *url)["seed"] == 4
    assert run("faults", *url, "--legacy-throttle-rate", "1")["legacy_throttle_rate"] == 1.0
    assert api.get("/v1/195900/ping").status_code == 403
    assert run("faults", *url, "--off")["error_rate"] == 0.0
    first_only = run("faults", *url, "--multi-department-first-only")
    assert (first_only["multi_department_first_only"], first_only["error_rate"]) == (True, 0.0)
    assert run("faults", *url, "--off")["multi_department_first_only"] is False
    change = run("mutate", *url, "--cancel", "1", "--add", "2", "--seed", "5")
    assert (len(change["cancelled"]), len(change["added"])) == (1, 2)
    past = run("mutate", *url, "--checkout", "1", "--cancel-past", "1", "--past-days", "10")
    assert (len(past["checkout"]), len(past["cancel_past"]), past["checkin"]) == (1, 1, [])
    stats = run("stats", *url, "--reset")
    assert stats["token_mints"] == 1
    assert run("stats", *url)["total"] == 0
    summary = run("truth", *url, "--summary")
    assert summary["appointments"] == 602  # 600 + 2 added; cancelled rows stay
    assert run("expire-tokens", *url) == {"expired": 1}


def test_admin_verb_reports_an_unreachable_sandbox() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "stats", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "not reachable" in result.output
