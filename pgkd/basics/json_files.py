"""Reading a JSON file a user or an earlier run left: a damaged one is an InputError naming file and line."""
from __future__ import annotations

import json
from pathlib import Path

from pgkd.basics.errors import InputError


def read_json_file(path: str | Path) -> object:
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError("damaged: not UTF-8 text", file=str(path)) from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"damaged: not valid JSON ({exc.msg})", file=str(path), line=exc.lineno) from exc
