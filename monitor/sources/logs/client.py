"""The Cloud Logging API as this daemon calls it: one client, one raw `entries:list` page.

Both readers (tracebacks and Job events) and `backtest` list entries the same way: a REST
`google.cloud.logging.Client` (anonymous for an http:// endpoint, as tests and the demo
use), and the raw call of the library's own connection, because the library's entry
objects raise on a malformed entry and lose the rest of the page (raw dicts are also
cheaper).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.config.model import CloudLoggingSettings

PAGE_SIZE = 1000  # the API's maximum
REQUEST_TIMEOUT_SECONDS = 30.0


def make_client(settings: CloudLoggingSettings) -> Any:
    """A REST `google.cloud.logging.Client`: anonymous for an http:// endpoint, ADC otherwise.

    ADC covers Workload Identity in-cluster; a key file is never read by this code.
    """
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.logging import Client

    endpoint = settings.endpoint
    if endpoint and endpoint.startswith("http://"):
        return Client(  # type: ignore[no-untyped-call]
            project=settings.project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            _use_grpc=False,
            client_options={"api_endpoint": endpoint.rstrip("/")},
        )
    options = {"api_endpoint": endpoint.rstrip("/")} if endpoint else None
    return Client(  # type: ignore[no-untyped-call]
        project=settings.project, _use_grpc=False, client_options=options
    )


def list_page(
    client: Any, project: str, filter_text: str, page_token: str | None
) -> Mapping[str, Any]:
    """One page of `entries:list` for `filter_text`, oldest first."""
    body: dict[str, Any] = {
        "resourceNames": [f"projects/{project}"],
        "filter": filter_text,
        "orderBy": "timestamp asc",
        "pageSize": PAGE_SIZE,
    }
    if page_token:
        body["pageToken"] = page_token
    response = client._connection.api_request(
        method="POST", path="/entries:list", data=body, timeout=REQUEST_TIMEOUT_SECONDS
    )
    return response if isinstance(response, Mapping) else {}


def entries_of(page: Mapping[str, Any]) -> list[Any]:
    """The raw entries of a page (none when the answer has no list of them)."""
    entries = page.get("entries")
    return entries if isinstance(entries, list) else []
