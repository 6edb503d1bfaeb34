"""The test matrix that ``make test`` (and so CI) runs. See docs/development.md.

- ``full``: the whole suite on Django 5.2 (Python 3.11) and Django 6.1 (Python 3.12), on SQLite.
- ``postgres``: the whole suite on Django 5.2 (Python 3.12) against PostgreSQL, with Redis as
  Django's cache and as django-q2's broker, started on loopback by ``.ci/services`` (which
  installs them with apt-get as root, and fails with the install command otherwise), plus
  ``tests/test_scale_out.py``, which only runs there.
- ``smoke``: every other supported pair of Django (4.2, 5.2, 6.0, 6.1) and Python (3.10 to
  3.13), on SQLite, running ``SMOKE_TESTS``: the files that touch what changes between Django
  versions (models and migrations, the admin, checks, signals and transactions, the task
  runners, the webhook views) and not the slow ones whose code is the same on every version
  (real clusters, the browser, the emulator's own protocol tests, the example project). The
  full suite on three cells and the smoke tests on nine keep ``make test`` well inside CI's
  90 minutes on 2 cores.

- ``lint``: ruff (check and format) and mypy with django-stubs on the package (config in
  pyproject.toml); ``docs``: ``mkdocs build --strict`` (a broken link or a page missing from
  the nav fails it); ``package``: ``tests/test_package.py`` builds the wheel and sdist, checks
  them with twine and installs the wheel in a fresh virtualenv. Together about two minutes.

Arguments after ``--`` are added to pytest's (``make test`` passes ``PYTEST_ARGS``). pytest's
exit code 5 (no test collected) fails the session like any other non-zero code. Each session
writes a JUnit report under ``.nox/reports``; ``.ci/summary`` adds them up into the closing line
of ``make test``.
"""

from __future__ import annotations

import glob
import os

import nox

nox.options.sessions = ["lint", "docs", "package", "full", "postgres", "smoke"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# Interpreters installed with pyenv are found by their version folder (its shims only answer
# for the selected version).
_PYENV = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
for _minor in ("3.10", "3.12", "3.13"):
    _found = sorted(glob.glob(os.path.join(_PYENV, "versions", f"{_minor}.*", "bin")))
    if _found:
        os.environ["PATH"] = _found[-1] + os.pathsep + os.environ["PATH"]

REPORTS = os.path.join(".nox", "reports")
FULL = [("3.11", "5.2"), ("3.12", "6.1")]
POSTGRES = ("3.12", "5.2")
# Django 4.2 supports Python 3.8-3.12; 5.2 3.10-3.13; 6.0 and 6.1 3.12 and later.
SUPPORTED = {
    "4.2": ("3.10", "3.11", "3.12"),
    "5.2": ("3.10", "3.11", "3.12", "3.13"),
    "6.0": ("3.12", "3.13"),
    "6.1": ("3.12", "3.13"),
}
SMOKE = [
    (python, django)
    for django, pythons in SUPPORTED.items()
    for python in pythons
    if (python, django) not in FULL
]
SMOKE_TESTS = [
    "tests/test_generation.py",
    "tests/test_publishing.py",
    "tests/test_tasks.py",
    "tests/test_admin.py",
    "tests/test_webhooks.py",
    "tests/test_settings_and_checks.py",
    "tests/test_validation.py",
    "tests/test_plugins.py",
    "tests/test_command.py",
]


def install(session: nox.Session, django: str, *extras: str, test: bool = True) -> None:
    """The package with its test extra and the Django series, unless a reused virtualenv has
    them already (installed after the last change to pyproject.toml)."""
    marker = os.path.join(session.virtualenv.location, f".installed-django{django}")
    if os.path.exists(marker) and os.path.getmtime(marker) > os.path.getmtime("pyproject.toml"):
        return
    wanted = ",".join((*(["test"] if test else []), *extras))
    session.install("--quiet", f"-e.[{wanted}]" if wanted else "-e.", f"Django~={django}.0")
    with open(marker, "w"):
        pass


def pytest_command(session: nox.Session, *args: str) -> list[str]:
    """pytest with ``args`` and the posargs, writing a JUnit report that ``.ci/summary`` adds up."""
    versions = "import django, platform; print(django.__version__, platform.python_version())"
    django, python = session.run("python", "-c", versions, silent=True).split()
    session.log(f"Django {django} on Python {python}")
    os.makedirs(REPORTS, exist_ok=True)
    report = os.path.join(REPORTS, f"{session.name}.xml".replace("/", "_"))
    return ["python", "-m", "pytest", f"--junitxml={report}", *args, *session.posargs]


@nox.session
@nox.parametrize("python,django", FULL, ids=[f"django{d}-py{p}" for p, d in FULL])
def full(session: nox.Session, django: str) -> None:
    """The whole suite on SQLite."""
    install(session, django)
    session.run(*pytest_command(session))


@nox.session(python=POSTGRES[0])
def postgres(session: nox.Session) -> None:
    """The whole suite on PostgreSQL and Redis (started and stopped by .ci/services)."""
    install(session, POSTGRES[1], "postgres")
    session.run("bash", ".ci/services", *pytest_command(session), external=True)


@nox.session
@nox.parametrize("python,django", SMOKE, ids=[f"django{d}-py{p}" for p, d in SMOKE])
def smoke(session: nox.Session, django: str) -> None:
    """The version-sensitive part of the suite on the other supported pairs."""
    install(session, django)
    session.run(*pytest_command(session, *SMOKE_TESTS))


@nox.session(python="3.12")
def lint(session: nox.Session) -> None:
    """ruff and mypy (django-stubs' plugin loads tests.settings, so the package is installed)."""
    install(session, "6.1", "lint", test=False)
    paths = ["nanobanana_django", "tests", "example_project", "bench", "noxfile.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
    session.run("mypy", "nanobanana_django")


@nox.session(python="3.12")
def docs(session: nox.Session) -> None:
    """The documentation site, strictly: any warning fails the build."""
    install(session, "6.1", "docs", test=False)
    session.run("mkdocs", "build", "--strict", "--quiet", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session(python="3.12")
def package(session: nox.Session) -> None:
    """Build, check and install the wheel (tests/test_package.py)."""
    install(session, "6.1", "release")
    session.run(*pytest_command(session, "tests/test_package.py"))
