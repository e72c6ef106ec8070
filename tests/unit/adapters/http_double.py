"""A function-based double of the Kubernetes API client's transport (as httpx tests do): `answer` decides
each response, `calls` records the requests. The adapter's behaviour against the real API server is
proven in tests/integration/runtime."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Response:
    status: int
    data: bytes = b"{}"
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def read(self) -> bytes:
        return self.data

    def getheaders(self) -> dict[str, str]:
        return self.headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


@dataclass
class FakeApi:
    """Records requests; `answer` decides each response."""

    answer: Callable[[str, str, Any], Response]
    calls: list[tuple[str, str]] = field(default_factory=list)

    def param_serialize(self, method: str, resource_path: str, query_params: list[tuple[str, str]],
                        header_params: dict[str, str], body: Any, auth_settings: list[str]) -> tuple[Any, ...]:
        url = resource_path + ("?" + "&".join(f"{k}={v}" for k, v in query_params) if query_params else "")
        return (method, url, header_params, body, None)

    def call_api(self, method: str, url: str, headers: Any, body: Any, post: Any,
                 _request_timeout: float | None = None) -> Response:
        self.calls.append((method, url))
        return self.answer(method, url, body)
