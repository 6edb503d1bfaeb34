"""Images on S3, through django-storages' S3 backend against a real S3 API on loopback.

The API is moto's server (``moto.server.ThreadedMotoServer``) on 127.0.0.1, spoken to over
HTTP by boto3, as a site talks to AWS or MinIO. Its requests are counted, so that "no
copy" is the number of uploads, not a guess.
"""

import io
import logging
import subprocess
import sys
import uuid
from html.parser import HTMLParser
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from django.core.checks import run_checks
from moto.server import ThreadedMotoServer
from PIL import Image

from nanobanana_django.models import GeneratedImage
from nanobanana_django.services import generate_for, generate_image
from tests.testapp.models import Poster, Story

ROOT = Path(__file__).resolve().parent.parent
ACCESS_KEY = "AKIATESTINGNANOBANANA"
SECRET_KEY = "s3cr3t-nanobanana-never-shown"
REGION = "us-east-1"

pytestmark = pytest.mark.django_db


class S3Server:
    """moto's S3 API on a free loopback port, recording each request's method and path."""

    def __init__(self):
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.requests = []

    def start(self):
        self.moto.start()
        wsgi = self.moto._server  # the werkzeug server; its app is wrapped to count requests
        app = wsgi.app

        def counting(environ, start_response):
            self.requests.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
            return app(environ, start_response)

        wsgi.app = counting
        host, port = self.moto.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def stop(self):
        self.moto.stop()

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}),
        )

    def bucket(self):
        name = f"nanobanana-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket):
        listing = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def read(self, bucket, key):
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def since(self, mark):
        """The requests made after ``mark`` (a length of :attr:`requests`)."""
        return self.requests[mark:]

    def storage(self, bucket, **options):
        """A ``STORAGES`` entry for the S3 backend on ``bucket`` of this server."""
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": self.endpoint,
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "region_name": REGION,
                "addressing_style": "path",
                "querystring_auth": False,
                **options,
            },
        }


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, settings):
    """Two fresh buckets; generated images go to ``headers`` on the first one (without
    renditions, so that each test counts the image's own objects and requests)."""
    s3_server.first, s3_server.second = s3_server.bucket(), s3_server.bucket()
    settings.STORAGES = {**settings.STORAGES, "headers": s3_server.storage(s3_server.first)}
    settings.NANOBANANA = {
        **settings.NANOBANANA,
        "STORAGE": "headers",
        "RENDITION_WIDTHS": [],
        "MODELS": {
            "testapp.Story": {"title_field": "title", "image_field": "cover"},
            "testapp.Poster": {"title_field": "name", "image_field": "picture"},
        },
    }
    return s3_server


def use_for_stories(settings, entry):
    settings.STORAGES = {**settings.STORAGES, "s3media": entry}


def dimensions(data):
    with Image.open(io.BytesIO(data)) as image:
        return image.size


# Generated images in a bucket --------------------------------------------------------


def test_generated_images_are_stored_in_the_bucket(s3, media_root):
    row = generate_image("a lighthouse at dusk")

    assert s3.keys(s3.first) == [row.image.name]
    data = s3.read(s3.first, row.image.name)
    assert len(data) == row.size_bytes
    assert dimensions(data) == (row.width, row.height) == (1376, 768)
    assert not media_root.exists() or not any(media_root.rglob("*.*"))  # nothing on local disk
    with GeneratedImage.objects.get().image.open("rb") as stored:  # read back through Django
        assert stored.read() == data


def test_renditions_go_to_the_bucket_next_to_the_image_without_reading_it_back(s3, settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "RENDITION_WIDTHS": [480, 768]}
    mark = len(s3.requests)

    row = generate_image("a lighthouse at dusk")

    requests = s3.since(mark)
    stem = row.image.name.removesuffix(".jpg")
    assert row.renditions == {"480": f"{stem}-480w.jpg", "768": f"{stem}-768w.jpg"}
    assert s3.keys(s3.first) == sorted([row.image.name, *row.renditions.values()])
    assert dimensions(s3.read(s3.first, row.renditions["480"])) == (480, 268)
    assert [method for method, _ in requests if method in ("PUT", "POST")] == ["PUT"] * 3
    assert [path for method, path in requests if method == "GET"] == []


def test_the_bucket_prefix_and_upload_to_make_the_key(s3, settings):
    settings.STORAGES["headers"]["OPTIONS"]["location"] = "site-a"
    settings.NANOBANANA = {**settings.NANOBANANA, "UPLOAD_TO": "ai"}
    row = generate_image("a lighthouse")
    assert row.image.name.startswith("ai/")
    assert s3.keys(s3.first) == [f"site-a/{row.image.name}"]


# Attaching: the same storage means no copy -------------------------------------------


@pytest.mark.parametrize(
    "same",
    [
        pytest.param(lambda s3: {"alias": "headers"}, id="the-same-alias"),
        # Another alias on the same bucket: a CDN domain and signing only change the URL.
        pytest.param(
            lambda s3: s3.storage(s3.first, custom_domain="cdn.example.com", querystring_auth=True),
            id="another-alias-on-the-same-bucket",
        ),
    ],
)
def test_a_cover_on_the_same_bucket_is_pointed_at_the_object_without_a_copy(s3, settings, same):
    entry = same(s3)
    use_for_stories(settings, settings.STORAGES["headers"] if "alias" in entry else entry)
    story = Story.objects.create(title="Night trains of Europe")

    mark = len(s3.requests)
    row = generate_for(story)

    requests = s3.since(mark)
    assert [method for method, _ in requests if method in ("PUT", "POST")] == ["PUT"]
    assert [path for method, path in requests if method == "GET"] == []  # nothing read back
    assert s3.keys(s3.first) == [row.image.name]
    story = Story.objects.get()
    assert story.cover.name == row.image.name
    assert (story.cover_width, story.cover_height) == (row.width, row.height) == (1376, 768)


# Attaching: a different storage gets a correct copy ----------------------------------


def assert_a_copy(story, row, data):
    assert story.cover.name.startswith("covers/")
    assert (story.cover_width, story.cover_height) == (row.width, row.height) == (1376, 768)
    with story.cover.open("rb") as copy:
        assert copy.read() == data


def test_a_cover_on_another_bucket_gets_a_copy_of_the_same_bytes(s3, settings):
    use_for_stories(settings, s3.storage(s3.second))
    row = generate_for(Story.objects.create(title="Harbour lights"))

    story = Story.objects.get()
    original = s3.read(s3.first, row.image.name)
    assert s3.keys(s3.first) == [row.image.name]
    assert s3.keys(s3.second) == [story.cover.name]
    assert s3.read(s3.second, story.cover.name) == original
    assert_a_copy(story, row, original)


def test_a_cover_under_another_prefix_of_the_same_bucket_gets_a_copy(s3, settings):
    use_for_stories(settings, s3.storage(s3.first, location="media"))
    row = generate_for(Story.objects.create(title="Harbour lights"))

    story = Story.objects.get()
    assert s3.keys(s3.first) == sorted([row.image.name, f"media/{story.cover.name}"])
    assert_a_copy(story, row, s3.read(s3.first, row.image.name))


def test_a_cover_on_another_endpoint_gets_a_copy(s3, settings):
    # The same server by another name: storages on different endpoints are never "the same".
    other = s3.storage(s3.second, endpoint_url=s3.endpoint.replace("127.0.0.1", "localhost"))
    use_for_stories(settings, other)
    row = generate_for(Story.objects.create(title="Harbour lights"))
    assert_a_copy(Story.objects.get(), row, s3.read(s3.first, row.image.name))


def test_an_image_in_the_bucket_is_copied_to_a_field_on_local_disk(s3):
    poster = Poster.objects.create(name="Summer fair")
    row = generate_for(poster)

    poster.refresh_from_db()
    assert poster.picture.storage.exists(poster.picture.name)
    with poster.picture.open("rb") as copy:
        assert copy.read() == s3.read(s3.first, row.image.name)
    poster.picture.delete(save=False)


def test_an_image_on_local_disk_is_copied_into_the_bucket_of_the_field(s3, settings):
    settings.NANOBANANA = {**settings.NANOBANANA, "STORAGE": "default"}
    use_for_stories(settings, s3.storage(s3.second))
    row = generate_for(Story.objects.create(title="Harbour lights"))

    story = Story.objects.get()
    assert s3.keys(s3.second) == [story.cover.name]
    with row.image.open("rb") as original:
        assert_a_copy(story, row, original.read())


# A private bucket: signed URLs and the secret stay out of rows, logs and the admin ----


@pytest.fixture
def private(s3, settings):
    settings.STORAGES["headers"] = s3.storage(
        s3.first, querystring_auth=True, default_acl="private"
    )
    use_for_stories(settings, settings.STORAGES["headers"])
    return s3


SIGNED = ("X-Amz-", "Signature=", "AWSAccessKeyId", SECRET_KEY)


def leaks(text):
    return [marker for marker in SIGNED if marker in text]


def test_a_private_bucket_keeps_signed_urls_and_the_secret_out_of_rows_and_logs(private, caplog):
    caplog.set_level(logging.DEBUG)
    row = generate_for(Story.objects.create(title="Harbour lights"))
    assert row.status == GeneratedImage.Status.SUCCEEDED
    assert "Signature=" in row.image.url  # the storage does sign its URLs

    stored = [str(v) for v in GeneratedImage.objects.values().get().values()]
    stored += [str(v) for v in Story.objects.values().get().values()]
    assert [value for value in stored if leaks(value) or "http" in value] == []
    ours = [
        record.getMessage() + (record.exc_text or "")
        for record in caplog.records
        # botocore's own DEBUG output shows its signed headers; a site turns it on by choice.
        if record.levelno >= logging.INFO or record.name.startswith("nanobanana_django")
    ]
    assert ours and [message for message in ours if leaks(message)] == []


@pytest.mark.urls("tests.test_admin")
def test_the_admin_shows_a_private_image_without_showing_its_signed_url(private, admin_client):
    from tests.test_admin import url

    row = generate_for(Story.objects.create(title="Harbour lights"))
    for page in (
        admin_client.get(url("nanobanana_django_generatedimage_changelist")),
        admin_client.get(url("nanobanana_django_generatedimage_change", row.pk)),
    ):
        assert page.status_code == 200
        html = page.content.decode()
        assert SECRET_KEY not in html
        # A short-lived signed URL is how a browser loads a private image: it may be the
        # address of the image, never text on the page.
        assert "Signature=" in html
        assert not leaks(visible_text(html))


def visible_text(html):
    class Text(HTMLParser):
        parts = []

        def handle_data(self, data):
            self.parts.append(data)

    parser = Text()
    parser.parts = []
    parser.feed(html)
    return " ".join(parser.parts)


def test_a_bucket_that_does_not_exist_fails_the_row_readably(s3, settings, caplog):
    settings.STORAGES["headers"] = s3.storage("no-such-bucket", querystring_auth=True)
    caplog.set_level(logging.INFO)
    row = generate_image("a lighthouse")
    assert row.status == GeneratedImage.Status.FAILED
    assert row.error_code == "storage_failed"
    assert "'headers'" in row.error_message and "NoSuchBucket" in row.error_message
    assert not leaks(row.error_message)
    assert [r.getMessage() for r in caplog.records if leaks(r.getMessage())] == []


# Optional integrations -----------------------------------------------------------------


def test_an_s3_storage_without_boto3_is_a_check_error_naming_the_extra(s3, monkeypatch):
    from django.core.files.storage import storages

    for module in list(sys.modules):
        if module.split(".")[0] in ("boto3", "botocore", "s3transfer") or module.startswith(
            "storages.backends.s3"
        ):
            monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "boto3", None)
    monkeypatch.setattr(storages, "_storages", {})

    errors = [m for m in run_checks(tags=["nanobanana"]) if m.id == "nanobanana.E011"]

    assert len(errors) == 1
    assert "STORAGES['headers']" in errors[0].msg and "boto3" in errors[0].msg
    assert 'pip install "nanobanana-django[s3]"' in errors[0].hint


def test_a_site_without_s3_needs_neither_boto3_nor_moto():
    """The base install: every module of the app imports, checks pass, an image is made."""
    script = """
import sys
for name in ("boto3", "botocore", "moto", "s3transfer"):
    sys.modules[name] = None
import os, pkgutil, importlib
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
import django
django.setup()
import nanobanana_django
for module in pkgutil.walk_packages(nanobanana_django.__path__, "nanobanana_django."):
    if ".testing" not in module.name:
        importlib.import_module(module.name)
from django.core.management import call_command
call_command("check")
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
