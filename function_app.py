"""Azure Functions entry points: triggers only; the work is in app/ (app/wiring.py builds what it needs)."""

from __future__ import annotations

import azure.functions as func

from app.api.controls import operator_action
from app.api.status import rollout_status as status
from app.handlers import HANDLERS
from app.intake.dispatch import receive
from app.rollout.ledger.retention import purge_history as purge
from app.rollout.run.followup import follow_up
from app.rollout.run.reconcile import reconcile
from app.rollout.run.resync import resync
from app.wiring import production_deps

app = func.FunctionApp()


@app.function_name("on_aml_event")
@app.event_grid_trigger(arg_name="event")
def on_aml_event(event: func.EventGridEvent) -> None:
    """Every Azure ML event from the workspace's Event Grid system topic (either schema)."""
    receive(event, production_deps, HANDLERS)


@app.function_name("reconcile_rollouts")
@app.timer_trigger(arg_name="timer", schedule="%RECONCILE_SCHEDULE%", run_on_startup=False, use_monitor=True)
def reconcile_rollouts(timer: func.TimerRequest) -> None:
    """Drive unfinished rollouts to completion; re-drive what a crash or a lost event left behind."""
    reconcile(production_deps())


@app.function_name("follow_up_rollout")
@app.queue_trigger(arg_name="message", queue_name="%ROLLOUT_QUEUE%", connection="AzureWebJobsStorage")
def follow_up_rollout(message: func.QueueMessage) -> None:
    """A follow-up check, due when an AML write should have finished: advance that endpoint now, not next tick."""
    follow_up(message.get_body(), message.dequeue_count or 0, production_deps())


@app.function_name("resync_models")
@app.timer_trigger(arg_name="timer", schedule="%RESYNC_SCHEDULE%", run_on_startup=False, use_monitor=True)
def resync_models(timer: func.TimerRequest) -> None:
    """Roll out deploy=true models that no event announced (lost events, tags added after registration)."""
    resync(production_deps())


@app.function_name("purge_history")
@app.timer_trigger(arg_name="timer", schedule="%RETENTION_SCHEDULE%", run_on_startup=False, use_monitor=True)
def purge_history(timer: func.TimerRequest) -> None:
    """Delete ledger and idempotency rows older than ROLLOUT_RETENTION_DAYS, a bounded batch per run."""
    purge(production_deps())


@app.function_name("rollout_status")
@app.route(route="rollouts", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def rollout_status(req: func.HttpRequest) -> func.HttpResponse:
    """The rollout ledger as JSON, newest first; filter with ?endpoint=&model=&state=."""
    code, body = status(req.params, production_deps())
    return func.HttpResponse(body, status_code=code, mimetype="application/json")


@app.function_name("rollout_control")
@app.route(route="rollouts/{endpoint}/{deployment}/{action}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def rollout_control(req: func.HttpRequest) -> func.HttpResponse:
    """Operator actions on one rollout: promote, rollback, abort, retry, pause, resume (docs/operations.md)."""
    route = req.route_params
    code, body = operator_action(
        route["endpoint"], route["deployment"], route["action"], req.get_body(), dict(req.headers), production_deps()
    )
    return func.HttpResponse(body, status_code=code, mimetype="application/json")
