"""Which answers the gate's error rule counts as the deployment's own failures (pure), and the latency limit that
applies when nothing else does.

Azure ML's "Troubleshooting online endpoints deployment and scoring", section "HTTP status codes"
(learn.microsoft.com/azure/machine-learning/how-to-troubleshoot-online-endpoints#http-status-codes), documents:

- **5xx**: the endpoint or the container was not serving (502, 503, 504), or an internal error;
- **424**: the model container answered non-200; its status is in the ``modelStatusCode`` dimension. A model
  5xx is a failure, a model 4xx (bad input) is the caller's;
- **408**: "the model execution took longer than the timeout supplied in ``request_timeout_ms``": the
  deployment is too slow;
- **429** "too many pending requests": more than ``2 * max_concurrent_requests_per_instance * instance_count``
  requests in flight, so the deployment is overloaded. (The endpoint-level 429, more than its request rate
  limit, is the caller's; Azure Monitor does not tell the two apart, so drop 429 from the setting when callers
  hit that limit.)

So by default (``GATE_ERROR_STATUS_CODES=5xx,408,429``) a request counts when its endpoint status or, behind a
424, its model status is 5xx, 408 or 429. The setting lists status classes (``5xx``, ``4xx``) and codes.
"""

from __future__ import annotations

from collections.abc import Collection

#: The deployment's answer took about as long as Azure ML's default ``request_timeout_ms`` (5,000 ms) allows:
#: without a baseline to compare with and without ``GATE_MAX_P99_MS``, a P99 above 80% of it means the tail of
#: the deployment's requests is timing out or about to, whatever the model. A deployment configured with a
#: longer scoring timeout needs ``GATE_MAX_P99_MS``.
NO_BASELINE_MAX_P99_MS = 4000.0


def counts_as_failure(status_class: str, model_status: str, status_code: str, counted: Collection[str]) -> bool:
    """Is a request with these Azure Monitor dimensions one of the deployment's failures under ``counted``?

    ``status_code`` is empty for data read without the ``statusCode`` split: the class then stands for it.
    ``model_status`` is ``0`` when the request never reached the model.
    """
    if status_class.strip().lower() in counted:
        return True
    return any(_matches(code, counted) for code in (status_code, model_status))


def _matches(code: str, counted: Collection[str]) -> bool:
    code = code.strip()
    if len(code) != 3 or not code.isdigit() or code[0] not in "45":
        return False
    return code in counted or f"{code[0]}xx" in counted
