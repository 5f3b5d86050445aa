"""One run's ownership of what it starts: the embedded redis-server, the local Ray cluster (and through it the
actors and the engine), its folder and its signal handlers. Each is stopped on every way out: a normal end, an
exception, Ctrl-C, SIGTERM, a failed start.

Signals by stage: before the actors are launched a signal aborts the start (everything started is stopped, and a
new run's folder is removed); while Ray starts it is held until ray.init returns, since an exception inside
ray.init can orphan a half-started GCS; once the actors run, the first signal asks for a clean stop (the report
is written) and the second aborts at once, still through the same clean-up.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pgkd.basics.errors import InputError

log = logging.getLogger("pgkd.driver")
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A signal ended the run before (or instead of) a clean stop; BaseException, like KeyboardInterrupt, so
    no `except Exception` on the way swallows it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


class Signals:
    """What SIGINT and SIGTERM do at each stage: abort (start-up), hold (inside ray.init), stop (running)."""

    def __init__(self, progress):
        self.progress, self.mode, self.held, self.stop = progress, "abort", None, None
        self.exit_now = None  # once running, what a second signal does instead of raising into Ray's C code
        self.previous: dict[int, object] = {}

    def install(self) -> None:
        for sig in SIGNALS:
            previous = signal.signal(sig, self.handle)
            self.previous.setdefault(sig, previous)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def handle(self, signum, frame) -> None:
        if self.mode == "hold":
            self.held = signum
        elif self.mode == "stop":
            self.mode = "abort"
            self.progress(f"signal {signum}: stopping cleanly (send it again to exit now)")
            self.stop(signum)
        elif self.exit_now is not None:
            self.exit_now(signum)
        else:
            raise Interrupted(signum)

    def stop_cleanly(self, request) -> None:
        """From now on the first signal calls request(signum) (a clean stop through the bus)."""
        self.stop, self.mode = request, "stop"

    @contextmanager
    def held_during(self, what: str):
        """Hold signals while `what` runs; act on one right after. ray.init sets its own SIGTERM handler (it
        exits mid-start): it is kept from doing so, and ours is installed again afterwards anyway."""
        import ray._private.utils as ray_utils

        mode, self.mode = self.mode, "hold"
        original = ray_utils.set_sigterm_handler
        ray_utils.set_sigterm_handler = lambda handler: log.debug("kept Ray from replacing the SIGTERM handler")
        try:
            yield
        finally:
            ray_utils.set_sigterm_handler = original
            self.install()  # in case anything replaced ours after all
            self.mode = mode
        if self.held is not None:
            self.progress(f"signal {self.held} during {what}: stopping")
            raise Interrupted(self.held)


class RunSession:
    """The owner of one run's processes and folder (a context manager); see the module docstring."""

    def __init__(self, run_dir: Path, progress, fresh: bool):
        self.run_dir, self.progress, self.fresh = Path(run_dir), progress, fresh
        self.signals = Signals(progress)
        self.stack = ExitStack()
        self.launched = False  # actors started: from here a failure keeps the folder (resume needs it)
        self.urgent: list = []  # stops that must run before a second signal kills the children
        self.lease = None  # the driver's lease on the run in Redis (pgkd/bus/lease.py), once taken
        self.place = None  # the run's RunPlace (pgkd/place.py): its store and this machine's folder

    def __enter__(self) -> "RunSession":
        self.stack.__enter__()
        try:
            self.stack.enter_context(owner_only_files())
            self.signals.install()
            self.stack.callback(self.signals.restore)
            self._take_folder()
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc) -> bool:
        self.signals.mode = "hold"  # a signal now would cut the clean-up short; hold (and drop) it
        return self.stack.__exit__(*exc)

    def _take_folder(self) -> None:
        if self.fresh:
            if self.run_dir.exists():
                raise InputError(f"run folder {self.run_dir} exists already (`pgkd resume` continues a run)",
                                 field="run_id")
            self.run_dir.parent.mkdir(parents=True, exist_ok=True)
            self.run_dir.mkdir(mode=0o700)
            self.stack.callback(self._remove_unless_launched)
        else:
            self.run_dir.chmod(0o700)

    def _remove_unless_launched(self) -> None:
        if not self.launched:  # a failed start leaves nothing behind, not even an empty folder
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def own(self, stop, urgent: bool = False) -> None:
        """Call stop() on the way out (registered before the thing starts, so a half-started one is stopped).
        urgent: also on a second signal, before anything is killed (a watched server would be restarted)."""
        self.stack.callback(stop)
        if urgent:
            self.urgent.append(stop)

    def start_ray(self, start):
        """Run start() (which calls ray.init) with signals held and return what it returns; shut Ray down on the
        way out. None where the caller's own Ray runs already (tests): not ours to start or stop."""
        import ray

        if ray.is_initialized():
            return None
        self.own(ray.shutdown)
        with self.signals.held_during("Ray start"):
            return start()

    def running(self, request_stop) -> None:
        """The actors are launched: keep the folder from now on; a signal asks for a clean stop, a second one
        ends every process this run started and exits."""
        self.launched = True
        self.signals.stop_cleanly(request_stop)
        self.signals.exit_now = self._exit_now

    def _exit_now(self, signum: int) -> None:
        """A second signal once running. Raising here could land inside a Ray call (seen: a SystemError in
        ray.wait, then a clean-up that never finished and left GCS, actors and Redis running), so it stops the
        processes this driver started directly (the local Ray cluster, the embedded redis-server, their children;
        never those of a cluster it only joined) and exits. The data is safe: Redis writes with appendfsync
        always, and `pgkd resume` continues the run."""
        import psutil

        self.progress(f"signal {signum} again: stopping every process of the run now (`pgkd resume` continues it)")
        for stop in self.urgent:
            try:
                stop()
            except Exception as exc:  # the kill below still ends it
                log.warning("stopping on the second signal: %s", exc)
        children = psutil.Process().children(recursive=True)
        for child in children:
            try:
                child.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(children, timeout=5)
        os._exit(128 + signum)


@contextmanager
def owner_only_files():
    """Every file and folder this process (and what it starts: redis-server, Ray and its workers) creates is
    owner-only from its creation: run.json holds the bus password, the data is the user's."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)
