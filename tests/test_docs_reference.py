"""The reference pages agree with the code, both ways.

Settings, system check ids and error codes are collected from the package itself (the
settings class by introspection, check ids and error codes from the source's syntax tree),
never from a list kept here, so a new setting, check or code without its row in docs/ fails,
and so does a row for one that no longer exists.
"""

import ast
import re
from decimal import Decimal
from pathlib import Path

import pytest

import nanobanana_django
from nanobanana_django.conf import AppSettings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = Path(nanobanana_django.__file__).resolve().parent
CHECK_ID = re.compile(r"^nanobanana\.[EWI]\d{3}$")
SETTING = re.compile(r"`([A-Z][A-Z0-9_]+)`")
CODE = re.compile(r"^[a-z][a-z0-9_]*$")


# --------------------------------------------------------------------------- reading docs


def table_rows(document):
    """The cells of every body row of every Markdown table in ``document``."""
    rows = []
    for line in (DOCS / document).read_text().splitlines():
        line = line.strip()
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append(cells)
    return rows


def documented_settings():
    """``{key: (default, meaning)}`` from docs/settings.md's tables (a row may name several
    keys, as ``DAILY_BUDGET``, ``MONTHLY_BUDGET`` do)."""
    found = {}
    for cells in table_rows("settings.md"):
        if len(cells) < 3 or cells[0] == "key":
            continue
        for key in SETTING.findall(cells[0]):
            found[key] = (cells[1], cells[2])
    return found


def first_column(document, pattern):
    return {
        match
        for cells in table_rows(document)
        for match in re.findall(r"`([^`]+)`", cells[0])
        if re.match(pattern, match)
    }


# --------------------------------------------------------------------------- reading code


def package_trees():
    """Every module of the package but its migrations and its testing emulators (whose
    ``code=`` and ids are the emulated services', not ours), as (path, syntax tree)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if parts[0] in ("migrations", "testing"):
            continue
        yield path, ast.parse(path.read_text(), filename=str(path))


def strings_in(node):
    """The string constants of an expression (``"a" if x else None`` gives ``{"a"}``)."""
    return {
        child.value
        for child in ast.walk(node)
        if isinstance(child, ast.Constant) and isinstance(child.value, str)
    }


def check_ids_in_code():
    ids = set()
    for _path, tree in package_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg == "id":
                        ids |= {s for s in strings_in(keyword.value) if CHECK_ID.match(s)}
    return ids


def name_of(node):
    """``Foo`` for ``Foo`` and ``module.Foo``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else None


def error_classes(trees):
    """The names of NanoBananaError and every class in the package derived from it."""
    classes = [
        node for _path, tree in trees for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
    ]
    names = {"NanoBananaError"}
    while True:
        more = {c.name for c in classes if {name_of(base) for base in c.bases} & names} - names
        if not more:
            return names
        names |= more


def error_codes_in_code():
    """Every ``error_code`` a row can be given: the ``code`` of each error class, each
    ``code=`` passed to one, and each literal ``error_code`` written to a row (a
    ``ValidationError``'s ``code=`` is a form's, not a row's)."""
    trees = list(package_trees())
    errors = error_classes(trees)
    codes = set()
    for _path, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name in errors:
                for statement in node.body:
                    if (
                        isinstance(statement, ast.Assign)
                        and any(
                            isinstance(target, ast.Name) and target.id == "code"
                            for target in statement.targets
                        )
                        and isinstance(statement.value, ast.Constant)
                    ):
                        codes.add(statement.value.value)
            elif isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg == "error_code" or (
                        keyword.arg == "code" and name_of(node.func) in errors
                    ):
                        codes |= strings_in(keyword.value)
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "error_code":
                        codes |= strings_in(value)
    return {code for code in codes if code and CODE.match(code)}


def mismatch(in_code, in_docs):
    """What the code has that the docs miss, and the reverse."""
    return sorted(set(in_code) - set(in_docs)), sorted(set(in_docs) - set(in_code))


# --------------------------------------------------------------------------- settings


def test_every_setting_has_a_row_with_its_default_and_meaning_and_no_row_is_stale():
    documented = documented_settings()
    missing, stale = mismatch(AppSettings.names(), documented)
    assert not missing, f"settings without a row in docs/settings.md: {missing}"
    assert not stale, f"docs/settings.md documents keys that are not settings: {stale}"
    for key, (default, meaning) in documented.items():
        assert default and meaning, f"docs/settings.md: {key} needs a default and a meaning"


def literal(text):
    """The Python value of a default cell that is one literal in backticks, else a sentinel."""
    match = re.fullmatch(r"`([^`]+)`", text)
    if not match:
        return pytest
    try:
        return ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        return pytest


def same(actual, documented):
    if isinstance(actual, (int, float, Decimal)) and not isinstance(actual, bool):
        return isinstance(documented, (int, float)) and Decimal(str(actual)) == Decimal(
            str(documented)
        )
    if isinstance(actual, (list, tuple)):
        return isinstance(documented, (list, tuple)) and list(actual) == list(documented)
    return actual == documented


def test_the_documented_literal_defaults_are_the_real_ones(settings):
    settings.NANOBANANA = {}
    app_settings = AppSettings()
    wrong = {}
    for key, (default, _meaning) in documented_settings().items():
        expected = literal(default)
        if expected is pytest:
            continue  # prose such as "none" or "env REPLICATE_API_TOKEN"
        actual = getattr(app_settings, key)
        if not same(actual, expected):
            wrong[key] = (default, actual)
    assert not wrong, f"docs/settings.md defaults that the code does not have: {wrong}"


def test_a_setting_added_without_docs_is_reported():
    class WithANewSetting(AppSettings):
        @property
        def SHINY_NEW_SETTING(self):
            return 1

    missing, _stale = mismatch(WithANewSetting.names(), documented_settings())
    assert missing == ["SHINY_NEW_SETTING"]


# --------------------------------------------------------------------------- checks


def test_every_system_check_id_is_documented_and_no_documented_id_is_stale():
    in_code = check_ids_in_code()
    assert len(in_code) > 10, "the check ids were not found in the source"
    missing, stale = mismatch(in_code, first_column("checks.md", CHECK_ID.pattern))
    assert not missing, f"check ids without a row in docs/checks.md: {missing}"
    assert not stale, f"docs/checks.md lists ids no check uses: {stale}"


# --------------------------------------------------------------------------- error codes


def test_every_error_code_has_a_row_saying_what_to_do_and_no_row_is_stale():
    in_code = error_codes_in_code()
    assert {"authentication_failed", "enqueue_failed", "internal_error"} <= in_code
    rows = {
        code: cells
        for cells in table_rows("errors.md")
        for code in re.findall(r"^`([a-z_]+)`$", cells[0])
    }
    missing, stale = mismatch(in_code, rows)
    assert not missing, f"error codes without a row in docs/errors.md: {missing}"
    assert not stale, f"docs/errors.md lists codes the package never records: {stale}"
    for code, cells in rows.items():
        assert len(cells) == 3 and all(cells), f"docs/errors.md: {code} needs what and what to do"


def test_an_error_class_added_without_docs_is_reported(tmp_path, monkeypatch):
    module = tmp_path / "nanobanana_django"
    module.mkdir()
    (module / "new.py").write_text(
        "class Melted(exceptions.ProviderError):\n    code = 'melted'\n"
        "class Frozen(Melted):\n    pass\n"
        "def f():\n    raise Frozen('x', code='frozen')\n"
        "def g():\n    raise ValidationError('a form field', code='required')\n"
        "class Unrelated:\n    code = 'not_an_error'\n"
    )
    (module / "exceptions.py").write_text(
        "class NanoBananaError(Exception):\n    code = 'error'\n"
        "class ProviderError(NanoBananaError):\n    code = 'provider_error'\n"
    )
    monkeypatch.setattr(f"{__name__}.PACKAGE", module)
    assert error_codes_in_code() == {"error", "provider_error", "melted", "frozen"}


# --------------------------------------------------------------------------- pages


def test_the_quickstart_has_the_readme_install_blocks_word_for_word_in_order():
    """tests/test_new_site.py runs the README's install section on a new site; the
    quickstart must show exactly those blocks, so it is proven by that test too."""
    readme = (ROOT / "README.md").read_text()
    install = readme[readme.index("## Install") :]
    install = install[: install.index("\n## ", 1)]
    readme_blocks = re.findall(r"```\w+\n.*?```", install, re.S)
    quickstart = re.findall(r"```\w+\n.*?```", (DOCS / "quickstart.md").read_text(), re.S)
    assert len(readme_blocks) == 5
    positions = [quickstart.index(block) for block in readme_blocks if block in quickstart]
    assert len(positions) == len(readme_blocks), "a README install block is not in quickstart.md"
    assert positions == sorted(positions), "quickstart.md has the README's blocks out of order"


def test_every_docs_link_in_the_readme_points_at_a_file():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(((?:docs/|CHANGELOG)[^)#]*)", readme)
    assert links
    assert [link for link in links if not (ROOT / link).exists()] == []


def test_every_page_is_in_the_site_nav():
    """mkdocs --strict says so too, but only where the docs session runs."""
    nav = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r"^\s*- (?:[^:\n]+: )?([\w./-]+\.md)\s*$", nav, re.M))
    pages = {path.name for path in DOCS.glob("*.md")}
    assert pages - listed == set(), "add these pages to mkdocs.yml's nav"
    assert listed - pages == set(), "mkdocs.yml's nav names pages that do not exist"
