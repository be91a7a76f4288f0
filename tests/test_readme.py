"""The README's Python examples type-check, as a user's editor would check them."""

from __future__ import annotations

import re
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python blocks of a Markdown text."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


def test_the_readme_has_python_examples():
    assert python_blocks((ROOT / "README.md").read_text())


def test_the_readme_examples_type_check(tmp_path):
    blocks = python_blocks((ROOT / "README.md").read_text())
    files = []
    for n, block in enumerate(blocks):
        path = tmp_path / f"readme_example_{n}.py"
        path.write_text(block)
        files.append(str(path))
    out, err, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "--strict-optional",
            *files,
        ]
    )
    assert status == 0, out + err


def test_a_type_error_in_an_example_is_caught(tmp_path):
    path = tmp_path / "wrong.py"
    path.write_text("from actorgrpc import spawn\n\nspawn().result(5).nope\n")
    out, _err, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            str(path),
        ]
    )
    assert status == 1 and "nope" in out, out
