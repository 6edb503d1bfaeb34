"""The emulator over HTTPS, as the official client and our provider see it (no Django involved).

Real Replicate hands out ``https:`` URLs only, and clients rely on it: the official
Python client turns an output into a file object only when it starts with ``https:``.
"""

from __future__ import annotations

import io
import re
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone

import httpx
import pytest
import replicate
from PIL import Image
from replicate.helpers import FileOutput

from nanobanana_django.dimensions import image_size
from nanobanana_django.providers.base import GenerationRequest
from nanobanana_django.providers.replicate import ReplicateProvider
from nanobanana_django.testing import ReplicateEmulator

NB2 = "/v1/models/google/nano-banana-2/predictions"
PROMPT = {"prompt": "a lighthouse at dawn", "aspect_ratio": "16:9", "resolution": "1K"}


@pytest.fixture
def emu(replicate_emulator_https: ReplicateEmulator) -> ReplicateEmulator:
    return replicate_emulator_https


@pytest.fixture
def client(emu: ReplicateEmulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {emu.token}"}
    with httpx.Client(
        base_url=emu.base_url, headers=headers, timeout=10, transport=emu.transport()
    ) as http:
        yield http


def official_client(emulator: ReplicateEmulator) -> replicate.Client:
    return replicate.Client(
        api_token=emulator.token, base_url=emulator.base_url, transport=emulator.transport()
    )


def test_official_client_run_returns_a_file_with_a_real_image_of_the_requested_size(
    emu: ReplicateEmulator,
) -> None:
    output = official_client(emu).run("google/nano-banana-2", input=PROMPT)

    assert isinstance(output, FileOutput)
    assert output.url.startswith(f"{emu.base_url}/files/")
    image = Image.open(io.BytesIO(output.read()))
    assert image.format == "JPEG"
    assert image.size == image_size("16:9", "1K")
    assert emu.created_count == 1


def test_official_client_streams_a_png_output(emu: ReplicateEmulator) -> None:
    output = official_client(emu).run(
        "google/nano-banana-2", input={**PROMPT, "aspect_ratio": "1:1", "output_format": "png"}
    )
    image = Image.open(io.BytesIO(b"".join(output)))
    assert (image.format, image.size) == ("PNG", image_size("1:1", "1K"))


def test_over_plain_http_the_official_client_returns_a_bare_string(
    replicate_emulator: ReplicateEmulator,
) -> None:
    """Why HTTPS mode exists: the client makes file objects only of ``https:`` URLs."""
    output = official_client(replicate_emulator).run("google/nano-banana-2", input=PROMPT)
    assert isinstance(output, str) and output.startswith("http://")


def test_every_url_handed_out_is_https(emu: ReplicateEmulator, client: httpx.Client) -> None:
    emu.list_page_size = 1
    emu.latency = 5
    waited = client.post(NB2, json={"input": PROMPT}, headers={"Prefer": "wait=1"})
    assert waited.status_code == 202
    assert waited.headers["location"].startswith(f"https://127.0.0.1:{emu.port}/v1/predictions/")
    emu.latency = 0
    done = client.post(NB2, json={"input": PROMPT}).json()

    assert emu.https and emu.base_url.startswith("https://")
    urls = [done["output"], done["urls"]["get"], done["urls"]["cancel"]]
    first = client.get("/v1/predictions").json()
    second = client.get(first["next"]).json()
    urls += [first["next"], second["previous"]]
    assert all(url.startswith(f"{emu.base_url}/") for url in urls), urls
    assert [client.get(url).status_code for url in urls[:2]] == [200, 200]
    secret = client.get("/v1/webhooks/default/secret")
    assert secret.json()["key"].startswith("whsec_")


def test_a_client_that_does_not_trust_the_ca_is_refused_and_others_still_served(
    emu: ReplicateEmulator, client: httpx.Client
) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{emu.base_url}/v1/predictions")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{emu.port}/v1/predictions", timeout=5)
    assert client.get("/v1/predictions").status_code == 200


def test_the_certificate_names_localhost_too(emu: ReplicateEmulator) -> None:
    headers = {"Authorization": f"Bearer {emu.token}"}
    with httpx.Client(verify=emu.ssl_context(), headers=headers) as http:
        response = http.get(f"https://localhost:{emu.port}/v1/webhooks/default/secret")
    assert response.status_code == 200
    with open(emu.ca_cert_path or "") as pem:
        assert pem.read().startswith("-----BEGIN CERTIFICATE-----")


def test_our_provider_generates_and_lists_through_https(emu: ReplicateEmulator) -> None:
    provider = ReplicateProvider(
        api_token=emu.token, base_url=emu.base_url, transport=emu.transport()
    )
    try:
        prediction = provider.submit(GenerationRequest("google/nano-banana-2", PROMPT))
        assert prediction.status == "succeeded"
        with provider.open_output(prediction, max_bytes=10_000_000) as stream:
            image = Image.open(io.BytesIO(stream.read()))
        assert image.size == image_size("16:9", "1K")
        states = provider.states([prediction.id], since=datetime.now(timezone.utc))
        assert states[prediction.id].status == "succeeded"
        assert emu.counts["list"] >= 1 and emu.counts["get"] == 0
    finally:
        provider.close()


def test_plain_http_emulator_has_no_ca(replicate_emulator: ReplicateEmulator) -> None:
    assert not replicate_emulator.https and replicate_emulator.ca_cert_path is None
    assert replicate_emulator.base_url.startswith("http://")
    with pytest.raises(ValueError, match="https=True"):
        replicate_emulator.ssl_context()


def test_https_without_trustme_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "trustme", None)
    with pytest.raises(ImportError, match=re.escape('pip install "nanobanana-django[testing]"')):
        ReplicateEmulator(https=True)


def test_command_line_https_prints_the_ca_to_trust() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "nanobanana_django.testing.emulator", "--port", "0", "--https"]
        + ["--latency", "0", "--token", "r8_cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(5)]
        base_url = re.search(r"https://127\.0\.0\.1:\d+", lines[0])
        assert base_url, lines
        ca_line = lines[4]
        assert ca_line.startswith("SSL_CERT_FILE="), lines
        ca_file = ca_line.split("=", 1)[1].split()[0]
        response = httpx.post(
            f"{base_url[0]}{NB2}",
            json={"input": {"prompt": "x"}},
            headers={"Authorization": "Bearer r8_cli"},
            verify=ssl.create_default_context(cafile=ca_file),
        )
        assert response.json()["output"].startswith("https://")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
        assert process.returncode == 0
        assert "Warning" not in stderr, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
