"""The Azure ML workspace an event comes from, parsed once from its ARM id."""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORKSPACE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)/?$",
    re.IGNORECASE,
)

STUDIO_URL = "https://ml.azure.com"


@dataclass(frozen=True)
class WorkspaceRef:
    """Subscription, resource group and name of an Azure ML workspace."""

    subscription_id: str
    resource_group: str
    workspace_name: str

    @classmethod
    def from_arm_id(cls, arm_id: str) -> WorkspaceRef:
        """Parse a workspace ARM id (``/subscriptions/{sub}/resourceGroups/{rg}/providers/.../workspaces/{ws}``)."""
        match = _WORKSPACE_ID.match((arm_id or "").strip())
        if not match:
            raise ValueError(
                f"{arm_id!r} is not an Azure ML workspace id; expected "
                "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}"
            )
        return cls(match["sub"], match["rg"], match["ws"])

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace_name}"
        )

    @property
    def key(self) -> str:
        """Case-insensitive identity, as ARM compares resource ids."""
        return self.arm_id.lower()

    def studio_link(self, path: str) -> str:
        """A deep link into Azure ML studio for ``path`` (e.g. ``runs/{id}``) in this workspace."""
        return f"{STUDIO_URL}/{path.lstrip('/')}?wsid={self.arm_id}"
