"""Throwaway certificate authority shared by every devkit HTTPS server of one stack."""

from __future__ import annotations

import logging
import shutil
import ssl
import tempfile
from pathlib import Path

import trustme

logger = logging.getLogger(__name__)

#: Names every devkit server certificate is valid for (loopback only).
SERVER_IDENTITIES: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")


class DevCertificateAuthority:
    """A trustme CA whose ``ca.pem`` lives in a private temp dir until :meth:`close`.

    Clients trust it through ``REQUESTS_CA_BUNDLE`` (``SSL_CERT_FILE`` is not honoured by azure-core).
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._owns_dir = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="devkit-ca-")) if directory is None else directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._ca = trustme.CA(organization_name="AML devkit throwaway CA")
        self.ca_path = self.directory / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_path))
        self._leaf = self._ca.issue_cert(*SERVER_IDENTITIES, common_name="127.0.0.1")
        logger.debug("devkit CA written to %s", self.ca_path)

    def server_context(self) -> ssl.SSLContext:
        """Return a fresh server-side SSL context presenting a 127.0.0.1/localhost certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Return a client-side SSL context that trusts this CA (for stdlib clients in tests)."""
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context

    def close(self) -> None:
        """Delete the temp dir holding ``ca.pem`` (only if this object created it)."""
        if self._owns_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> DevCertificateAuthority:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
