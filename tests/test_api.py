"""The Python API's names (pgkd.run, pgkd.resume, ...) load lazily from pgkd/api.py; a module or package of the
same name under pgkd/ would replace the function with itself once anything imported it (seen: pgkd/resume.py made
`pgkd.resume` a module in the full suite)."""
from pathlib import Path

import pgkd


def test_no_module_shadows_a_name_of_the_python_api():
    root = Path(pgkd.__file__).parent
    clashes = [name for name in pgkd.__all__ if (root / f"{name}.py").exists() or (root / name).is_dir()]
    assert not clashes, f"modules named like API functions: {clashes}"


def test_the_api_names_are_the_functions_even_after_every_top_module_is_imported():
    import importlib

    for path in Path(pgkd.__file__).parent.glob("*.py"):
        if path.stem not in ("__init__", "__main__"):
            importlib.import_module(f"pgkd.{path.stem}")
    for name in ("run", "demo", "resume", "status", "stop", "load_student", "load_config"):
        assert callable(getattr(pgkd, name)) and not isinstance(getattr(pgkd, name), type(pgkd)), name
