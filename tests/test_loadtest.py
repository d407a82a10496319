"""loadtest/locustfile.py: the 5x-peak run passes against a fast server and fails a slow one.

The suite runs the real locustfile with the real locust CLI, briefly (0.5 s ramp, 1 s hold, a few
hundred requests at most), against an HTTP server on 127.0.0.1 started here.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from loadtest.peaks import stack_scaling
from toolkit.stackfile import REPO

SLOW_SECONDS = 0.4  # twice the 200 ms p99 limit: the verdict cannot be a near miss


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the apps' load balancer offers

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path.startswith("/slow"):
            time.sleep(SLOW_SECONDS)
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


def _locust(host: str, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "locust", "-f", str(REPO / "loadtest" / "locustfile.py"),
           "--headless", "--only-summary", "--host", host, "--peak-users", "2", "--peak-rps", "10",
           "--ramp-seconds", "0.5", "--hold-seconds", "1", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)


def test_passes_at_five_times_peak_against_a_fast_server(server):
    proc = _locust(server)
    out = proc.stdout + proc.stderr
    assert "plan: 10 users (2 x 5), target 50.0 rps, p99 limit 200 ms" in out
    assert "verdict: PASS" in out, out[-2000:]
    assert proc.returncode == 0


def test_fails_the_p99_threshold_against_a_slow_endpoint(server):
    proc = _locust(server, "--paths", "/slow")
    out = proc.stdout + proc.stderr
    assert "verdict: FAIL" in out, out[-2000:]
    assert "(limit 200)" in out
    assert proc.returncode == 1


def test_multiplier_and_peak_come_from_the_stack_file(tmp_path):
    (tmp_path / "Pulumi.qa.yaml").write_text(
        "config:\n  cofounder:scaling:\n    peakMultiplier: 3\n    peakUsers: 40\n")
    assert stack_scaling("qa", tmp_path) == {"peakMultiplier": 3, "peakUsers": 40}
    (tmp_path / "Pulumi.bare.yaml").write_text("config:\n  cofounder:environment: dev\n")
    assert stack_scaling("bare", tmp_path) == {}
    assert stack_scaling(None, tmp_path) == {}


def test_the_p99_limit_is_a_setting(server):
    """--p99-ms (else the stack's cofounder:scaling.p99LatencyMs, else 200) is the pass mark."""
    proc = _locust(server, "--paths", "/slow", "--p99-ms", "1000")
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
           "--hold-seconds", "1"]
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    out = proc.stdout + proc.stderr
    assert "verdict: PASS" in out, out[-2000:]
    fake.write_text("#!/bin/sh\necho 'error: no stack named dev' >&2\nexit 255\n")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert proc.returncode != 0
    assert "gave no URL (error: no stack named dev); deploy the stack first or give --host" in proc.stdout + proc.stderr
