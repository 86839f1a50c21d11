"""How many pages of 1,000 appointments a minute the sandbox serves on one core.

    python -m bench.sandbox_throughput [--seconds 10] [--appointments 20000] [--uncached]

The sandbox runs as `athena-sync sandbox serve` in a child process pinned to one CPU; this process
(pinned to another when there is one) pages through /appointments/booked with limit=1000 over one
keep-alive connection and reads every body. ``--uncached`` adds a unique throwaway parameter to
each request so no page is served from the cache. Reports wall-clock pages/minute and pages per
CPU-minute of the server process (from /proc).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import requests

from bench.sandbox import PRACTICE, free_port


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(port: int, appointments: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-c",
        "from worker.cli import main; main()",
        "sandbox",
        "serve",
        "--port",
        str(port),
        "--appointments",
        str(appointments),
        "--days",
        "60",
        "--quiet",
        "--anchor-date",
        "03/01/2026",
    ]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(process.pid, {cpus[0]})
    if len(cpus) > 1:
        os.sched_setaffinity(0, set(cpus[1:]))
    for _ in range(100):
        try:
            requests.get(f"http://127.0.0.1:{port}/_sandbox/config", timeout=1)
            return process
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("sandbox did not start")


def run(seconds: float, appointments: int, uncached: bool) -> None:
    port = free_port()
    server = start_server(port, appointments)
    base = f"http://127.0.0.1:{port}"
    http = requests.Session()
    try:
        auth = ("sandbox-client", "sandbox-secret")
        token = http.post(
            f"{base}/oauth2/v1/token", data={"grant_type": "client_credentials"}, auth=auth
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        params = {"startdate": "01/01/2025", "enddate": "12/31/2026", "showcancelled": "true"}
        pages = bytes_read = 0
        cpu_start, started = cpu_seconds(server.pid), time.perf_counter()
        while time.perf_counter() - started < seconds:
            offset = (pages * 1000) % appointments
            query = {**params, "limit": "1000", "offset": str(offset)}
            if uncached:
                query["benchnonce"] = str(pages)
            response = http.get(
                f"{base}/v1/{PRACTICE}/appointments/booked", params=query, headers=headers
            )
            response.raise_for_status()
            bytes_read += len(response.content)
            pages += 1
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(server.pid) - cpu_start
    finally:
        http.close()
        server.terminate()
        server.wait(timeout=10)
    mode = "uncached" if uncached else "cached"
    print(
        f"{mode}: {pages} pages of 1000 in {elapsed:.1f}s -> {pages / elapsed * 60:,.0f} pages/min "
        f"wall, {pages / max(cpu, 1e-9) * 60:,.0f} pages per server CPU-minute, "
        f"{bytes_read / pages / 1024:,.0f} KiB/page"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--appointments", type=int, default=20000)
    parser.add_argument("--uncached", action="store_true")
    args = parser.parse_args()
    run(args.seconds, args.appointments, args.uncached)


if __name__ == "__main__":
    main()
