"""A raw HTTPS session to the AML emulator carrying a devkit token, for what the SDKs validate first."""

from __future__ import annotations

from typing import Any

import requests

from devkit.stack import DevStack


class ArmSession:
    """Raw HTTPS calls to the emulator with a devkit token, for what the SDKs validate before sending."""

    def __init__(self, stack: DevStack, audience: str) -> None:
        assert stack.ca is not None
        self.base = stack.aml.url
        self.workspace = f"{stack.aml.url}{stack.aml.workspace_id}"
        self.session = requests.Session()
        self.session.verify = str(stack.ca.ca_path)
        token, _ = stack.issuer.issue(audience)
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None, api_version: str = "2023-04-01") -> requests.Response:
        """``path`` is relative to the workspace id (e.g. ``/onlineEndpoints/ep``)."""
        return self.session.request(
            method, f"{self.workspace}{path}", params={"api-version": api_version}, json=body, timeout=10
        )
