"""Where a run's files live: `store`, where every node and every later command reads them (runs_dir/<run_id>, a
local folder or a URI; pgkd/basics/storage.py), and `local`, this machine's folder of the run (logs, the embedded
Redis, files written before they are stored). For a local runs_dir the two are one folder, as always; for object
storage `local` is node-local scratch and a file is published to `store` once it is whole."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pgkd.basics import storage
from pgkd.basics.atomic_files import write_atomic
from pgkd.basics.errors import InputError
from pgkd.basics.settings import check_safe_name


@dataclass(frozen=True)
class RunPlace:
    run_id: str
    store: str
    local: Path

    @classmethod
    def of(cls, runs_dir: str | Path, run_id: str) -> "RunPlace":
        try:
            check_safe_name(run_id)
        except ValueError as exc:
            raise InputError(str(exc), field="run_id") from None
        if storage.is_uri(str(runs_dir)):
            return cls(run_id, storage.join(str(runs_dir), run_id), storage.scratch_path() / "runs" / run_id)
        return cls(run_id, str(Path(runs_dir) / run_id), Path(runs_dir) / run_id)

    @property
    def remote(self) -> bool:
        return storage.is_uri(self.store)

    def stored(self, *parts: str) -> str:
        return storage.join(self.store, *parts)

    def shared(self, folder: str) -> str:
        """Where actors on every node find one of the run's folders (checkpoints, data): the store for a remote
        run, else the local folder as an absolute path."""
        return self.stored(folder) if self.remote else str((self.local / folder).resolve())

    def publish(self, *relative: str) -> None:
        """Copy local files of the run (paths relative to its folder) to the store; nothing for a local run."""
        if not self.remote:
            return
        for rel in relative:
            path = self.local / rel
            if path.is_file():
                storage.write_bytes(self.stored(*Path(rel).parts), path.read_bytes())

    def publish_folder(self, relative: str) -> str:
        """A committed local folder of the run (best_student) to the store; returns where it is to be read."""
        if not self.remote:
            return str(self.local / relative)
        return storage.upload_folder(self.local / relative, self.stored(relative))

    def read_text(self, relative: str) -> str:
        return storage.read_bytes(self.stored(relative)).decode()

    def read_json(self, relative: str) -> dict:
        try:
            return json.loads(self.read_text(relative))
        except FileNotFoundError:
            raise InputError(f"no run '{self.run_id}' here (looked for {self.stored(relative)})",
                             file=self.stored(relative)) from None
        except ValueError as exc:
            raise InputError(f"damaged file ({exc})", file=self.stored(relative)) from exc

    def fetch(self, relative: str) -> Path:
        """A stored file of the run as a local file (downloaded into `local` for a remote run)."""
        if not self.remote:
            return self.local / relative
        path = self.local / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, storage.read_bytes(self.stored(relative)))  # a live driver of this machine reads it
        return path

    def remove_stored(self, *relative: str) -> None:
        """Take files of a start that failed back out of the store (a retry with the same run id may go on)."""
        if self.remote:
            for rel in relative:
                storage.remove(self.stored(rel))
