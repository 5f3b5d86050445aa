"""The run's terminal: pgkd's records stay on it, everything else written to stderr goes to the run's log file."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import logging, os, sys
from pathlib import Path
from pgkd.console import quiet_terminal, terminal
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
with quiet_terminal(Path(sys.argv[1]), verbose=sys.argv[2] == "1"):
    logging.getLogger("pgkd.driver").info("own line")
    logging.getLogger("ray").warning("ray line")
    os.write(2, b"c++ core line\\n")
    print("to stderr", file=sys.stderr, flush=True)
    terminal().write("bar line\\n")
logging.getLogger("pgkd.driver").info("after the run")
os.write(2, b"after, raw\\n")
"""


def run_script(tmp_path, verbose: bool) -> tuple[str, str]:
    log = tmp_path / "logs" / "driver.log"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(log), "1" if verbose else "0"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr, log.read_text() if log.exists() else ""


def test_quiet_terminal_keeps_pgkd_lines_and_files_the_rest(tmp_path):
    terminal, file = run_script(tmp_path, verbose=False)
    assert terminal.splitlines() == ["pgkd.driver: own line", "bar line", "pgkd.driver: after the run", "after, raw"]
    assert "ray line" in file and "c++ core line" in file and "to stderr" in file
    assert "own line" in file and "after the run" not in file  # the file has every record of the run, no more


def test_verbose_redirects_nothing(tmp_path):
    terminal, file = run_script(tmp_path, verbose=True)
    assert {"ray line", "c++ core line", "to stderr", "own line"} <= {l.split(": ")[-1] for l in terminal.splitlines()}
    assert file == ""
