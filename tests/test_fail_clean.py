"""Failing clean, in this process and without Ray: the run session stops what it owns and removes a new run's
folder on every way out, signals abort, are held or ask for a clean stop by stage; a teacher endpoint that keeps
failing stops its replica, and a lost request is never counted as a generated text."""
import os
import signal
import socket

import pytest

from pgkd.teacher.config import teacher_settings
from pgkd.basics.dataset import Label
from pgkd.basics.errors import InputError
from pgkd.session import Interrupted, RunSession
from pgkd.teacher.backends.base import Capabilities, Completion, SamplingSpec, TeacherUnavailable
from pgkd.teacher.backends.openai_http import OpenAIHTTPBackend
from pgkd.teacher.teacher import Teacher


def test_a_failed_start_stops_what_it_owns_and_removes_the_new_folder(tmp_path):
    stopped = []
    run_dir = tmp_path / "runs" / "r1"
    with pytest.raises(RuntimeError, match="start failed"):
        with RunSession(run_dir, print, fresh=True) as session:
            assert run_dir.stat().st_mode & 0o777 == 0o700
            (run_dir / "file").write_text("x")
            assert (run_dir / "file").stat().st_mode & 0o777 == 0o600  # the run's umask
            session.own(lambda: stopped.append("redis"))
            session.own(lambda: stopped.append("ray"))
            raise RuntimeError("start failed")
    assert stopped == ["ray", "redis"] and not run_dir.exists()
    assert (tmp_path / "after").write_text("x") and (tmp_path / "after").stat().st_mode & 0o077  # umask restored


def test_a_launched_run_keeps_its_folder_and_an_existing_one_is_refused(tmp_path):
    run_dir = tmp_path / "r1"
    with pytest.raises(ValueError):
        with RunSession(run_dir, print, fresh=True) as session:
            session.running(lambda signum: None)
            raise ValueError("crash after launch")
    assert run_dir.is_dir()  # `pgkd resume` needs it
    with pytest.raises(InputError, match="exists already"):
        with RunSession(run_dir, print, fresh=True):
            pass
    assert run_dir.is_dir()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_aborts_through_the_clean_up(sig, tmp_path):
    stopped = []
    before = signal.getsignal(sig)
    with pytest.raises(Interrupted) as caught:
        with RunSession(tmp_path / "r1", print, fresh=True) as session:
            session.own(lambda: stopped.append("redis"))
            os.kill(os.getpid(), sig)  # the handler runs before the next line
            stopped.append("not reached")
    assert caught.value.signum == sig and stopped == ["redis"] and not (tmp_path / "r1").exists()
    assert signal.getsignal(sig) == before  # handlers given back


def test_a_signal_inside_ray_start_is_held_until_it_returns_and_ray_keeps_our_handler(tmp_path):
    import ray._private.utils as ray_utils

    steps = []
    with pytest.raises(Interrupted):
        with RunSession(tmp_path / "r1", print, fresh=True) as session:
            def fake_ray_init():
                ray_utils.set_sigterm_handler(lambda *a: steps.append("ray's handler ran"))
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("ray.init finished")
            with session.signals.held_during("Ray start"):
                fake_ray_init()
            steps.append("not reached")
    assert steps == ["ray.init finished"]


def test_once_running_the_first_signal_asks_for_a_clean_stop_and_the_second_exits_now(tmp_path):
    """The second signal ends the run's processes and the driver (tests/test_integration_faults.py runs it for
    real); here it is replaced by a recorder, since it would end this process too."""
    requested, exits = [], []
    with RunSession(tmp_path / "r1", print, fresh=True) as session:
        session.running(requested.append)
        assert session.signals.exit_now == session._exit_now
        session.signals.exit_now = exits.append
        os.kill(os.getpid(), signal.SIGTERM)
        assert requested == [signal.SIGTERM]
        os.kill(os.getpid(), signal.SIGINT)
        assert exits == [signal.SIGINT]
    assert (tmp_path / "r1").is_dir()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_an_endpoint_that_keeps_failing_stops_the_replica_after_the_bound():
    backend = OpenAIHTTPBackend("m", closed_port_url(), timeout_s=2, max_retries=0, concurrency=2,
                                max_consecutive_failures=3)
    try:
        first = backend.generate(["a", "b"], SamplingSpec())
        assert [c.failed for c in first] == [True, True] and all(c.texts == [] for c in first)
        with pytest.raises(TeacherUnavailable, match="3 requests in a row failed"):
            backend.generate(["c"], SamplingSpec())
    finally:
        backend.close()


class LosingBackend:
    """Every request lost, as OpenAIHTTPBackend reports it before its bound."""
    model_name = "lost"
    capabilities = Capabilities()

    def generate(self, prompts, spec):
        return [Completion(texts=[], prompt_tokens=0, completion_tokens=0, failed=True) for _ in prompts]

    def choice_logprobs(self, prompts, choices):
        return [None] * len(prompts)

    def close(self):
        pass


def test_a_lost_request_is_never_counted_as_a_generated_text():
    labels = [Label("card"), Label("refund")]
    seeds = [{"text": "where is my card", "label": "card"}, {"text": "give my money back", "label": "refund"}]
    config = teacher_settings(classes_per_batch=2, examples_per_class=3)
    teacher = Teacher(LosingBackend(), labels, seeds, [], config, "teacher-0", "messages")
    examples, stats = teacher.write_batch(None)
    assert examples == [] and stats.generated == 0 and stats.failed_requests == 6
    assert stats.as_counts()["failed_requests"] == 6 and not stats.dropped
