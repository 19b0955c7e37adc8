"""DevStack: CA, AML emulator, token endpoint, topic sink and Azurite, plus the app settings that use them."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator, Mapping
from types import FrameType
from typing import Any

from devkit.aml_emulator import PROVIDER, AmlEmulator
from devkit.azurite import Azurite
from devkit.identity import TokenEndpoint, TokenIssuer
from devkit.tls import DevCertificateAuthority
from devkit.topic_sink import TopicSink

logger = logging.getLogger(__name__)

SUBSCRIPTION_ID = "00000000-0000-0000-0000-00000000de71"
RESOURCE_GROUP = "rg-devkit"
WORKSPACE_NAME = "mlw-devkit"
WORKSPACE_ID = (
    f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}/providers/{PROVIDER}/workspaces/{WORKSPACE_NAME}"
)
LOCATION = "eastus"

#: Variables that would make DefaultAzureCredential pick another credential (service principal, workload
#: identity, another managed-identity flavour) or narrow its chain, so the stack removes them while applied.
CONFLICTING_ENV: tuple[str, ...] = (
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TOKEN_CREDENTIALS",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
)


def _no_proxy() -> str:
    existing = [h for h in os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")).split(",") if h]
    return ",".join(dict.fromkeys([*existing, "127.0.0.1", "localhost"]))


@contextlib.contextmanager
def applied_env(env: Mapping[str, str], unset: tuple[str, ...] = CONFLICTING_ENV) -> Iterator[None]:
    """Set ``env`` (and remove ``unset``) in ``os.environ`` for the block, then restore exactly what was there."""
    keys = set(env) | set(unset)
    saved = {k: os.environ.get(k) for k in keys}
    try:
        for key in unset:
            os.environ.pop(key, None)
        os.environ.update(env)
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class DevStack:
    """Starts every stand-in (each one is also usable alone) and stops them all on exit, whatever happens.

    >>> with DevStack() as stack, stack.applied():
    ...     ...  # the unchanged app and the real SDKs now talk to the local stand-ins
    """

    def __init__(
        self,
        *,
        operation_duration_s: float = 0.5,
        with_azurite: bool = True,
        topic_key: str | None = None,
    ) -> None:
        self.operation_duration_s = operation_duration_s
        self.with_azurite = with_azurite
        self.topic_key = topic_key
        self.ca: DevCertificateAuthority | None = None
        self.identity: TokenEndpoint | None = None
        self._aml: AmlEmulator | None = None
        self._sink: TopicSink | None = None
        self.azurite: Azurite | None = None
        self._previous_sigterm: Any = None
        self._started = False

    # ------------------------------------------------------------------ components (typed accessors)

    @property
    def aml(self) -> AmlEmulator:
        """The Azure ML (ARM) emulator."""
        if self._aml is None:
            raise RuntimeError("DevStack is not started")
        return self._aml

    @property
    def sink(self) -> TopicSink:
        """The Event Grid topic sink."""
        if self._sink is None:
            raise RuntimeError("DevStack is not started")
        return self._sink

    @property
    def issuer(self) -> TokenIssuer:
        """The token issuer shared by the token endpoint, the emulator and the sink."""
        if self.identity is None:
            raise RuntimeError("DevStack is not started")
        return self.identity.issuer

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> DevStack:
        """Start every component; if any fails (or Ctrl-C arrives), stop what started and re-raise."""
        if self._started:
            return self
        try:
            self.ca = DevCertificateAuthority()
            self.identity = TokenEndpoint().start()
            self._aml = AmlEmulator(
                self.ca,
                subscription_id=SUBSCRIPTION_ID,
                resource_group=RESOURCE_GROUP,
                workspace_name=WORKSPACE_NAME,
                location=LOCATION,
                issuer=self.identity.issuer,
                operation_duration_s=self.operation_duration_s,
            ).start()
            self._sink = TopicSink(self.ca, key=self.topic_key, issuer=self.identity.issuer).start()
            if self.with_azurite:
                self.azurite = Azurite()
                self.azurite.start()
        except BaseException:
            self.stop()
            raise
        self._started = True
        self._install_sigterm_handler()
        logger.info("dev stack up: ARM %s, topic %s", self.aml.url, self.sink.endpoint)
        return self

    def stop(self) -> None:
        """Stop everything that was started, in reverse order; never raises for one component's failure."""
        self._restore_sigterm_handler()
        components: list[Any] = [self.azurite, self._sink, self._aml, self.identity, self.ca]
        for component in components:
            if component is None:
                continue
            try:
                component.stop() if hasattr(component, "stop") else component.close()
            except Exception:
                logger.exception("failed to stop %s", type(component).__name__)
        self.azurite = self._sink = self._aml = self.identity = self.ca = None
        self._started = False

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _install_sigterm_handler(self) -> None:
        # SIGTERM would otherwise kill Python without unwinding, leaving Azurite orphaned. Only take it over
        # when nobody else did and only from the main thread (signal handlers can't be set elsewhere).
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)

    def _restore_sigterm_handler(self) -> None:
        if self._previous_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        self._previous_sigterm = None

    # ------------------------------------------------------------------ settings

    @property
    def env(self) -> dict[str, str]:
        """The app settings that point the unchanged app and the real SDKs at this stack."""
        if not self._started or self.ca is None or self.identity is None:
            raise RuntimeError("DevStack is not started")
        env = {
            "AZUREML_DEV_URL_MFE": self.aml.url,
            **self.aml.cloud_env(),  # azure-ai-ml finds the emulated registries (devkit/aml_emulator/discovery.py)
            "REQUESTS_CA_BUNDLE": str(self.ca.ca_path),
            **self.identity.env,
            **self.sink.env,
            "AML_ALLOWED_WORKSPACES": WORKSPACE_ID,
            # Azure Monitor's regional batch metrics endpoints, all served by the emulator (region in the path).
            "METRICS_BATCH_ENDPOINT": f"{self.aml.url}/{{region}}",
            "NO_PROXY": _no_proxy(),
        }
        if self.azurite is not None:
            env.update(self.azurite.env)
        return env

    def applied(self) -> contextlib.AbstractContextManager[None]:
        """Context manager: apply :attr:`env` to ``os.environ`` (removing :data:`CONFLICTING_ENV`), then restore."""
        return applied_env(self.env)

    def reset(self) -> None:
        """Fresh state: emulator (models, resources, faults, log), sink, token log and Azurite tables/blobs."""
        self.aml.reset()
        self.sink.reset()
        if self.identity is not None:
            self.identity.reset()
        if self.azurite is not None:
            self.azurite.clear()
