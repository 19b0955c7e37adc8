"""ModelRegistered: the tag-driven rollout starts here (until it lands, the model is only logged)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.deps import Deps
    from shared.events import AmlEvent, ModelRegisteredData

logger = logging.getLogger(__name__)


def handle(event: AmlEvent[ModelRegisteredData], deps: Deps) -> str:
    model = event.data
    logger.info("%s model %s:%s tags=%s", event.label, model.model_name, model.model_version, dict(model.model_tags))
    return f"logged: model {model.model_name}:{model.model_version}"
