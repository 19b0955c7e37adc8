"""Hand-written recording fakes for the app's dependencies (``from tests.fakes import ...``).

- ``deps``: settings, ``Deps``, a recording notifier, plans, the workspace the tests use;
- ``table``: Azure Tables in memory (ETags, the app's OData filters, paging);
- ``clock``: time that moves only when the test moves it;
- ``aml``: an Azure ML workspace enforcing Azure ML's rules, with injectable faults (``aml_faults``);
- ``monitor``, ``scoring``, ``queue``: Azure Monitor metrics, the smoke test's scoring client, the follow-up queue;
- ``world``: all of them wired into ``Deps`` on one clock.
"""

from tests.fakes.aml import FakeAzureML
from tests.fakes.clock import FakeClock
from tests.fakes.deps import (
    OTHER_WORKSPACE_ID,
    WORKSPACE,
    WORKSPACE_ID,
    FakeJobReader,
    FakeNotifier,
    FakeSink,
    ForbiddenFactory,
    make_deps,
    make_plan,
    make_settings,
)
from tests.fakes.monitor import FakeMetrics
from tests.fakes.queue import FakeFollowUpQueue
from tests.fakes.scoring import FakeSmoke
from tests.fakes.table import FakeTableStore
from tests.fakes.world import FakeWorld

__all__ = [
    "OTHER_WORKSPACE_ID",
    "WORKSPACE",
    "WORKSPACE_ID",
    "FakeAzureML",
    "FakeClock",
    "FakeFollowUpQueue",
    "FakeJobReader",
    "FakeMetrics",
    "FakeNotifier",
    "FakeSink",
    "FakeSmoke",
    "FakeTableStore",
    "FakeWorld",
    "ForbiddenFactory",
    "make_deps",
    "make_plan",
    "make_settings",
]
