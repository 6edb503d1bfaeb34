"""A brand-new ``startproject`` site, built from the README's install section alone.

The code blocks are read from README.md, so the README cannot drift from what works: the
model, the settings, the URLs and the commands are the README's, run as a new user would
(``manage.py`` in a temporary folder, a real ``qcluster``, the default SQLite settings).
"""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# Nothing but what the README's install section tells a user to check for.
DOCUMENTED_WARNINGS = {"nanobanana.W006"}


def readme_blocks():
    """The fenced code blocks of the README's install section, as (language, text)."""
    text = README.read_text()
    install = text[text.index("## Install") :]
    install = install[: install.index("\n## ", 1)]
    return re.findall(r"```(\w+)\n(.*?)```", install, re.S)


def block_starting_with(first_line):
    for _language, body in readme_blocks():
        if body.startswith(first_line):
            return body
    raise AssertionError(f"README's install section has no block starting {first_line!r}")


def shell_commands():
    """The README's ``python manage.py ...`` lines, without their comments."""
    [body] = [body for language, body in readme_blocks() if "makemigrations" in body]
    return [line.split("#")[0].split()[2:] for line in body.splitlines() if line.strip()]


@pytest.fixture
def site(tmp_path):
    """``startproject mysite`` + ``startapp blog``, completed as the README says."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REPLICATE_", "DJANGO_", "NANOBANANA_", "PYTHONPATH"))
    }

    def run(*args, check=True, timeout=120):
        result = subprocess.run(
            [sys.executable, *args],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result

    run("-m", "django", "startproject", "mysite", ".")
    run("manage.py", "startapp", "blog")
    (tmp_path / "blog" / "models.py").write_text(block_starting_with("# blog/models.py"))
    settings = tmp_path / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + "\n" + block_starting_with("# settings.py"))
    urls = tmp_path / "mysite" / "urls.py"
    urls.write_text(urls.read_text() + "\n" + block_starting_with("# urls.py"))
    run.path = tmp_path
    run.environment = environment
    return run


def cover_of(path, pk):
    with sqlite3.connect(path / "db.sqlite3") as db:
        return db.execute("select cover from blog_post where id = ?", (pk,)).fetchone()[0]


def test_the_readme_install_section_gives_a_new_site_its_first_image(site):
    commands = shell_commands()
    assert [c[0] for c in commands] == [
        "makemigrations",
        "migrate",
        "createcachetable",
        "check",
        "qcluster",
        "nanobanana_generate",
    ]
    for command in commands[:3]:
        site("manage.py", *command)

    check = site("manage.py", "check", check=False)
    assert check.returncode == 0, check.stderr
    reported = set(re.findall(r"nanobanana\.[EWI]\d{3}|\b[a-z_]+\.[EWI]\d{3}", check.stderr))
    assert reported <= DOCUMENTED_WARNINGS, check.stderr

    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=site.path,
        env=site.environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        created = site(
            "manage.py",
            "shell",
            "-c",
            "from blog.models import Post; "
            "print(Post.objects.create(title='Ten quiet cafés in Lisbon', category='travel', "
            "is_live=True).pk)",
        )
        pk = int(created.stdout.strip().splitlines()[-1])
        deadline = time.monotonic() + 90
        while not cover_of(site.path, pk):
            assert cluster.poll() is None, cluster.stdout.read()
            assert time.monotonic() < deadline, "no cover was attached by the cluster"
            time.sleep(0.5)
    finally:
        os.killpg(cluster.pid, signal.SIGTERM)
        try:
            output, _ = cluster.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            output, _ = cluster.communicate()

    name = cover_of(site.path, pk)
    assert name.startswith("nanobanana/")
    with Image.open(site.path / "media" / name) as image:
        assert image.size == (1376, 768)
    assert "Traceback" not in output and "OperationalError" not in output, output

    backfill = site("manage.py", *commands[-1])
    assert "Queued 0 generations" in backfill.stdout  # the live post already has its cover
