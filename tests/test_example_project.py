"""The example project, run as a user runs it: ``python example_project/manage.py ...``."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.test_admin_browser import browser, loaded, save_screenshot  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


def demo_environment(tmp_path, **extra):
    """This machine's environment, less any Replicate account, pointed at a fresh demo."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REPLICATE_", "DJANGO_SETTINGS_MODULE"))
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DEMO_DATABASE=str(tmp_path / "demo.sqlite3"),
        DEMO_MEDIA_ROOT=str(tmp_path / "media"),
        **extra,
    )
    return environment


@pytest.fixture
def run(tmp_path):
    def run(*args, env=None):
        environment = demo_environment(tmp_path, **(env or {}))
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


def test_the_demo_seeds_a_brand_kit_that_its_house_style_preset_sends(run, tmp_path):
    assert run("migrate").returncode == 0
    script = (
        "from blog.management.commands.demo import seed_brand_kit; seed_brand_kit(); "
        "seed_brand_kit(); "  # twice: no duplicates
        "from nanobanana_django.services import create_generation; "
        "row = create_generation(None, prompt='A harbour at dawn', preset='house_style'); "
        "print([entry['name'] for entry in row.reference_images])"
    )
    result = run("shell", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "['Palette', 'Wordmark', 'Pattern']"
    with sqlite3.connect(tmp_path / "demo.sqlite3") as db:
        files = [
            name for (name,) in db.execute("select image from nanobanana_django_referenceimage")
        ]
    assert len(files) == 3
    for name in files:
        with Image.open(tmp_path / "media" / name) as image:
            assert image.format == "PNG" and image.size == (1000, 600)


def test_the_command_against_the_emulator_bills_one_prediction(run, tmp_path, replicate_emulator):
    emulator_env = {
        "REPLICATE_API_TOKEN": replicate_emulator.token,
        "REPLICATE_BASE_URL": replicate_emulator.base_url,
    }
    assert run("migrate", env=emulator_env).returncode == 0
    assert run("createcachetable", env=emulator_env).returncode == 0
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
    run("createcachetable", env=env)
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


class FormFields(HTMLParser):
    """The fields a browser would submit from the page's main form."""

    def __init__(self):
        super().__init__()
        self.fields, self._select, self._textarea = {}, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name:
            if attrs.get("type") in ("checkbox", "radio") and "checked" not in attrs:
                return
            if attrs.get("type") in ("submit", "file"):
                return
            self.fields[name] = attrs.get("value", "")
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in attrs:
            self.fields[self._select] = attrs.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self.fields[self._textarea] += data


def fields_of(html):
    parser = FormFields()
    parser.feed(html)
    return parser.fields


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def demo_server(tmp_path):
    """``manage.py demo`` serving on a free port (its seeded articles have their images once
    it answers); yields its base URL, and stops it as Ctrl-C does."""
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "example_project/manage.py", "demo", "--addrport", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=demo_environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/admin/login/", timeout=10)
                break
            except httpx.ConnectError:
                assert demo.poll() is None, "the demo stopped"
                assert time.monotonic() < deadline, "the demo server never came up"
                time.sleep(0.3)
        yield base
    finally:
        demo.send_signal(signal.SIGINT)  # as Ctrl-C: runserver stops, then the cluster
        demo.wait(timeout=30)


def test_publishing_in_the_demo_admin_gives_an_image_with_no_further_action(tmp_path):
    with demo_server(tmp_path) as base, httpx.Client(base_url=base, timeout=10) as client:
        login = client.get("/admin/login/")
        form = fields_of(login.text)
        form.update(username="admin", password="admin")
        assert client.post("/admin/login/?next=/admin/", data=form).status_code == 302

        draft = header_images(tmp_path)
        [draft_id] = [pk for pk, name in draft.items() if not name]
        page = client.get(f"/admin/blog/article/{draft_id}/change/")
        form = fields_of(page.text)
        assert form["status"] == "draft"
        form["status"] = "published"
        saved = client.post(f"/admin/blog/article/{draft_id}/change/", data=form)
        assert saved.status_code == 302, saved.text[:2000]

        deadline = time.monotonic() + 60
        while not header_images(tmp_path)[draft_id]:
            assert time.monotonic() < deadline, "no image appeared after publishing"
            time.sleep(0.3)
        image = client.get(f"/media/{header_images(tmp_path)[draft_id]}")
        assert image.headers["content-type"] == "image/jpeg"


def test_the_public_blog_shows_every_header_image_in_a_browser(tmp_path, browser):  # noqa: F811
    """The blog at ``/``, reached from the admin's "View site": list and article pages whose
    ``{% header_image %}`` images all load, at every width of their srcset."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    with demo_server(tmp_path) as base:
        browser.get(f"{base}/admin/login/?next=/admin/")
        browser.find_element(By.NAME, "username").send_keys("admin")
        browser.find_element(By.NAME, "password").send_keys("admin")
        browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        view_site = wait.until(
            EC.presence_of_element_located((By.CSS_SELECTOR, "#user-tools a[href='/']"))
        )
        assert view_site.text.lower() == "view site"
        view_site.click()

        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "ul.articles")))
        images = browser.find_elements(By.CSS_SELECTOR, "ul.articles img")
        assert len(images) == 4  # the published articles; the draft is not listed
        wait.until(lambda driver: all(loaded(driver, image) for image in images))
        for image in images:
            assert image.get_attribute("alt") and image.get_attribute("loading") == "lazy"
            assert (image.get_dom_attribute("width"), image.get_dom_attribute("height")) == (
                "1376",
                "768",
            )
            widths = []
            for entry in image.get_dom_attribute("srcset").split(", "):
                url, width = entry.split(" ")
                assert httpx.get(base + url, timeout=10).headers["content-type"] == "image/jpeg"
                widths.append(width)
            assert widths == ["480w", "768w", "1024w", "1376w"]
            # About 300 px wide on the list: the browser took the 480 px rendition.
            assert browser.execute_script("return arguments[0].currentSrc", image).endswith(
                "-480w.jpg"
            )
        title = browser.find_element(By.CSS_SELECTOR, "ul.articles h2").text

        browser.find_element(By.CSS_SELECTOR, "ul.articles a").click()
        heading = wait.until(EC.presence_of_element_located((By.TAG_NAME, "h1")))
        assert heading.text == title
        [image] = browser.find_elements(By.CSS_SELECTOR, "article img")
        wait.until(lambda driver: loaded(driver, image))
        assert image.get_attribute("alt") == title
        save_screenshot(browser, "public-detail.png")

        drafts = [pk for pk, name in header_images(tmp_path).items() if not name]
        assert httpx.get(f"{base}/articles/{drafts[0]}/", timeout=10).status_code == 404


def test_the_example_switches_to_gemini_from_the_environment(run, tmp_path, gemini_emulator):
    env = {
        "NANOBANANA_PROVIDER": "gemini",
        "GEMINI_API_KEY": gemini_emulator.api_key,
        "GEMINI_BASE_URL": gemini_emulator.base_url,
    }
    assert run("migrate", env=env).returncode == 0
    article = run(
        "shell",
        "-c",
        "from blog.models import Article; print(Article.objects.create(title='Tram lines').pk)",
        env=env,
    )
    pk = article.stdout.strip().splitlines()[-1]

    result = run("nanobanana_generate", "blog.Article", "--ids", pk, "--sync", env=env)

    assert result.returncode == 0, result.stderr
    assert gemini_emulator.counts["generate"] == 1
    with Image.open(tmp_path / "media" / header_images(tmp_path)[int(pk)]) as image:
        assert (image.format, image.size) == ("JPEG", (1376, 768))


def test_the_example_reads_its_daily_budget_from_the_environment(run, tmp_path, gemini_emulator):
    env = {
        "NANOBANANA_PROVIDER": "gemini",
        "GEMINI_API_KEY": gemini_emulator.api_key,
        "GEMINI_BASE_URL": gemini_emulator.base_url,
        "NANOBANANA_DAILY_BUDGET": "0.05",  # less than one 1K image (0.067 USD)
    }
    assert run("migrate", env=env).returncode == 0
    run(
        "shell", "-c", "from blog.models import Article; Article.objects.create(title='x')", env=env
    )

    result = run("nanobanana_generate", "blog.Article", "--ids", "1", "--sync", env=env)

    assert result.returncode == 1
    assert "daily budget of 0.05 USD" in result.stderr
    assert gemini_emulator.counts["generate"] == 0


def test_the_example_runs_as_many_gemini_calls_at_once_as_gemini_concurrency_says(run):
    env = {"NANOBANANA_PROVIDER": "gemini", "GEMINI_API_KEY": "k", "GEMINI_CONCURRENCY": "7"}
    result = run(
        "shell",
        "-c",
        "from nanobanana_django.providers import get_provider; "
        "print(get_provider('gemini', sync=False).concurrency)",
        env=env,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "7"
