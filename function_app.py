"""Azure Functions entry points: triggers only; the work is in app/ (app/wiring.py builds what it needs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

if TYPE_CHECKING:
    from app.ports import Deps

# Each trigger imports its use case (and the composition root, app/wiring.py) when it first runs, not here: the
# Functions host imports this file to index the functions at every cold start, before any event, and the app's modules
# would add about half a second to it (make bench measures the import against azure.functions').

app = func.FunctionApp()


@app.function_name("on_aml_event")
@app.event_grid_trigger(arg_name="event")
def on_aml_event(event: func.EventGridEvent) -> None:
    """Every Azure ML event from the workspace's Event Grid system topic (either schema)."""
    from app.handlers import HANDLERS
    from app.intake.dispatch import receive
    from app.wiring import production_deps

    receive(event, production_deps, HANDLERS)


@app.function_name("reconcile_rollouts")
@app.timer_trigger(arg_name="timer", schedule="%RECONCILE_SCHEDULE%", run_on_startup=False, use_monitor=True)
def reconcile_rollouts(timer: func.TimerRequest) -> None:
    """Drive unfinished rollouts to completion; re-drive what a crash or a lost event left behind."""
    from app.rollout.run.reconcile import reconcile

    reconcile(_deps())


@app.function_name("follow_up_rollout")
@app.queue_trigger(arg_name="message", queue_name="%ROLLOUT_QUEUE%", connection="AzureWebJobsStorage")
def follow_up_rollout(message: func.QueueMessage) -> None:
    """A follow-up check, due when an AML write should have finished: advance that endpoint now, not next tick."""
    from app.rollout.run.followup import follow_up

    follow_up(message.get_body(), message.dequeue_count or 0, _deps())


@app.function_name("resync_models")
@app.timer_trigger(arg_name="timer", schedule="%RESYNC_SCHEDULE%", run_on_startup=False, use_monitor=True)
def resync_models(timer: func.TimerRequest) -> None:
    """Roll out deploy=true models that no event announced (lost events, tags added after registration)."""
    from app.rollout.run.resync import resync

    resync(_deps())


@app.function_name("purge_history")
@app.timer_trigger(arg_name="timer", schedule="%RETENTION_SCHEDULE%", run_on_startup=False, use_monitor=True)
def purge_history(timer: func.TimerRequest) -> None:
    """Delete ledger and idempotency rows older than ROLLOUT_RETENTION_DAYS, a bounded batch per run."""
    from app.rollout.ledger.retention import purge_history as purge

    purge(_deps())


@app.function_name("rollout_status")
@app.route(route="rollouts", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def rollout_status(req: func.HttpRequest) -> func.HttpResponse:
    """The rollout ledger as JSON, newest first; filter with ?endpoint=&model=&state=."""
    from app.api.status import rollout_status as status

    code, body = status(req.params, _deps())
    return func.HttpResponse(body, status_code=code, mimetype="application/json")


@app.function_name("rollout_control")
@app.route(route="rollouts/{endpoint}/{deployment}/{action}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def rollout_control(req: func.HttpRequest) -> func.HttpResponse:
    """Operator actions on one rollout: promote, rollback, abort, retry, pause, resume, approve, reject."""
    from app.api.controls import operator_action

    route = req.route_params
    code, body = operator_action(
        route["endpoint"], route["deployment"], route["action"], req.get_body(), dict(req.headers), _deps()
    )
    return func.HttpResponse(body, status_code=code, mimetype="application/json")


def _deps() -> Deps:
    """The adapters, built by the composition root (once per process: ``production_deps`` caches them)."""
    from app.wiring import production_deps

    return production_deps()
