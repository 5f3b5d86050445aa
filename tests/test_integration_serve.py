"""`python -m pgkd.serve` as a user starts it: it becomes the vLLM server (exec), asks for its API key, and a
SIGTERM leaves nothing running (it used to leave the api_server and its engine behind with PPID 1)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from tests.test_integration_http import free_port

pytestmark = pytest.mark.integration
START_TIMEOUT_S = 300


def test_serve_asks_for_its_key_and_leaves_nothing_after_sigterm(tmp_path):
    port, key = free_port(), "test-key-123"
    log = (tmp_path / "serve.log").open("w")
    env = os.environ | {"PGKD_SERVE_API_KEY": key}
    server = subprocess.Popen([sys.executable, "-m", "pgkd.serve", "--port", str(port), "--kv-cache-gib", "1"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1/models"
    try:
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                if httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(2)
        assert httpx.get(url, timeout=5).status_code == 401  # no key, no answer
        process = psutil.Process(server.pid)
        assert "vllm.entrypoints.openai.api_server" in " ".join(process.cmdline())  # the server itself: exec'd
        assert key not in " ".join(process.cmdline())  # the key is not on its command line
        family = [process] + process.children(recursive=True)
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        gone, alive = psutil.wait_procs(family, timeout=30)
        assert not alive, f"left running after SIGTERM: {[p.pid for p in alive]}"
    finally:
        if server.poll() is None:
            server.kill()
