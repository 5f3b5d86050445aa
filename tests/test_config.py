import pytest

from pgkd.config import load_config
from pgkd.basics.errors import InputError


def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_defaults_and_relative_dataset_path(tmp_path, tiny_dataset):
    config = load_config(write(tmp_path, "dataset:\n  path: data\n"))
    assert config.dataset.path == tiny_dataset.resolve()
    assert config.students[0].kind == "encoder" and config.teacher.backend == "vllm"


def test_unknown_key_names_file_line_and_field(tmp_path):
    path = write(tmp_path, "dataset:\n  path: data\nteacher:\n  replicas: 1\n  tempreature: 0.5\n")
    with pytest.raises(InputError) as err:
        load_config(path)
    assert err.value.file == str(path) and err.value.line == 5
    assert err.value.field == "teacher.tempreature"
    assert "run.yaml:5" in str(err.value)


def test_wrong_type_is_refused(tmp_path):
    path = write(tmp_path, "dataset:\n  path: data\nloop:\n  patience: soon\n")
    with pytest.raises(InputError) as err:
        load_config(path)
    assert err.value.field == "loop.patience" and err.value.line == 4


def test_missing_dataset_points_at_the_file(tmp_path):
    with pytest.raises(InputError) as err:
        load_config(write(tmp_path, "name: x\n"))
    assert err.value.field == "dataset"


def test_overrides_parse_yaml_values(tmp_path, tiny_dataset):
    config = load_config(write(tmp_path, "dataset:\n  path: data\n"),
                         ["teacher.replicas=2", "students.0.alpha=0.2", "loop.max_generated=100"])
    assert config.teacher.replicas == 2 and config.students[0].alpha == 0.2 and config.loop.max_generated == 100


def test_override_of_unknown_key_is_refused(tmp_path):
    with pytest.raises(InputError) as err:
        load_config(write(tmp_path, "dataset:\n  path: data\n"), ["teacher.nope=1"])
    assert err.value.field == "teacher.nope"


def test_duplicate_student_names_refused(tmp_path):
    with pytest.raises(InputError, match="unique"):
        load_config(write(tmp_path, "dataset:\n  path: data\nstudents:\n  - name: a\n  - name: a\n"))


def test_shipped_configs_validate():
    from pathlib import Path

    cluster_files = {"cluster-aws.yaml", "kuberay-rayjob.yaml", "runtime_env.yaml"}  # tests/test_cluster_configs.py
    for path in sorted(Path(__file__).parents[1].glob("ray_configs/*.yaml")):
        if path.name not in cluster_files:
            load_config(path)


def test_servers_default_to_loopback(tmp_path):
    from pgkd.config import validate_config

    config = validate_config({"dataset": {"path": str(tmp_path)}})
    assert config.ray.dashboard_host == "127.0.0.1" and config.redis.url is None and config.redis.retry_seconds > 0
