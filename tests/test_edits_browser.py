"""Conversational editing in a real browser (Chromium through Selenium, as in
tests/test_admin_browser.py, whose harness this uses): an editor opens an article's
generated image, writes an instruction, sees the new version in the thread and chooses it.

With ``NANOBANANA_UPDATE_SCREENSHOTS=1`` it writes ``docs/screenshots/edit-thread.png``.
"""

import pytest

from nanobanana_django.models import GeneratedImage
from nanobanana_django.services import generate_for
from tests import test_admin_browser as harness
from tests.testapp.models import Article

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.test_admin")]

browser = harness.browser


def test_an_editor_edits_an_articles_image_and_chooses_the_new_version(
    live_server, browser, admin_user, replicate_emulator, settings
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **replicate_emulator.settings(),
        "TASK_RUNNER": "immediate",
        "POLL_INTERVAL": 0.05,
    }
    article = Article.objects.create(title="Ten quiet cafés in Lisbon", topic="travel")
    original = generate_for(article)
    assert original.status == GeneratedImage.Status.SUCCEEDED, original.error_message
    wait = WebDriverWait(browser, harness.TIMEOUT)

    harness.log_in(browser, live_server, admin_user, f"/admin/testapp/article/{article.pk}/change/")
    browser.execute_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")

    # From the article's history to the image's page, where the edit form is.
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "a.nanobanana-edit-link"))).click()
    instruction = wait.until(EC.presence_of_element_located((By.NAME, "instruction")))
    instruction.send_keys("Make the background a rooftop at sunset")
    browser.find_element(By.CSS_SELECTOR, ".nanobanana-edit-form input[type=submit]").click()

    # Back on the page: the new version is in the thread, made and not yet in use.
    message = wait.until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success"))
    )
    edit = GeneratedImage.objects.get(parent=original)
    assert f"image #{edit.pk}" in message.text
    (received,) = replicate_emulator.images_received(edit.prediction_id)
    with original.image.open("rb") as file:
        assert received.data == file.read()  # the edit was sent the article's image
    versions = browser.find_elements(By.CSS_SELECTOR, ".nanobanana-thread .nanobanana-version")
    assert len(versions) == 2
    assert "Make the background a rooftop at sunset" in versions[1].text
    assert "Succeeded" in versions[1].text and "In use" in versions[0].text
    thumbnails = browser.find_elements(By.CSS_SELECTOR, ".nanobanana-thread img")
    wait.until(lambda driver: all(harness.loaded(driver, image) for image in thumbnails))
    save_thread_screenshot(browser)

    # Choose it for the article.
    versions[1].find_element(By.CSS_SELECTOR, "a.nanobanana-use-button").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "body.nanobanana-use")))
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    message = wait.until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success"))
    )
    assert f"now uses image #{edit.pk}" in message.text
    article.refresh_from_db()
    assert article.header_image.name == edit.image.name


def save_thread_screenshot(driver) -> None:
    """The top of the page down to the edit form: the thread is what the docs show."""
    import base64

    bottom = driver.execute_script(
        "const box = document.getElementById('nanobanana-edit').getBoundingClientRect();"
        "return Math.ceil(box.bottom + window.scrollY + 16);"
    )
    width = driver.execute_script("return document.documentElement.clientWidth")
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": bottom, "scale": 1},
        },
    )
    harness.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (harness.SCREENSHOTS / "edit-thread.png").write_bytes(base64.b64decode(shot["data"]))
