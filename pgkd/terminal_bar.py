"""The driver's progress bar in a terminal: elapsed time against the run's time budget, with the live numbers.

Only on a TTY; in a log (a Ray job, CI) the watcher's plain progress lines are enough.
"""
from __future__ import annotations

from pgkd.console import terminal


class TerminalBar:
    def __init__(self, budget_s: float, enabled: bool | None = None, file=None):
        file = file or terminal()
        enabled = file.isatty() if enabled is None else enabled
        self.file = file
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=int(budget_s), unit="s", desc="pgkd", dynamic_ncols=True, leave=True, file=file,
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f}s budget{postfix}")

    @property
    def active(self) -> bool:
        return self.bar is not None

    def update(self, elapsed: float, status: dict) -> None:
        if not self.bar:
            return
        t, best = status["teacher"], status["best"]
        self.bar.n = min(int(elapsed), self.bar.total)
        self.bar.set_postfix_str(f"generated {t.get('generated', 0):.0f} kept {t.get('kept', 0):.0f} | "
                                 f"versions {status['versions_scored']} | best "
                                 + (f"{best['macro_f1']:.3f}" if best and best.get("macro_f1") else "-"),
                                 refresh=True)

    def write(self, text: str) -> None:
        """A log line above the bar (plain print would tear it)."""
        from tqdm import tqdm

        tqdm.write(text, file=self.file)

    def close(self) -> None:
        if self.bar:
            self.bar.close()
