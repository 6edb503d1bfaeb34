"""The admin in a real browser: Debian's chromium, driven by Selenium, against the live server.

``make test`` installs ``chromium`` and ``chromium-driver`` when they are missing
(``.ci/ensure-browser``). Without them the test is skipped, except in CI, where it fails.
The screenshots it takes are the ones in ``docs/admin.md``: they are written to
``docs/screenshots/`` when ``NANOBANANA_UPDATE_SCREENSHOTS=1`` is set, and to a temporary
folder otherwise (so that running the tests leaves the work tree clean).
"""

import base64
import os
import tempfile
from pathlib import Path

import pytest

from nanobanana_django.models import GeneratedImage
from tests.testapp.models import Article

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = (
    Path(__file__).resolve().parent.parent / "docs" / "screenshots"
    if os.environ.get("NANOBANANA_UPDATE_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "nanobanana-screenshots"
)
TIMEOUT = 30

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.test_admin")]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_browser() -> None:
    """Skip without a browser; in CI, fail instead, so the test can never silently not run."""
    missing = [name for name in (CHROMIUM, CHROMEDRIVER) if not os.access(name, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    if missing:
        reason = (
            f"The admin browser test needs {', '.join(missing)}. `make test` run as root "
            "installs them (apt-get install chromium chromium-driver)."
        )
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture
def browser(tmp_path):
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def test_an_editor_generates_header_images_for_two_articles(
    live_server, browser, admin_user, replicate_emulator, settings
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **replicate_emulator.settings(),
        "TASK_RUNNER": "immediate",
        "POLL_INTERVAL": 0.05,
    }
    lisbon = Article.objects.create(title="Ten quiet cafés in Lisbon", topic="travel")
    Article.objects.create(title="How we cut our cloud bill by 40%", topic="engineering")
    sourdough = Article.objects.create(
        title="A beginner’s guide to sourdough in a small kitchen", topic="food"
    )
    wait = WebDriverWait(browser, TIMEOUT)

    # Log in and select two articles.
    log_in(browser, live_server, admin_user, "/admin/testapp/article/")
    wait.until(EC.presence_of_element_located((By.ID, "result_list")))
    # Narrower pages for the screenshots: the navigation sidebar closed, as the « does.
    browser.execute_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    browser.refresh()
    wait.until(EC.presence_of_element_located((By.ID, "result_list")))
    for article in (lisbon, sourdough):
        browser.find_element(
            By.CSS_SELECTOR, f"input[name=_selected_action][value='{article.pk}']"
        ).click()

    # Run the action: an intermediate page in the admin's look.
    Select(browser.find_element(By.NAME, "action")).select_by_value("generate_header_image")
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "body.nanobanana-generate")))
    page = browser.find_element(By.ID, "content").text
    assert "Ten quiet cafés in Lisbon" in page and "sourdough" in page
    assert "Resolution" in page and "Aspect ratio" in page
    Select(browser.find_element(By.NAME, "aspect_ratio")).select_by_value("21:9")
    save_screenshot(browser, "admin-generate-action.png")

    # Confirm: back on the list, told what was queued.
    browser.find_element(By.CSS_SELECTOR, "input[type=submit][value=Confirm]").click()
    message = wait.until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success"))
    )
    assert message.text == "Queued 2 header images."

    # The immediate runner has run both against the emulator: thumbnails in the list.
    assert replicate_emulator.created_count == 2
    browser.get(f"{live_server.url}/admin/nanobanana_django/generatedimage/")
    wait.until(EC.presence_of_element_located((By.ID, "result_list")))
    thumbnails = browser.find_elements(By.CSS_SELECTOR, "#result_list .nanobanana-thumb img")
    assert len(thumbnails) == 2
    wait.until(lambda driver: all(loaded(driver, image) for image in thumbnails))
    rows = browser.find_element(By.ID, "result_list").text
    assert rows.count("Succeeded") == 2 and rows.count("21:9") == 2
    assert "Placeholder" not in rows
    save_screenshot(browser, "generated-image-changelist.png")

    for article in (lisbon, sourdough):
        article.refresh_from_db()
        assert (
            article.header_image.name == GeneratedImage.objects.for_object(article).get().image.name
        )
        assert article.header_image.name.startswith("nanobanana/")


def loaded(driver, image) -> bool:
    return driver.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 0", image
    )


def log_in(browser, live_server, user, next_path: str) -> None:
    """Sign in through the admin's login form (pytest-django's ``admin_user`` has the
    password "password"), landing on ``next_path``."""
    from selenium.webdriver.common.by import By

    browser.get(f"{live_server.url}/admin/login/?next={next_path}")
    browser.find_element(By.NAME, "username").send_keys(user.username)
    browser.find_element(By.NAME, "password").send_keys("password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()


def save_screenshot(driver, name: str) -> None:
    """The whole page at the window's width, for the docs."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.execute_script("return document.documentElement.clientWidth")
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / name).write_bytes(base64.b64decode(shot["data"]))


def test_the_generated_images_list_fits_a_1400_pixel_window(
    live_server, browser, admin_user, media_root, settings
):
    """Long titles, long prompts and errors wrap inside their columns: no sideways scroll."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from nanobanana_django.services import create_generation, generate_for

    settings.NANOBANANA = {**settings.NANOBANANA, "TASK_RUNNER": "immediate"}
    titles = [
        "Ten quiet cafés in Lisbon, worth the detour for the pastéis de nata alone, and why "
        "the tram 28 is not",
        "How we cut our cloud bill by 40% without rewriting a single service: reserved "
        "instances, right-sizing and the Kubernetes autoscaler",
        "Antidisestablishmentarianism-and-other-unbreakably-long-compound-words-in-headlines",
    ]
    for title in titles:
        generate_for(Article.objects.create(title=title, topic="travel " * 20))
    failed = create_generation(
        Article.objects.create(title=titles[1] + " (again)"), prompt="x " * 400
    )
    GeneratedImage.objects.filter(pk=failed.pk).update(
        status=GeneratedImage.Status.FAILED,
        error_code="invalid_input",
        error_message="The model refused the input: " + "a very long error message " * 20,
        model_name="google/nano-banana-2-with-an-unusually-long-model-name",
    )
    browser.set_window_size(1400, 900)
    wait = WebDriverWait(browser, TIMEOUT)
    log_in(browser, live_server, admin_user, "/admin/nanobanana_django/generatedimage/")
    wait.until(EC.presence_of_element_located((By.ID, "result_list")))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")) == 4
    inner = browser.execute_script("return window.innerWidth")
    assert inner == 1400
    save_screenshot(browser, "generated-image-changelist-1400.png")
    scroll = browser.execute_script("return document.documentElement.scrollWidth")
    assert scroll <= inner, f"the page is {scroll} px wide in a {inner} px window"
    # The admin scrolls a too-wide table inside its box, hiding the last columns.
    table, box = browser.execute_script(
        "const r = document.querySelector('#changelist .results');"
        "return [r.scrollWidth, r.clientWidth]"
    )
    assert table <= box, f"the list is {table} px wide in a {box} px box"


def test_the_spend_page_shows_cost_against_the_budget(
    live_server, browser, admin_user, gemini_emulator, settings
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from nanobanana_django.services import generate_image

    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **gemini_emulator.settings(),
        "DAILY_BUDGET": "0.30",
        "MONTHLY_BUDGET": "5",
    }
    for resolution in ("1K", "2K"):
        generate_image("a lighthouse at dawn", input={"resolution": resolution})
    wait = WebDriverWait(browser, TIMEOUT)
    log_in(browser, live_server, admin_user, "/admin/nanobanana_django/generatedimage/")
    wait.until(EC.presence_of_element_located((By.ID, "result_list")))
    browser.execute_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")

    browser.find_element(By.LINK_TEXT, "SPEND").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "body.nanobanana-spend")))

    page = browser.find_element(By.ID, "content").text
    assert "0.1680 USD" not in page  # money is written as people write it
    assert "0.168 USD" in page and "0.30 USD" in page  # 0.0672 + 0.1008 of 0.30 today
    assert "gemini-3.1-flash-image" in page
    save_screenshot(browser, "spend.png")
