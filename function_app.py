"""Azure Functions entry points: wiring only; the work is in handlers/ and shared/."""

from __future__ import annotations

import azure.functions as func

from handlers import HANDLERS
from shared.deps import production_deps
from shared.dispatch import process
from shared.events import envelope_from_function_event

app = func.FunctionApp()


@app.function_name("on_aml_event")
@app.event_grid_trigger(arg_name="event")
def on_aml_event(event: func.EventGridEvent) -> None:
    """Every Azure ML event from the workspace's Event Grid system topic (either schema)."""
    process(envelope_from_function_event(event), production_deps(), HANDLERS)
