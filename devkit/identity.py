"""Local token endpoint speaking the App Service managed-identity protocol (api-version 2019-08-01)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from devkit._server import BackgroundServer, Request, Response

logger = logging.getLogger(__name__)

#: Client id of the devkit's pretend user-assigned identity (a fixed, obviously fake GUID).
DEVKIT_CLIENT_ID = "00000000-0000-0000-0000-00000000c11d"
#: Object (principal) id and tenant the devkit tokens carry.
DEVKIT_PRINCIPAL_ID = "00000000-0000-0000-0000-0000000000b1"
DEVKIT_TENANT_ID = "00000000-0000-0000-0000-00000000a7e1"
TOKEN_PATH = "/msi/token"
TOKEN_ISSUER = "https://devkit.invalid/identity/"
TOKEN_LIFETIME_S = 3600


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def normalize_resource(resource: str) -> str:
    """Return ``resource`` as an audience: no ``/.default`` suffix, no trailing slash."""
    resource = resource.removesuffix("/.default")
    return resource.rstrip("/")


@dataclass(frozen=True)
class TokenRequest:
    """One call to the token endpoint, as recorded."""

    time: float
    resource: str
    api_version: str
    client_id: str | None
    status: int


class TokenIssuer:
    """Issues HS256-signed JWTs with a per-run random key and verifies them for the other stand-ins."""

    def __init__(self, client_id: str = DEVKIT_CLIENT_ID) -> None:
        self.client_id = client_id
        self._key = secrets.token_bytes(32)

    def issue(self, resource: str, client_id: str | None = None) -> tuple[str, int]:
        """Return ``(token, expires_on)`` for the given resource (audience)."""
        now = int(time.time())
        expires_on = now + TOKEN_LIFETIME_S
        client = client_id or self.client_id
        # Another identity is another principal: ARM throttles per principal (the token's oid).
        principal = DEVKIT_PRINCIPAL_ID if client == self.client_id else str(uuid.uuid5(uuid.NAMESPACE_URL, client))
        claims = {
            "aud": normalize_resource(resource),
            "iss": TOKEN_ISSUER,
            "iat": now,
            "nbf": now,
            "exp": expires_on,
            "appid": client,
            "oid": principal,
            "sub": principal,
            "tid": DEVKIT_TENANT_ID,
            "idtyp": "app",
            "jti": secrets.token_hex(8),
        }
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64url(json.dumps(claims).encode())
        signature = _b64url(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        return f"{header}.{payload}.{signature}", expires_on

    def verify(self, token: str, audience: str | None = None) -> dict[str, Any] | None:
        """Return the token's claims if this issuer signed it, it is unexpired and (optionally) for ``audience``."""
        try:
            header, payload, signature = token.split(".")
            expected = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _b64url_decode(signature)):
                return None
            claims: dict[str, Any] = json.loads(_b64url_decode(payload))
        except (ValueError, json.JSONDecodeError):
            return None
        if claims.get("exp", 0) < time.time():
            return None
        if audience is not None and claims.get("aud") != normalize_resource(audience):
            return None
        return claims

    def verify_authorization(self, authorization: str | None, audience: str | None = None) -> bool:
        """Return True for an ``Authorization: Bearer <token>`` value carrying a token this issuer signed."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return False
        return self.verify(authorization[7:].strip(), audience) is not None


class TokenEndpoint:
    """The App Service managed-identity endpoint: ``GET IDENTITY_ENDPOINT?resource=...`` with ``X-IDENTITY-HEADER``.

    Point the app at it with :attr:`env` (``IDENTITY_ENDPOINT``, ``IDENTITY_HEADER``, ``AZURE_CLIENT_ID``).
    """

    def __init__(self, issuer: TokenIssuer | None = None) -> None:
        self.issuer = issuer or TokenIssuer()
        self.identity_header = secrets.token_urlsafe(24)
        self._requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        self._server = BackgroundServer("identity", self._handle)
        self.url = f"{self._server.url}{TOKEN_PATH}"
        self.port = self._server.port

    @property
    def env(self) -> dict[str, str]:
        """App settings that make ``DefaultAzureCredential`` fetch tokens here."""
        return {
            "IDENTITY_ENDPOINT": self.url,
            "IDENTITY_HEADER": self.identity_header,
            "AZURE_CLIENT_ID": self.issuer.client_id,
        }

    def start(self) -> TokenEndpoint:
        """Start serving; returns self."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def __enter__(self) -> TokenEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def requests(self) -> list[TokenRequest]:
        """Token requests received so far (oldest first)."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget recorded token requests."""
        with self._lock:
            self._requests.clear()

    def _record(self, request: Request, status: int) -> None:
        entry = TokenRequest(
            time=time.time(),
            resource=request.query.get("resource", ""),
            api_version=request.query.get("api-version", ""),
            client_id=request.query.get("client_id"),
            status=status,
        )
        with self._lock:
            self._requests.append(entry)

    def _handle(self, request: Request) -> Response:
        if request.path != TOKEN_PATH or request.method != "GET":
            return Response(404, {"statusCode": 404, "message": "Not found"})
        response = self._token_response(request)
        self._record(request, response.status)
        return response

    def _token_response(self, request: Request) -> Response:
        presented = request.headers.get("x-identity-header", "")
        if not hmac.compare_digest(presented.encode(), self.identity_header.encode()):
            logger.warning("token request with a missing or wrong X-IDENTITY-HEADER")
            return Response(401, {"statusCode": 401, "message": "X-IDENTITY-HEADER missing or invalid"})
        resource = request.query.get("resource")
        if not resource:
            return Response(400, {"statusCode": 400, "message": "resource query parameter is required"})
        if request.query.get("api-version") != "2019-08-01":
            return Response(400, {"statusCode": 400, "message": "api-version 2019-08-01 is required"})
        client_id = request.query.get("client_id") or self.issuer.client_id
        token, expires_on = self.issuer.issue(resource, client_id)
        logger.debug("issued token for resource %s", resource)
        return Response(
            200,
            {
                "access_token": token,
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": client_id,
            },
        )
