"""The review queue in a real browser (Debian's chromium, driven by Selenium), as in
tests/test_admin_browser.py, whose fixtures and helpers it shares. Its screenshot is the
one in docs/approval.md (written there with ``NANOBANANA_UPDATE_SCREENSHOTS=1``)."""

import pytest

from nanobanana_django.models import GeneratedImage
from tests.test_admin_browser import TIMEOUT, browser, loaded, log_in, save_screenshot  # noqa: F401
from tests.testapp.models import Article

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.test_admin")]

Review = GeneratedImage.Review


def test_an_editor_approves_one_image_and_rejects_another_in_the_review_queue(
    live_server,
    browser,  # noqa: F811 (the fixture imported above)
    admin_user,
    replicate_emulator,
    settings,
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **replicate_emulator.settings(),
        "TASK_RUNNER": "immediate",
        "POLL_INTERVAL": 0.05,
        "MODELS": {
            **settings.NANOBANANA["MODELS"],
            "testapp.Article": {
                "title_field": "title",
                "topic_field": "topic",
                "image_field": "header_image",
                "publish": {"field": "status", "values": ["published"]},
                "approval": True,
            },
        },
    }
    lisbon, cloud, sourdough = (
        Article.objects.create(title=title, topic=topic, status="published")
        for title, topic in (
            ("Ten quiet cafés in Lisbon", "travel"),
            ("How we cut our cloud bill by 40%", "engineering"),
            ("A beginner’s guide to sourdough in a small kitchen", "food"),
        )
    )
    assert replicate_emulator.created_count == 3
    assert not any(Article.objects.values_list("header_image", flat=True))
    wait = WebDriverWait(browser, TIMEOUT)

    # The Generated images list says how many wait, and links to the queue.
    log_in(browser, live_server, admin_user, "/admin/nanobanana_django/generatedimage/")
    wait.until(EC.presence_of_element_located((By.ID, "result_list")))
    browser.execute_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    browser.find_element(By.LINK_TEXT, "3 images awaiting review").click()

    # The queue: thumbnail, article, prompt and the four choices for each image.
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "body.nanobanana-review")))
    thumbnails = browser.find_elements(By.CSS_SELECTOR, "#review_queue .nanobanana-thumb img")
    assert len(thumbnails) == 3
    wait.until(lambda driver: all(loaded(driver, image) for image in thumbnails))
    queue = browser.find_element(By.ID, "review_queue").text
    for article in (lisbon, cloud, sourdough):
        assert article.title in queue
    assert queue.count("APPROVE") + queue.count("Approve") >= 3
    save_screenshot(browser, "review-queue.png")

    rows = {row.object_id: row for row in GeneratedImage.objects.all()}
    approved, rejected = rows[str(lisbon.pk)], rows[str(cloud.pk)]
    browser.find_element(By.CSS_SELECTOR, f"button[value='approve:{approved.pk}']").click()
    message = wait.until(
        EC.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li.success"))
    )
    assert message.text == "Approved 1 image: it is now its object's image."
    browser.find_element(By.CSS_SELECTOR, f"button[value='reject:{rejected.pk}']").click()
    wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "ul.messagelist"), "Rejected"))
    assert "1 image awaiting review." in browser.find_element(By.ID, "content").text

    lisbon.refresh_from_db()
    cloud.refresh_from_db()
    sourdough.refresh_from_db()
    assert lisbon.header_image.name == approved.image.name
    assert not cloud.header_image and not sourdough.header_image
    assert GeneratedImage.objects.get(pk=rejected.pk).review == Review.REJECTED
    assert replicate_emulator.created_count == 3


def test_an_editor_asks_for_three_candidates_and_picks_one(
    live_server,
    browser,  # noqa: F811 (the fixture imported above)
    admin_user,
    replicate_emulator,
    settings,
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **replicate_emulator.settings(),
        "TASK_RUNNER": "immediate",
        "POLL_INTERVAL": 0.05,
        "PRICES": {"replicate": {"*": {"1K": "0.067"}}},
    }
    article = Article.objects.create(title="Ten quiet cafés in Lisbon", topic="travel")
    wait = WebDriverWait(browser, TIMEOUT)
    log_in(browser, live_server, admin_user, "/admin/testapp/article/")
    wait.until(EC.presence_of_element_located((By.ID, "result_list")))
    browser.execute_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    browser.find_element(
        By.CSS_SELECTOR, f"input[name=_selected_action][value='{article.pk}']"
    ).click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("generate_header_image")
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "body.nanobanana-generate")))

    # Three candidates: the page says what they will be billed before anything is made.
    field = browser.find_element(By.NAME, "candidates")
    field.clear()
    field.send_keys("3")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit][value=Confirm]").click()
    notice = wait.until(EC.presence_of_element_located((By.CLASS_NAME, "nanobanana-billing")))
    assert "3 images will be made and billed 3 times (about 0.201 USD)." in notice.text
    assert replicate_emulator.created_count == 0
    browser.find_element(By.CSS_SELECTOR, "input[type=submit][value=Confirm]").click()

    # The candidates side by side; the editor picks the second.
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "body.nanobanana-variants")))
    assert replicate_emulator.created_count == 3
    images = browser.find_elements(By.CSS_SELECTOR, ".nanobanana-candidates figure img")
    assert len(images) == 3
    wait.until(lambda driver: all(loaded(driver, image) for image in images))
    rows = list(GeneratedImage.objects.order_by("pk"))
    browser.find_element(By.CSS_SELECTOR, f"button[name=choose][value='{rows[1].pk}']").click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "figure.nanobanana-chosen")))
    wait.until(
        lambda driver: all(
            loaded(driver, image)
            for image in driver.find_elements(By.CSS_SELECTOR, ".nanobanana-candidates img")
        )
    )
    save_screenshot(browser, "variants.png")

    article.refresh_from_db()
    assert article.header_image.name == rows[1].image.name
    assert (
        browser.find_element(By.ID, "content").text.count("NOT CHOSEN")
        + browser.find_element(By.ID, "content").text.count("Not chosen")
        == 2
    )
