import pytest

pytest_plugins = ["nanobanana_django.testing.pytest_plugin"]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Each test stores files in its own folder, so leftovers never leak between tests."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"
