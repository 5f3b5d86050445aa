"""The local Ray cluster a run starts keeps Ray's token authentication on: its dashboard and job API refuse a
request without the token, and the token file is owner-only even where it was left world-readable. In a child
process with a fresh HOME (its own token), as a user on a shared machine has. About 15 s."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, os, sys, time, urllib.request, urllib.error
import ray
from pgkd.config import validate_config
from pgkd.driver import start_ray

config = validate_config({"dataset": {"path": sys.argv[1]}, "students": [{"name": "n", "kind": "ngram"}],
                          "ray": {"dashboard": True, "num_cpus": 1}})
line = start_ray(config)
url = line.split(" ")[0]
def status(path, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for _ in range(30):
        try:
            return urllib.request.urlopen(urllib.request.Request(url + path, headers=headers), timeout=5).status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            time.sleep(1)
token = open(os.path.expanduser("~/.ray/auth_token")).read().strip()
print(json.dumps({"line": line, "without": status("/api/jobs/"), "with": status("/api/jobs/", token),
                  "mode": oct(os.stat(os.path.expanduser("~/.ray/auth_token")).st_mode & 0o777)}))
ray.shutdown()
"""


@pytest.mark.integration
def test_the_local_cluster_refuses_the_job_api_without_its_token_and_the_token_is_owner_only(tmp_path):
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("a" * 32)
    (home / ".ray" / "auth_token").chmod(0o644)  # as Ray writes it under the usual umask
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")} | {
        "HOME": str(home), "HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["without"] == 401 and seen["with"] == 200 and seen["mode"] == "0o600"
    assert f"the dashboard asks for the token in {home / '.ray' / 'auth_token'}" in seen["line"]
