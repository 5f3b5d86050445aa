"""The cluster files in ray_configs/ checked by what reads them, the custom-resource config and placement, and
where the driver's ray.init goes. Fast: nothing starts."""
import json
from pathlib import Path

import pytest
import yaml

from pgkd.config import load_config
from pgkd.basics.errors import InputError

CONFIGS = Path(__file__).resolve().parents[1] / "ray_configs"
POOLS = {"teacher_gpu": "pgkd_teacher_gpu", "student_gpu": "pgkd_student_gpu"}


def read(name: str):
    return yaml.safe_load((CONFIGS / name).read_text())


def test_launcher_yaml_passes_rays_schema_and_keeps_gpu_pools_apart():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = read("cluster-aws.yaml")
    validate_config(prepare_config(config))  # Ray's own schema, as `ray up` checks it
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"]["GPU"] == 0
    assert "--num-gpus=0" in " ".join(config["head_start_ray_commands"])
    for node_type, resource in POOLS.items():
        others = set(POOLS.values()) - {resource}
        assert types[node_type]["resources"][resource] >= 1 and not others & set(types[node_type]["resources"])


def kuberay_start_resources(group: dict) -> dict:
    """rayStartParams.resources is a JSON object quoted once more for the shell: '"{\\"x\\": 1}"'."""
    return json.loads(json.loads(group["rayStartParams"]["resources"]))


def test_kuberay_rayjob_has_both_pools_the_entrypoint_and_the_shared_runtime_env():
    job = next(yaml.safe_load_all((CONFIGS / "kuberay-rayjob.yaml").read_text()))
    spec = job["spec"]
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert spec["entrypoint"] == "pgkd run ray_configs/multi_node.yaml" and spec["entrypointNumCpus"] == 1
    assert spec["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"
    groups = {g["groupName"]: g for g in spec["rayClusterSpec"]["workerGroupSpecs"]}
    for node_type, resource in POOLS.items():
        assert kuberay_start_resources(groups[node_type.replace("_", "-")]) == {resource: 1}
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert runtime_env.pop("working_dir") == "/home/ray/pgkd"
    assert runtime_env == read("runtime_env.yaml")  # one runtime env, two ways of submitting


def test_runtime_env_leaves_run_outputs_behind_and_keeps_hub_offline():
    runtime_env = read("runtime_env.yaml")
    assert {"runs/", ".venv/", "bench/results/", "*.onnx"} <= set(runtime_env["excludes"])
    assert runtime_env["env_vars"] == {"HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    assert set(runtime_env) == {"excludes", "env_vars"}  # --working-dir names the folder on the command line


def test_example_cluster_run_configs_validate_and_ask_for_the_pools():
    one_gpu = load_config(CONFIGS / "one_gpu.yaml")
    assert one_gpu.teacher.gpus_per_replica == 1 and one_gpu.ray.address is None
    multi = load_config(CONFIGS / "multi_node.yaml")
    assert multi.ray.teacher_resources == {"pgkd_teacher_gpu": 1}
    assert multi.ray.student_resources == {"pgkd_student_gpu": 0.5}
    assert all(s.gpus == 0.5 for s in multi.students)  # two students per student_gpu node
    assert multi.dataset.path == (CONFIGS.parent / "examples" / "demo_bank").resolve()


def test_custom_resources_refuse_builtin_names(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("dataset:\n  path: data\nray:\n  teacher_resources: {GPU: 1}\n")
    with pytest.raises(InputError) as err:
        load_config(path)
    assert err.value.field == "ray.teacher_resources" and "not custom resources" in str(err.value)


def test_actor_options_carry_custom_resources_only_when_asked():
    from pgkd.cluster.placement import actor_options

    assert "resources" not in actor_options("student-a-0", "pgkd", 1)
    options = actor_options("teacher-0", "pgkd", 2, 1, resources={"pgkd_teacher_gpu": 1})
    assert options["resources"] == {"pgkd_teacher_gpu": 1} and options["num_gpus"] == 1 and options["num_cpus"] == 2


def config_with(tmp_path, **ray):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"dataset": {"path": "data"}, "ray": ray}))
    return load_config(path)


@pytest.mark.parametrize("env, configured, expected", [
    (None, None, "local"),  # never joins a `ray start` cluster by accident: it asks for its own
    ("10.0.0.1:6379", None, "10.0.0.1:6379"),  # under `ray job submit`: the job's cluster
    ("http://10.0.0.1:8265", None, "local"),  # a jobs-CLI dashboard URL is not a cluster to join
    ("10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.2:6379"),  # ray.address wins
])
def test_driver_picks_the_cluster_it_joins(tmp_path, monkeypatch, env, configured, expected):
    from pgkd.driver import ray_address

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if env:
        monkeypatch.setenv("RAY_ADDRESS", env)
    assert ray_address(config_with(tmp_path, address=configured)) == expected


def test_driver_env_vars_leave_out_what_the_job_already_sets(monkeypatch):
    from pgkd.driver import driver_env_vars

    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    assert set(driver_env_vars()) == {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "HF_HUB_OFFLINE"}
    job = {"runtime_env": {"env_vars": {"HF_HUB_OFFLINE": "1"}, "working_dir": "gcs://x.zip"}}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(job))
    assert set(driver_env_vars()) == {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}  # ray.init would refuse a duplicate


def test_kuberay_redis_takes_its_password_from_a_secret_persists_and_admits_only_the_ray_pods():
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all((CONFIGS / "kuberay-rayjob.yaml").read_text())}
    secret = {"secretKeyRef": {"name": "pgkd-redis", "key": "password"}}
    redis = docs["Deployment"]["spec"]["template"]["spec"]
    container = redis["containers"][0]
    assert {"name": "REDIS_PASSWORD", "valueFrom": secret} in container["env"]
    args = " ".join(container["args"])
    assert "--requirepass $(REDIS_PASSWORD)" in args and "--appendonly yes" in args and "--dir /data" in args
    volume = {v["name"]: v for v in redis["volumes"]}[container["volumeMounts"][0]["name"]]
    claims = [d for d in yaml.safe_load_all((CONFIGS / "kuberay-rayjob.yaml").read_text())
              if d["kind"] == "PersistentVolumeClaim"]
    assert volume["persistentVolumeClaim"]["claimName"] in {c["metadata"]["name"] for c in claims}
    policy = docs["NetworkPolicy"]["spec"]
    assert policy["podSelector"] == {"matchLabels": {"app": "pgkd-redis"}} and policy["policyTypes"] == ["Ingress"]
    admitted = policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    cluster = docs["RayJob"]["spec"]["rayClusterSpec"]
    for template in [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]:
        assert template["metadata"]["labels"].items() >= admitted.items()  # every Ray pod, and only those labels
        env = template["spec"]["containers"][0]["env"]
        assert {"name": "PGKD_REDIS_PASSWORD", "valueFrom": secret} in env
    multi = load_config(CONFIGS / "multi_node.yaml")
    assert multi.redis.password_env == "PGKD_REDIS_PASSWORD" and "@" not in multi.redis.url
    assert str(multi.runs_dir).startswith("s3://")  # object storage, not a volume every pod mounts
    runs_volumes = [d for d in yaml.safe_load_all((CONFIGS / "kuberay-rayjob.yaml").read_text())
                    if d["kind"] == "PersistentVolumeClaim" and "ReadWriteMany" in d["spec"]["accessModes"]]
    assert not runs_volumes
    for template in [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]:
        assert template["spec"]["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]


def test_launcher_redis_on_the_head_has_a_password_from_a_file_and_persists():
    config = read("cluster-aws.yaml")
    assert config["file_mounts"]["/home/ubuntu/.pgkd_redis_password"] == "~/.pgkd/redis_password"
    setup = "\n".join(config["head_setup_commands"])
    assert "requirepass %s" in setup and "--appendonly yes" in setup and "--port 6380" in setup
    assert "--requirepass" not in setup  # never on a command line
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        assert 'export PGKD_REDIS_PASSWORD="$(cat ~/.pgkd_redis_password)"' in commands[-1]


def test_redis_password_from_the_environment_goes_into_the_url_and_is_refused_when_missing(monkeypatch, tmp_path):
    from urllib.parse import urlsplit

    from pgkd.bus.config import RedisConfig, redis_url_from_env

    monkeypatch.setenv("PGKD_TEST_REDIS_PW", "p@ss:w/rd")
    url = redis_url_from_env(RedisConfig(url="redis://pgkd-redis:6379/0", password_env="PGKD_TEST_REDIS_PW"))
    assert urlsplit(url).hostname == "pgkd-redis" and urlsplit(url).port == 6379
    import redis

    assert redis.Redis.from_url(url).connection_pool.connection_kwargs["password"] == "p@ss:w/rd"
    monkeypatch.delenv("PGKD_TEST_REDIS_PW")
    with pytest.raises(InputError) as err:
        redis_url_from_env(RedisConfig(url="redis://pgkd-redis:6379/0", password_env="PGKD_TEST_REDIS_PW"))
    assert err.value.field == "redis.password_env" and "PGKD_TEST_REDIS_PW is not set" in str(err.value)
    path = tmp_path / "run.yaml"
    path.write_text("dataset: {path: data}\nredis:\n  url: redis://:pw@h:6379/0\n  password_env: X\n")
    with pytest.raises(InputError, match="keep one"):
        load_config(path)
