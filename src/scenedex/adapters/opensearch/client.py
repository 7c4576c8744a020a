"""The opensearch-py client as scenedex configures it (no connection is opened here)."""

from __future__ import annotations

import logging
from typing import Any

from opensearchpy import OpenSearch

RETRY_ON_STATUS = (502, 503, 504)
"""Statuses the transport retries at once on another connection. 429 is left to the bulk
helper, which backs off (``initial_backoff`` doubling up to ``max_backoff``) before re-sending
only the rejected documents; other requests answered 429 raise a TransientError."""


def make_client(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    verify_certs: bool = True,
    ca_certs: str | None = None,
    timeout_s: float = 30.0,
    max_retries: int = 3,
) -> OpenSearch:
    """A client for ``url`` (``https://host:9200``); basic auth when ``username`` is given,
    TLS verified against ``ca_certs`` (or the system store) unless ``verify_certs`` is off."""
    options: dict[str, Any] = {
        "hosts": [url],
        "timeout": timeout_s,
        "max_retries": max_retries,
        "retry_on_timeout": True,
        "retry_on_status": RETRY_ON_STATUS,
        "verify_certs": verify_certs,
        "ssl_show_warn": verify_certs,
    }
    if username:
        options["http_auth"] = (username, password or "")
    if ca_certs:
        options["ca_certs"] = ca_certs
    request_log = logging.getLogger("opensearch")
    if request_log.level == logging.NOTSET:  # one INFO line per request otherwise; set it to see them
        request_log.setLevel(logging.WARNING)
    return OpenSearch(**options)
