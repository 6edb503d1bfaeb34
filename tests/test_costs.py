"""Every image's cost is recorded; budgets refuse what would pass them, atomically."""

import threading
from decimal import Decimal

import pytest
from django.core.checks import run_checks
from django.db import connections
from django.test import Client

from nanobanana_django import costs
from nanobanana_django.costs import CancelGeneration
from nanobanana_django.models import GeneratedImage, Spend
from nanobanana_django.services import create_generation, generate_image, run_generation
from nanobanana_django.signals import pre_generation
from tests.testapp.models import Article

Status = GeneratedImage.Status
PRICE = {"replicate": {"google/nano-banana-2": {"1K": "0.04", "2K": "0.08"}}}


@pytest.fixture
def replicate(settings, replicate_emulator):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        **replicate_emulator.settings(),
        "PRICES": PRICE,
        "RATE_LIMIT": 0,
    }
    return replicate_emulator


@pytest.mark.django_db
def test_every_row_records_what_it_cost(replicate, settings):
    row = generate_image("a lighthouse", input={"resolution": "2K"})
    assert (row.cost, row.currency) == (Decimal("0.08"), "USD")

    settings.NANOBANANA = {**settings.NANOBANANA, "PROVIDER": "placeholder"}
    assert generate_image("a lighthouse").cost == Decimal(0)

    settings.NANOBANANA = {**settings.NANOBANANA, "PRICES": {}, "PROVIDER": "replicate"}
    assert generate_image("a lighthouse").cost is None  # no known price: not guessed


@pytest.mark.django_db
def test_gemini_rows_cost_what_google_reports_it_billed(settings, gemini_emulator):
    settings.NANOBANANA = {**settings.NANOBANANA, **gemini_emulator.settings()}
    row = generate_image("a lighthouse", input={"resolution": "2K"})
    assert row.status == Status.SUCCEEDED
    assert {"modality": "IMAGE", "tokenCount": 1680} in row.usage["candidatesTokensDetails"]
    assert row.cost == Decimal("0.1008")  # 1680 image tokens at $60 a million, text not counted


@pytest.mark.django_db(transaction=True)
def test_a_daily_cap_worth_ten_images_lets_exactly_ten_of_twentyfive_through(replicate, settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "DAILY_BUDGET": "0.40"}
    rows = [create_generation(Article.objects.create(title=f"Post {n}")) for n in range(25)]
    start = threading.Barrier(5)

    def worker(share):
        start.wait()
        try:
            for row in share:
                run_generation(row.pk, wait=True)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(rows[n::5],)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    outcomes = list(GeneratedImage.objects.values_list("status", "error_code"))
    assert outcomes.count((Status.SUCCEEDED, "")) == 10
    assert outcomes.count((Status.FAILED, "budget_exceeded")) == 15
    assert replicate.created_count == 10  # the refused ones were never sent
    refused = GeneratedImage.objects.filter(error_code="budget_exceeded").first()
    assert "daily budget of 0.40 USD" in refused.error_message
    assert "resets at" in refused.error_message
    assert Spend.objects.get(period__startswith="day:").amount == Decimal("0.40")


@pytest.mark.django_db
def test_a_models_own_cap_applies_on_top_of_the_sites(replicate, settings):
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "MONTHLY_BUDGET": "100",
        "MODELS": {
            "testapp.Article": {
                "title_field": "title",
                "image_field": "header_image",
                "monthly_budget": "0.04",
            }
        },
    }
    first = run_generation(create_generation(Article.objects.create(title="One")).pk)
    second = run_generation(create_generation(Article.objects.create(title="Two")).pk)
    assert first.status == Status.SUCCEEDED
    assert (second.status, second.error_code) == (Status.FAILED, "budget_exceeded")
    assert "monthly budget for testapp.Article" in second.error_message
    assert generate_image("a bare prompt").status == Status.SUCCEEDED  # the site's cap allows it


@pytest.mark.django_db
def test_a_request_the_provider_refuses_gives_its_reservation_back(replicate, settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "DAILY_BUDGET": "0.04"}
    replicate.add_fault("payment_required")
    refused = generate_image("a lighthouse")
    assert refused.error_code == "payment_required"
    assert refused.cost == Decimal(0)

    assert generate_image("a lighthouse").status == Status.SUCCEEDED  # the cap was not used up


@pytest.mark.django_db
def test_a_site_policy_can_cancel_a_request_before_it_bills(replicate):
    seen = []

    def only_three_a_day(sender, generated_image, provider, estimated_cost, **kwargs):
        seen.append((provider, estimated_cost))
        raise CancelGeneration("Authors may make three images a day; this one was not made.")

    pre_generation.connect(only_three_a_day)
    try:
        row = generate_image("a lighthouse")
    finally:
        pre_generation.disconnect(only_three_a_day)

    assert seen == [("replicate", Decimal("0.04"))]
    assert (row.status, row.error_code) == (Status.FAILED, "canceled_by_policy")
    assert row.error_message == "Authors may make three images a day; this one was not made."
    assert replicate.created_count == 0


@pytest.mark.parametrize(
    "key, value", [("DAILY_BUDGET", "lots"), ("MONTHLY_BUDGET", -5), ("CURRENCY", "euro")]
)
def test_bad_budget_settings_are_reported(settings, key, value):
    settings.NANOBANANA = {**settings.NANOBANANA, key: value}
    assert any(
        m.id == "nanobanana.E001" and f"NANOBANANA['{key}']" in m.msg
        for m in run_checks(tags=["nanobanana"])
    )


def test_a_bad_price_names_where_it_is(settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "PRICES": {"replicate": {"*": {"1K": "cheap"}}}}
    [message] = [m for m in run_checks(tags=["nanobanana"]) if m.id == "nanobanana.E001"]
    assert "NANOBANANA['PRICES']['replicate']['*']['1K']" in message.msg


def test_a_budget_without_a_price_for_the_provider_in_use_is_warned(settings, monkeypatch):
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_x")
    settings.NANOBANANA = {**settings.NANOBANANA, "PROVIDER": "replicate", "DAILY_BUDGET": "5"}
    [warning] = [m for m in run_checks(tags=["nanobanana"]) if m.id == "nanobanana.W009"]
    assert "'replicate'" in warning.msg and "NANOBANANA['PRICES']" in warning.hint
    settings.NANOBANANA = {**settings.NANOBANANA, "PRICES": {"replicate": {"*": {"*": "0.04"}}}}
    assert not [m for m in run_checks(tags=["nanobanana"]) if m.id == "nanobanana.W009"]


def test_gemini_has_documented_default_prices_in_usd(settings):
    assert costs.price_of("gemini", "gemini-3.1-flash-image", "1K") == Decimal("0.067")
    settings.NANOBANANA = {**settings.NANOBANANA, "CURRENCY": "EUR"}
    assert costs.price_of("gemini", "gemini-3.1-flash-image", "1K") is None  # not in USD


@pytest.mark.django_db
def test_the_spend_page_shows_spend_against_the_budget(replicate, settings, admin_user):
    settings.NANOBANANA = {**settings.NANOBANANA, "DAILY_BUDGET": "0.10"}
    for _ in range(2):
        generate_image("a lighthouse")
    client = Client()
    client.force_login(admin_user)

    page = client.get("/admin/nanobanana_django/generatedimage/spend/").content.decode()

    assert "0.08 USD" in page  # two images at 0.04 today, against 0.10
    assert "0.10 USD" in page
    assert "google/nano-banana-2" in page
    listing = client.get("/admin/nanobanana_django/generatedimage/")
    assert "of the 0.10 USD budget is spent" in listing.content.decode()  # 80%: warned
    assert 'href="/admin/nanobanana_django/generatedimage/spend/"' in listing.content.decode()
