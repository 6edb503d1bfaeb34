"""The package as a user gets it: the built wheel and sdist, installed in a fresh virtualenv.

The tests marked ``package`` build with ``python -m build`` and install from PyPI, so they
run in the nox session ``package`` (``make test``) and when this file is named, not in the
other sessions. The metadata tests below them are quick and run everywhere.
"""

import ast
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import nanobanana_django

tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml")
ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def noxfile_supported():
    """``SUPPORTED`` from noxfile.py: the Django series and the Pythons each is tested on."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "SUPPORTED":
            return ast.literal_eval(node.value)
    raise AssertionError("noxfile.py has no SUPPORTED")


def run(*args, cwd=ROOT, env=None, timeout=600):
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result


# --------------------------------------------------------------------------- metadata


def test_the_classifiers_name_exactly_the_tested_django_and_python_versions():
    supported = noxfile_supported()
    classifiers = PYPROJECT["project"]["classifiers"]
    djangos = {c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Framework :: Django :")}
    pythons = {
        c.rsplit(" :: ", 1)[1]
        for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert djangos == set(supported)
    assert pythons == {python for series in supported.values() for python in series}
    assert PYPROJECT["project"]["requires-python"] == f">={min(pythons, key=lambda v: (len(v), v))}"
    assert f"Django>={min(supported, key=float)}" in PYPROJECT["project"]["dependencies"]


def test_the_version_and_the_changelog_agree():
    """The top section is ``Unreleased`` or this version, and no section is for a later one."""
    version = nanobanana_django.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?", version)
    headings = re.findall(r"^## (.+)$", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings and headings[0].split()[0] in ("Unreleased", version)

    def key(text):
        return tuple(int(part) for part in re.findall(r"\d+", text)[:3])

    released = [h.split()[0] for h in headings if re.match(r"\d", h)]
    assert all(key(r) <= key(version) for r in released), released
    alpha = "Development Status :: 3 - Alpha" in PYPROJECT["project"]["classifiers"]
    assert alpha == ("Status: alpha" in (ROOT / "README.md").read_text())


def test_the_readme_reads_well_as_the_long_description():
    """PyPI shows README.md: no HTML it would strip, no relative images (they would break)."""
    readme = (ROOT / "README.md").read_text()
    assert PYPROJECT["project"]["readme"] == "README.md"
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert all(src.startswith("https://") for src in images), images
    assert "<" not in re.sub(r"```.*?```|`[^`]*`", "", readme, flags=re.S)


# --------------------------------------------------------------------------- the build


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    [wheel] = out.glob("*.whl")
    [sdist] = out.glob("*.tar.gz")
    return wheel, sdist


@pytest.mark.package
def test_the_wheel_and_sdist_pass_twine_check(dist):
    result = run(sys.executable, "-m", "twine", "check", "--strict", *dist)
    assert result.stdout.count("PASSED") == 2, result.stdout


@pytest.mark.package
def test_the_wheel_has_migrations_templates_static_and_types_and_no_tests(dist):
    wheel, _sdist = dist
    version = nanobanana_django.__version__
    assert wheel.name == f"nanobanana_django-{version}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    migrations = ROOT / "nanobanana_django" / "migrations"
    for migration in migrations.glob("0*.py"):
        assert f"nanobanana_django/migrations/{migration.name}" in names
    for kind in ("templates", "static"):
        source = ROOT / "nanobanana_django" / kind
        files = [p for p in source.rglob("*") if p.is_file()]
        assert files
        for path in files:
            assert path.relative_to(ROOT).as_posix() in names
    assert "nanobanana_django/py.typed" in names
    assert f"nanobanana_django-{version}.dist-info/licenses/LICENSE" in names
    tops = {name.split("/")[0] for name in names}
    assert tops == {"nanobanana_django", f"nanobanana_django-{version}.dist-info"}, tops
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


@pytest.mark.package
def test_the_sdist_has_the_changelog_docs_and_tests(dist):
    _wheel, sdist = dist
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for name in ("README.md", "LICENSE", "CHANGELOG.md", "docs/index.md", "tests/settings.py"):
        assert name in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


@pytest.mark.package
def test_the_installed_wheel_makes_a_placeholder_image_on_a_new_site(dist, tmp_path):
    """A fresh virtualenv with the wheel and its dependencies from PyPI, and a new
    ``startproject`` site: migrate, check, and a placeholder image stored in MEDIA_ROOT."""
    wheel, _sdist = dist
    # Nothing from the checkout: with it on PYTHONPATH pip would find the package installed.
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REPLICATE_", "DJANGO_", "NANOBANANA_", "PYTHONPATH", "GEMINI_"))
    }
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, env=environment)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", wheel, cwd=tmp_path, env=environment)
    site = tmp_path / "site"
    site.mkdir()
    run(python, "-m", "django", "startproject", "mysite", ".", cwd=site, env=environment)
    settings = site / "mysite" / "settings.py"
    settings.write_text(
        settings.read_text() + '\nINSTALLED_APPS += ["django_q", "nanobanana_django"]\n'
        'MEDIA_ROOT = BASE_DIR / "media"\nMEDIA_URL = "/media/"\n'
        'CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", '
        '"LOCATION": "nanobanana_cache"}}\n'
    )

    def manage(*args):
        return run(python, "manage.py", *args, cwd=site, env=environment)

    manage("migrate", "--no-input")
    manage("createcachetable")
    check = manage("check")
    assert "nanobanana.E" not in check.stdout + check.stderr
    made = manage(
        "shell",
        "-c",
        "import nanobanana_django; from nanobanana_django.services import generate_image; "
        "row = generate_image('a lighthouse at dawn'); "
        "print(nanobanana_django.__file__); print(row.status, row.provider, row.image.name)",
    )
    location, outcome = made.stdout.strip().splitlines()[-2:]
    assert location.startswith(str(venv)), "the test ran the checkout, not the wheel"
    status, provider, name = outcome.split()
    assert (status, provider) == ("succeeded", "placeholder")
    assert (site / "media" / name).stat().st_size > 1000
