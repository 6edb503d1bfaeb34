"""Inputs are checked locally: a bad value names the field and the allowed values."""

import pytest
from django.core.exceptions import ValidationError

from nanobanana_django.providers.replicate_models import validate_input
from nanobanana_django.specs import MAX_PROMPT_LENGTH

MODEL = "google/nano-banana-2"
RATIOS = [
    "match_input_image",
    "1:1",
    "1:4",
    "1:8",
    "2:3",
    "3:2",
    "3:4",
    "4:1",
    "4:3",
    "4:5",
    "5:4",
    "8:1",
    "9:16",
    "16:9",
    "21:9",
]


def errors_of(excinfo):
    return excinfo.value.message_dict


def test_nano_banana_2_accepts_all_fifteen_aspect_ratios():
    assert len(RATIOS) == 15
    for ratio in RATIOS:
        assert validate_input(MODEL, "a cat", {"aspect_ratio": ratio})["aspect_ratio"] == ratio


def test_aspect_ratio_is_always_sent_even_when_not_given():
    assert validate_input(MODEL, "a cat") == {
        "prompt": "a cat",
        "aspect_ratio": "match_input_image",
    }


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("aspect_ratio", "7:3", "16:9"),
        ("resolution", "8K", "1K, 2K, 4K"),
        ("resolution", "1k", "1K, 2K, 4K"),
        ("output_format", "webp", "jpg, png"),
    ],
)
def test_a_bad_choice_names_the_field_and_the_allowed_values(field, value, allowed):
    with pytest.raises(ValidationError) as excinfo:
        validate_input(MODEL, "a cat", {field: value})
    message = " ".join(errors_of(excinfo)[field])
    assert repr(value) in message
    assert allowed in message


@pytest.mark.parametrize("prompt", ["", "   \n", None, 42])
def test_an_empty_prompt_is_refused(prompt):
    with pytest.raises(ValidationError) as excinfo:
        validate_input(MODEL, prompt)
    assert "prompt" in errors_of(excinfo)


def test_a_prompt_over_the_limit_is_refused_with_the_limit():
    with pytest.raises(ValidationError) as excinfo:
        validate_input(MODEL, "x" * (MAX_PROMPT_LENGTH + 1))
    assert str(MAX_PROMPT_LENGTH) in errors_of(excinfo)["prompt"][0]


def test_the_prompt_is_trimmed():
    assert validate_input(MODEL, "  a cat \n")["prompt"] == "a cat"


def test_at_most_fourteen_reference_images():
    urls = [f"https://example.com/{i}.png" for i in range(14)]
    assert validate_input(MODEL, "fuse", {"image_input": urls})["image_input"] == urls
    with pytest.raises(ValidationError) as excinfo:
        validate_input(MODEL, "fuse", {"image_input": urls + ["https://example.com/x.png"]})
    assert "at most 14" in errors_of(excinfo)["image_input"][0]


@pytest.mark.parametrize(
    "value", ["https://example.com/a.png", [42], ["ftp://example.com/a.png"], [None]]
)
def test_reference_images_must_be_a_list_of_urls(value):
    with pytest.raises(ValidationError) as excinfo:
        validate_input(MODEL, "fuse", {"image_input": value})
    assert "image_input" in errors_of(excinfo)


def test_oversized_inline_reference_images_are_refused():
    big = "data:image/png;base64," + "A" * (11 * 1024 * 1024)
    with pytest.raises(ValidationError) as excinfo:
        validate_input(MODEL, "fuse", {"image_input": [big]})
    assert "URLs instead" in errors_of(excinfo)["image_input"][0]


def test_an_empty_reference_list_is_not_sent():
    assert "image_input" not in validate_input(MODEL, "a cat", {"image_input": []})


@pytest.mark.parametrize("field", ["google_search", "image_search"])
def test_search_flags_must_be_booleans(field):
    assert validate_input(MODEL, "a cat", {field: True})[field] is True
    with pytest.raises(ValidationError) as excinfo:
        validate_input(MODEL, "a cat", {field: "yes"})
    assert "true or false" in errors_of(excinfo)[field][0]


def test_an_unknown_input_is_refused_with_the_known_ones():
    with pytest.raises(ValidationError) as excinfo:
        validate_input(MODEL, "a cat", {"seed": 3})
    assert "resolution" in errors_of(excinfo)["seed"][0]


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValidationError) as excinfo:
        validate_input(MODEL, "", {"aspect_ratio": "2:1", "resolution": "3K"})
    assert set(errors_of(excinfo)) == {"prompt", "aspect_ratio", "resolution"}


def test_each_model_has_its_own_inputs():
    with pytest.raises(ValidationError) as excinfo:
        validate_input("google/nano-banana-pro", "a cat", {"aspect_ratio": "8:1"})
    assert "aspect_ratio" in errors_of(excinfo)
    validate_input("google/nano-banana-pro", "a cat", {"safety_filter_level": "block_only_high"})
    with pytest.raises(ValidationError) as excinfo:
        validate_input("google/nano-banana", "a cat", {"resolution": "1K"})
    assert "resolution" in errors_of(excinfo)


def test_an_unknown_model_is_refused():
    with pytest.raises(ValidationError) as excinfo:
        validate_input("acme/painter", "a cat")
    assert "google/nano-banana-2" in errors_of(excinfo)["model"][0]
