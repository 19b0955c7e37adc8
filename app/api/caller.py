"""Who called the operator API, for the audit: only an identity the platform validated, else "function key".

App Service authentication ("Easy Auth") validates the caller's token in front of the app and injects the result as
``X-MS-CLIENT-PRINCIPAL``, the base64 of a JSON object (``auth_typ``, ``claims`` as ``{typ, val}`` pairs,
``name_typ``, ``role_typ``): "Work with user identities in Azure App Service authentication",
learn.microsoft.com/azure/app-service/configure-authentication-user-identities. With authentication on, the
platform removes client-sent copies of these headers ("external requests aren't allowed to set these headers").
With it off, nothing does: any caller holding a function key could write ``X-MS-CLIENT-PRINCIPAL-NAME: ceo``. So the
app trusts the principal only when the platform says authentication is on (``WEBSITE_AUTH_ENABLED=True``, which it
injects: learn.microsoft.com/azure/app-service/reference-app-settings#authentication--authorization; the Functions
host itself builds an identity from the header only then, ``AuthenticationLevelHandler`` in azure-functions-host),
and reads the name from the decoded principal's claims, never from the ``-NAME`` header alone.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

PRINCIPAL_HEADER = "x-ms-client-principal"
#: What the audit records when no validated identity is known: the request passed the function's key check.
FUNCTION_KEY = "function key"
MAX_CALLER = 200
MAX_PRINCIPAL_CHARS = 64_000
#: Claims that name a person or an application, tried after the principal's own ``name_typ``.
NAME_CLAIMS = (
    "name",
    "preferred_username",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    "appid",
)


def caller_of(headers: Mapping[str, str], *, easy_auth: bool) -> str:
    """The caller the audit records: the principal's name when App Service authentication validated it, else
    ``FUNCTION_KEY``."""
    if not easy_auth:
        return FUNCTION_KEY
    raw = next((value for key, value in headers.items() if key.lower() == PRINCIPAL_HEADER), "")
    if not raw:
        return FUNCTION_KEY
    name = _name(_decode(raw))
    if not name:
        logger.warning(
            "%s is not the principal App Service authentication sends; recorded as %s", PRINCIPAL_HEADER, FUNCTION_KEY
        )
        return FUNCTION_KEY
    return name[:MAX_CALLER]


def _decode(raw: str) -> Any:
    if len(raw) > MAX_PRINCIPAL_CHARS:
        return None
    try:
        return json.loads(base64.b64decode(raw.strip(), validate=True))
    except (binascii.Error, ValueError):
        return None


def _name(principal: Any) -> str:
    if not isinstance(principal, dict) or not isinstance(principal.get("claims"), list):
        return ""
    claims: dict[str, str] = {}
    for claim in principal["claims"]:
        if isinstance(claim, dict) and isinstance(claim.get("typ"), str) and isinstance(claim.get("val"), str):
            claims.setdefault(claim["typ"], claim["val"])
    name_typ = principal.get("name_typ")
    wanted = ((name_typ,) if isinstance(name_typ, str) else ()) + NAME_CLAIMS
    return next((claims[typ].strip() for typ in wanted if claims.get(typ, "").strip()), "")
