"""loadtest/locustfile.py: the 5x-peak run passes against a fast server and fails a slow one, or
one the load generator cannot offer the target rate to.

The suite runs the real locustfile with the real locust CLI, briefly (0.5 s ramp, 2 s hold, a few
hundred requests at most), against an HTTP server on 127.0.0.1 started here (loopback only).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from capacity.scale_up import ScalingSettings
from loadtest.peaks import stack_scaling
from toolkit.stackfile import REPO

SLOW_SECONDS = 0.4  # twice the 200 ms p99 limit: the verdict cannot be a near miss
#: Well under the p99 limit, but a user waiting this long per request offers at most 10 rps.
STEADY_SECONDS = 0.1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the apps' load balancer offers

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path.startswith("/slow"):
            time.sleep(SLOW_SECONDS)
        elif self.path.startswith("/steady"):
            time.sleep(STEADY_SECONDS)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # all simulated users connect at once

    def handle_error(self, request, client_address):
        pass  # locust closes connections at the end of the run


@pytest.fixture(scope="module")
def server():
    srv = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _locust(host: str, *extra: str, peak: tuple[str, str] = ("2", "10"),
            result: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "locust", "-f", str(REPO / "loadtest" / "locustfile.py"),
           "--headless", "--only-summary", "--host", host, "--peak-users", peak[0], "--peak-rps", peak[1],
           "--ramp-seconds", "0.5", "--hold-seconds", "2", *(["--result-json", str(result)] if result else []), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)


def test_passes_at_five_times_peak_against_a_fast_server(server, tmp_path):
    proc = _locust(server, "--pods", "frontend=2,backend=1", result=tmp_path / "run.json")
    out = proc.stdout + proc.stderr
    assert "plan: 10 users (2 x 5), target 50 rps, p99 limit 200 ms, pass at 95% of the target rate" in out
    assert "verdict: PASS" in out, out[-2000:]
    assert proc.returncode == 0
    # the result `make tune` reads: this shape is a contract
    result = json.loads((tmp_path / "run.json").read_text())
    assert {"stack", "target_rps", "achieved_rps", "achieved_share", "hold_seconds", "users", "verdict",
            "endpoints"} <= set(result)
    assert (result["stack"], result["target_rps"], result["users"], result["verdict"]) == ("adhoc", 50.0, 10, "PASS")
    assert result["pods"] == {"frontend": 2, "backend": 1}  # the replicas make tune divides by
    assert result["achieved_share"] >= 0.95 and result["hold_seconds"] >= 2
    assert result["achieved_rps"] == pytest.approx(result["achieved_share"] * 50, rel=0.01)
    endpoint = result["endpoints"]["/"]
    assert set(endpoint) == {"requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms"}
    assert endpoint["failures"] == 0 and endpoint["p50_ms"] <= endpoint["p95_ms"] <= endpoint["p99_ms"] < 200
    # only the hold is counted: about target x hold requests, not the ramp's as well
    assert endpoint["requests"] == pytest.approx(50 * result["hold_seconds"], rel=0.1)


def test_fails_when_the_offered_load_falls_short_of_the_target(server, tmp_path):
    """Each request takes 100 ms (well under the 200 ms limit), so 10 users offer at most 100 of the
    200 rps targeted: the run proves nothing about 5x and fails, whatever the latency."""
    proc = _locust(server, "--paths", "/steady", peak=("2", "40"), result=tmp_path / "run.json")
    out = proc.stdout + proc.stderr
    assert "verdict: FAIL" in out, out[-2000:]
    assert "is below 95% of the 200 rps targeted: the test did not offer the load it claims" in out
    assert proc.returncode == 1
    result = json.loads((tmp_path / "run.json").read_text())
    assert result["verdict"] == "FAIL" and result["achieved_share"] < 0.7


def test_fails_the_p99_threshold_against_a_slow_endpoint(server, tmp_path):
    proc = _locust(server, "--paths", "/slow", result=tmp_path / "r.json")
    out = proc.stdout + proc.stderr
    assert "verdict: FAIL" in out, out[-2000:]
    assert "(limit 200)" in out
    assert proc.returncode == 1


def test_multiplier_and_peak_come_from_the_stack_file(tmp_path):
    (tmp_path / "Pulumi.qa.yaml").write_text(
        "config:\n  cofounder:scaling:\n    peakMultiplier: 3\n    peakUsers: 40\n    peakRps: 8\n")
    qa = stack_scaling("qa", tmp_path)
    assert (qa.peak_multiplier, qa.peak_users, qa.peak_rps, qa.p99_latency_ms) == (3, 40, 8, 200)
    (tmp_path / "Pulumi.bare.yaml").write_text("config:\n  cofounder:environment: dev\n")
    assert stack_scaling("bare", tmp_path) == ScalingSettings() == stack_scaling(None, tmp_path)
    (tmp_path / "Pulumi.bad.yaml").write_text("config:\n  cofounder:scaling:\n    peakRps: 0\n")
    with pytest.raises(SystemExit) as bad:
        stack_scaling("bad", tmp_path)
    assert "Pulumi.bad.yaml: cofounder:scaling.peakRps is 0; allowed: " in str(bad.value)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stack_declares_the_peak_the_load_test_multiplies(stack):
    scaling = stack_scaling(stack)
    assert scaling.peak_users and scaling.peak_rps and scaling.peak_multiplier == 5


def test_the_p99_limit_is_a_setting(server, tmp_path):
    """--p99-ms (else the stack's cofounder:scaling.p99LatencyMs, else 200) is the pass mark. 20 rps
    over 10 users is 2 per user, which a 400 ms endpoint still serves."""
    proc = _locust(server, "--paths", "/slow", "--p99-ms", "1000", peak=("2", "4"), result=tmp_path / "r.json")
    out = proc.stdout + proc.stderr
    assert "p99 limit 1000 ms" in out and "verdict: PASS" in out, out[-2000:]
    assert proc.returncode == 0


def test_by_default_the_target_is_the_stacks_public_url(server, tmp_path):
    """--stack without --host reads the stack's ``url`` output through the Pulumi CLI (a stand-in
    here that answers with the local server), so the load takes the real path through CloudFront."""
    import os
    fake = tmp_path / "pulumi"
    fake.write_text(f"#!/bin/sh\n[ \"$1 $2 $3\" = \"stack output url\" ] && [ \"$5\" = dev ] && echo {server}\n")
    fake.chmod(0o755)
    cmd = [sys.executable, "-m", "locust", "-f", str(REPO / "loadtest" / "locustfile.py"), "--headless",
           "--only-summary", "--stack", "dev", "--peak-users", "2", "--peak-rps", "10", "--ramp-seconds", "0.5",
           "--hold-seconds", "1", "--result-json", str(tmp_path / "dev.json"),
           "--p99-ms", "5000", "--min-rate-share", "0.5"]  # the host is under test here, not the verdict's marks
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    out = proc.stdout + proc.stderr
    assert "verdict: PASS" in out, out[-2000:]
    fake.write_text("#!/bin/sh\necho 'error: no stack named dev' >&2\nexit 255\n")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert proc.returncode != 0
    assert "gave no URL (error: no stack named dev); deploy the stack first or give --host" in proc.stdout + proc.stderr
