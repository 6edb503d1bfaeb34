"""What every provider's HTTP client shares."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process, shared by every provider's client.

    Building one loads the CA bundle (about 25 ms of CPU); httpx would do it for each
    client, so for each task and each image the poller stored. The context is httpx's
    default (certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` as the process started).
    """
    return httpx.create_ssl_context()
