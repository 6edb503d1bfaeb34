"""The example project, run as a user runs it: ``python example_project/manage.py ...``."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run(tmp_path):
    def run(*args, env=None):
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("REPLICATE_", "DJANGO_SETTINGS_MODULE"))
        }
        environment.update(
            DJANGO_SETTINGS_MODULE="example_project.settings",
            DEMO_DATABASE=str(tmp_path / "demo.sqlite3"),
            DEMO_MEDIA_ROOT=str(tmp_path / "media"),
            **(env or {}),
        )
        return subprocess.run(
            [sys.executable, "example_project/manage.py", *args],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def header_images(tmp_path):
    with sqlite3.connect(tmp_path / "demo.sqlite3") as db:
        return dict(db.execute("select id, header_image from blog_article order by id"))


def test_the_demo_works_offline_with_placeholders(run, tmp_path):
    result = run("demo", "--no-server")
    assert result.returncode == 0, result.stderr
    assert "placeholders" in result.stdout
    images = header_images(tmp_path)
    published = [name for name in images.values() if name]
    assert len(published) == 4  # the four published articles; the draft has none
    for name in published:
        with Image.open(tmp_path / "media" / name) as image:
            assert image.size == (1376, 768)


def test_the_command_against_the_emulator_bills_one_prediction(run, tmp_path, replicate_emulator):
    emulator_env = {
        "REPLICATE_API_TOKEN": replicate_emulator.token,
        "REPLICATE_BASE_URL": replicate_emulator.base_url,
    }
    assert run("migrate", env=emulator_env).returncode == 0
    article = run(
        "shell",
        "-c",
        "from blog.models import Article; "
        "print(Article.objects.create(title='Harbour lights', topic='photography').pk)",
        env=emulator_env,
    )
    pk = article.stdout.strip().splitlines()[-1]  # Django 5.2+ prints an import banner first

    result = run("nanobanana_generate", "blog.Article", "--ids", pk, "--sync", env=emulator_env)

    assert result.returncode == 0, result.stderr
    assert replicate_emulator.created_count == 1
    name = header_images(tmp_path)[int(pk)]
    with Image.open(tmp_path / "media" / name) as image:
        assert image.size == (1376, 768)  # the default 16:9 at 1K


def test_a_wrong_token_fails_without_a_traceback(run, tmp_path, replicate_emulator):
    env = {"REPLICATE_API_TOKEN": "r8_wrong", "REPLICATE_BASE_URL": replicate_emulator.base_url}
    run("migrate", env=env)
    run(
        "shell", "-c", "from blog.models import Article; Article.objects.create(title='x')", env=env
    )

    result = run("nanobanana_generate", "blog.Article", "--ids", "1", "--sync", env=env)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "token" in result.stderr
    assert "r8_wrong" not in result.stderr + result.stdout
    assert header_images(tmp_path) == {1: ""}
    with sqlite3.connect(tmp_path / "demo.sqlite3") as db:
        status, code = db.execute(
            "select status, error_code from nanobanana_django_generatedimage"
        ).fetchone()
    assert (status, code) == ("failed", "authentication_failed")
    assert replicate_emulator.created_count == 0


def test_a_bad_id_is_a_clear_error(run):
    run("migrate")
    result = run("nanobanana_generate", "blog.Article", "--ids", "seven", "--sync")
    assert result.returncode == 1
    assert "'seven' is not a valid blog.Article id" in result.stderr
    assert "Traceback" not in result.stderr
