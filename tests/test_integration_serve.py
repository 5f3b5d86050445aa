"""`python -m pgkd.serve` as a user starts it, and a run through a gateway that spoils its replies.

The server becomes vLLM's api_server (exec), asks for its API key, and a SIGTERM leaves nothing running (it used
to leave the api_server and its engine behind with PPID 1). In between, a whole `pgkd run` talks to it through a
gateway on 127.0.0.1 that spoils a share of the replies (HTML with status 200, truncated JSON, no choices, null
or NaN log-probabilities, 502): the run finishes by itself and keeps no example built from a spoiled reply."""
from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import psutil
import pytest

from tests.test_integration import ENV, PGKD, REPO, write_config
from tests.test_integration_http import free_port
from tests.test_teacher_spoiled_replies import spoiled

pytestmark = pytest.mark.integration
START_TIMEOUT_S = 300
KEY = "test-key-123"
SPOILS = ["html", "truncated", "no_choices", "null_logprobs", "nan_logprobs", "502"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The embedded teacher behind `python -m pgkd.serve`, its key from PGKD_SERVE_API_KEY."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    server = subprocess.Popen([sys.executable, "-m", "pgkd.serve", "--port", str(port), "--kv-cache-gib", "1"],
                              env=os.environ | {"PGKD_SERVE_API_KEY": KEY}, stdout=log.open("w"),
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            assert server.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(f"{url}/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=2).is_success:
                    break
            except httpx.TransportError:
                pass
            time.sleep(2)
        yield url, server
    finally:
        if server.poll() is None:
            server.kill()


class SpoilingGateway:
    """Forwards to the server with its key and spoils `share` of the POST replies, at random (seeded)."""

    def __init__(self, upstream: str, share: float, seed: int = 0):
        self.upstream, self.share, self.rng = upstream, share, random.Random(seed)
        self.spoiled: list[str] = []
        self.forwarded = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def _handler(self):
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(*gateway.forward("GET", self.path, None))

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, reply = gateway.forward("POST", self.path, body)
                with gateway.lock:
                    kind = gateway.rng.choice(SPOILS) if gateway.rng.random() < gateway.share else None
                if kind in ("null_logprobs", "nan_logprobs") and not (status == 200 and logprobs_of(reply)):
                    kind = "html"
                if kind is not None:
                    gateway.spoiled.append(kind)
                    status, reply = spoiled(kind, reply)
                self._send(status, reply)

            def _send(self, status, reply):
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def forward(self, method: str, path: str, body: dict | None):
        url = self.upstream.rsplit("/v1", 1)[0] + path
        reply = httpx.request(method, url, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=300)
        with self.lock:
            self.forwarded += 1
        return reply.status_code, reply.json()

    def close(self):
        self.server.shutdown()


def logprobs_of(reply) -> bool:
    choices = reply.get("choices") if isinstance(reply, dict) else None
    return bool(choices and isinstance(choices[0], dict) and choices[0].get("logprobs"))


def finite(values) -> bool:
    return values is None or all(isinstance(v, (int, float)) and math.isfinite(v) for v in values.values())


def test_a_run_through_a_gateway_that_spoils_a_third_of_replies_finishes_clean(served, tmp_path):
    url, _ = served
    gateway = SpoilingGateway(url, share=0.3, seed=11)
    config = write_config(tmp_path, f"""
teacher:
  backend: openai
  model: teacher
  base_url: {gateway.url}
  classes_per_batch: 2
  examples_per_class: 3
  max_batches: 3
  audit: false
  max_retries: 6
students:
  - {{name: ngram, kind: ngram, min_new_examples: 2}}
""")
    config.write_text(config.read_text().replace("patience: 3", "patience: 50"))  # spend the three batches
    try:
        proc = subprocess.run(PGKD + ["run", str(config), "--run-id", "spoiled"], env=ENV, cwd=REPO,
                              capture_output=True, text=True, timeout=600)
    finally:
        gateway.close()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out and len(gateway.spoiled) >= 3, (gateway.spoiled, out[-2000:])
    run_dir = tmp_path / "runs" / "spoiled"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["stopped_by"]["reason"] != "error" and report["teacher"]["totals"]["batches"] == 3
    rows = [json.loads(line) for line in (run_dir / "data" / "examples.jsonl").read_text().splitlines()]
    assert all(finite(r.get("soft_label")) and finite(r.get("candidate_probs")) for r in rows)
    print(f"spoiled replies: {len(gateway.spoiled)} of {gateway.forwarded} ({sorted(set(gateway.spoiled))}); "
          f"kept {report['teacher']['totals'].get('kept', 0):g}; the run ended by {report['stopped_by']['reason']}")


def test_serve_asks_for_its_key_and_leaves_nothing_after_sigterm(served):
    url, server = served
    assert httpx.get(f"{url}/models", timeout=5).status_code == 401  # no key, no answer
    process = psutil.Process(server.pid)
    assert "vllm.entrypoints.openai.api_server" in " ".join(process.cmdline())  # the server itself: exec'd
    assert KEY not in " ".join(process.cmdline())  # the key is not on its command line
    family = [process] + process.children(recursive=True)
    server.send_signal(signal.SIGTERM)
    server.wait(60)
    gone, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, f"left running after SIGTERM: {[p.pid for p in alive]}"
