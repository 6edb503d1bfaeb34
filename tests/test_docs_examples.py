"""Examples in docs/ run as written (a broken example is a broken promise)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(document):
    """The ``python`` code blocks of ``document`` that start with a ``# path`` comment."""
    text = (ROOT / "docs" / document).read_text()
    blocks = re.findall(r"```python\n(# (\S+)\n.*?)```", text, re.S)
    return {path: body for body, path in blocks}


def test_the_testing_guide_example_passes_against_the_example_project(tmp_path):
    blocks = python_blocks("testing.md")
    for path in ("conftest.py", "tests/test_header_images.py"):
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(blocks[path])
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REPLICATE_", "DJANGO_", "NANOBANANA_"))
    }
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT / "example_project"), str(ROOT)])
    media = ROOT / "example_project" / "media"
    before = sorted(media.rglob("*")) if media.exists() else []

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            tmp_path,
            "--ds=example_project.settings",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    after = sorted(media.rglob("*")) if media.exists() else []
    assert after == before  # nothing written into the site's real media folder
