"""Who calls the operator API and why: the Entra principal App Service authentication (Easy Auth) validated, or a
function key; and the reason the request's body gives.

With Easy Auth on, App Service signs the caller in and passes the principal in ``X-MS-CLIENT-PRINCIPAL-NAME``,
``-ID`` and ``-IDP``, and in ``X-MS-CLIENT-PRINCIPAL`` (Base64 JSON of the claims; on Linux plans it may be the only
one). App Service does not let an outside request set these headers: they are present only when it set them ("Work
with user identities in Azure App Service authentication",
https://learn.microsoft.com/azure/app-service/configure-authentication-user-identities).
Without it the Functions host passes nothing about the caller: only that a function key was valid.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The name recorded for a caller authenticated by a function key alone.
FUNCTION_KEY = "function key"
MAX_NAME = 200


@dataclass(frozen=True)
class Caller:
    """The caller as recorded: a name, and the principal's object id and identity provider when Easy Auth gave them."""

    name: str
    principal_id: str = ""
    provider: str = ""

    @property
    def validated(self) -> bool:
        """Did App Service authentication sign this caller in (rather than a shared function key)?"""
        return self.name != FUNCTION_KEY

    def as_record(self) -> dict[str, Any]:
        return {
            "caller": self.name,
            "principalId": self.principal_id or None,
            "identityProvider": self.provider or None,
        }


def caller_of(headers: Mapping[str, str]) -> Caller:
    """The caller of a request, from the headers App Service authentication sets."""
    lowered = {key.lower(): str(value) for key, value in headers.items()}
    claims = _claims(lowered.get("x-ms-client-principal", ""))
    name = lowered.get("x-ms-client-principal-name") or _claim(claims, "name", "preferred_username", "upn")
    if not name:
        return Caller(FUNCTION_KEY)
    principal = lowered.get("x-ms-client-principal-id") or _claim(
        claims, "http://schemas.microsoft.com/identity/claims/objectidentifier", "oid"
    )
    provider = lowered.get("x-ms-client-principal-idp") or str(claims.get("auth_typ") or "")
    return Caller(name[:MAX_NAME], principal[:MAX_NAME], provider[:MAX_NAME])


def _claims(encoded: str) -> dict[str, Any]:
    """``X-MS-CLIENT-PRINCIPAL``: ``{"auth_typ", "claims": [{"typ", "val"}], ...}``, Base64; {} if absent or bad."""
    if not encoded:
        return {}
    try:
        document = json.loads(base64.b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError):
        return {}
    if not isinstance(document, dict):
        return {}
    claims = {
        str(item.get("typ")): str(item.get("val"))
        for item in document.get("claims") or ()
        if isinstance(item, dict) and item.get("typ") and item.get("val") is not None
    }
    return {"auth_typ": document.get("auth_typ"), **claims}


def _claim(claims: Mapping[str, Any], *types: str) -> str:
    return next((str(claims[typ]) for typ in types if claims.get(typ)), "")


MAX_REASON = 500


def reason_of(body: bytes) -> str:
    """The ``{"reason": "..."}`` of an operator request's body (empty: no reason); ``ValueError`` saying the fix."""
    if not body.strip():
        return ""
    try:
        data: Any = json.loads(body)
    except ValueError as err:
        raise ValueError(f'the body must be JSON like {{"reason": "..."}} or empty: {err}') from err
    if not isinstance(data, dict) or not isinstance(data.get("reason", ""), str):
        raise ValueError('the body must be a JSON object whose "reason" is a string, like {"reason": "..."}')
    return str(data.get("reason", "")).strip()[:MAX_REASON]
