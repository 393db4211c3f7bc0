"""The threaded executor (campaign_assets.executor) on a real SQLite instance.

Jobs here are built from ops that meet at a ``threading.Barrier``: a barrier
is shared only by threads of one process, so a run that gets past it ran its
steps side by side in the run worker. No test waits on the clock: barriers
and events decide, and their timeouts only turn a hang into a failure.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import dagster as dg
import pytest

from campaign_assets.executor import threaded_executor

TAG = "test/service"
ROUNDS = 60  # log records per op in the logging job


# ---- jobs (module level: execute_job needs them reconstructable) ----------------------
def _barrier_job() -> dg.JobDefinition:
    barrier = threading.Barrier(3, timeout=120)

    def meeting(name: str) -> dg.OpDefinition:
        @dg.op(name=name)
        def _op() -> int:
            barrier.wait()  # only threads of one process can all get here
            return 1

        return _op

    @dg.op
    def total(a: int, b: int, c: int) -> int:
        return a + b + c

    @dg.job(executor_def=threaded_executor)
    def barrier_job() -> None:
        total(meeting("a")(), meeting("b")(), meeting("c")())

    return barrier_job


IN_FLIGHT = {"now": 0, "peak": 0}
IN_FLIGHT_LOCK = threading.Lock()


def _tagged_job() -> dg.JobDefinition:
    def tagged(name: str) -> dg.OpDefinition:
        @dg.op(name=name, tags={TAG: "sheets"})
        def _op() -> None:
            with IN_FLIGHT_LOCK:
                IN_FLIGHT["now"] += 1
                IN_FLIGHT["peak"] = max(IN_FLIGHT["peak"], IN_FLIGHT["now"])
            try:
                for _ in range(200):  # give another step every chance to start beside it
                    threading.Event().wait(0.001)
            finally:
                with IN_FLIGHT_LOCK:
                    IN_FLIGHT["now"] -= 1

        return _op

    @dg.job(
        executor_def=threaded_executor.configured(
            {"tag_concurrency_limits": [{"key": TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]}
        )
    )
    def tagged_job() -> None:
        for i in range(4):
            tagged(f"t{i}")()

    return tagged_job


ATTEMPTS: dict[str, int] = {}


def _retry_job() -> dg.JobDefinition:
    @dg.op(retry_policy=dg.RetryPolicy(max_retries=2))
    def flaky(context) -> str:  # noqa: ANN001 (a string annotation is refused by @op)
        ATTEMPTS["flaky"] = ATTEMPTS.get("flaky", 0) + 1
        if context.retry_number < 1:
            raise RuntimeError("vendor said 503")
        return "ok"

    @dg.op
    def broken() -> str:
        raise ValueError("no such campaign")

    @dg.op
    def after_broken(value: str) -> str:
        return value

    @dg.op
    def after_flaky(value: str) -> str:
        return value.upper()

    @dg.job(executor_def=threaded_executor)
    def retry_job() -> None:
        after_flaky(flaky())
        after_broken(broken())

    return retry_job


def _logging_job() -> dg.JobDefinition:
    """Twelve steps that log through a managed python logger while others start."""

    def chatty(name: str) -> dg.OpDefinition:
        @dg.op(name=name)
        def _op() -> None:
            log = logging.getLogger("campaign_assets.http")
            for i in range(ROUNDS):
                log.info("call %s of %s", i, name)

        return _op

    @dg.job(executor_def=threaded_executor)
    def logging_job() -> None:
        for i in range(12):
            chatty(f"chatty_{i}")()

    return logging_job


# ---- tests ------------------------------------------------------------------------------
@pytest.fixture
def instance(tmp_path) -> Iterator[dg.DagsterInstance]:
    overrides = {"python_logs": {"python_log_level": "INFO", "managed_python_loggers": ["campaign_assets.http"]}}
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        yield instance


def _events(instance: dg.DagsterInstance, run_id: str, kind: dg.DagsterEventType) -> list[dg.EventLogEntry]:
    return [r.event_log_entry for r in instance.get_records_for_run(run_id, of_type=kind).records]


@pytest.mark.timeout(240)
def test_steps_run_side_by_side_in_the_run_worker(instance: dg.DagsterInstance) -> None:
    with dg.execute_job(dg.reconstructable(_barrier_job), instance=instance) as result:
        assert result.success
        assert result.output_for_node("total") == 3
    starts = _events(instance, result.run_id, dg.DagsterEventType.STEP_START)
    assert {e.step_key for e in starts} == {"a", "b", "c", "total"}
    # stdout and stderr are captured once, for the whole run
    captures = _events(instance, result.run_id, dg.DagsterEventType.LOGS_CAPTURED)
    assert len(captures) == 1


@pytest.mark.timeout(240)
def test_a_tag_limit_keeps_steps_of_one_service_apart(instance: dg.DagsterInstance) -> None:
    IN_FLIGHT.update(now=0, peak=0)
    result = dg.execute_job(dg.reconstructable(_tagged_job), instance=instance)
    assert result.success
    assert IN_FLIGHT["peak"] == 1


@pytest.mark.timeout(240)
def test_retries_and_failures_reach_the_run(instance: dg.DagsterInstance) -> None:
    ATTEMPTS.clear()
    with dg.execute_job(dg.reconstructable(_retry_job), instance=instance, raise_on_error=False) as result:
        assert not result.success
        assert result.output_for_node("after_flaky") == "OK"
    assert ATTEMPTS["flaky"] == 2
    failed = {e.step_key for e in _events(instance, result.run_id, dg.DagsterEventType.STEP_FAILURE)}
    assert failed == {"broken"}
    started = {e.step_key for e in _events(instance, result.run_id, dg.DagsterEventType.STEP_START)}
    assert started == {"broken", "flaky", "after_flaky"}  # not after_broken


@pytest.mark.timeout(240, method="thread")  # a deadlocked main thread never sees SIGALRM
def test_steps_starting_while_others_log_do_not_deadlock(instance: dg.DagsterInstance) -> None:
    """Dagster calls logging.config.dictConfig as each step's log manager is
    built; steps logging at that moment deadlocked against it. Every record
    reaches the run's event log exactly once."""
    result = dg.execute_job(dg.reconstructable(_logging_job), instance=instance)
    assert result.success
    messages = [e.user_message for e in instance.all_logs(result.run_id) if "call " in (e.user_message or "")]
    assert len(messages) == 12 * ROUNDS
    assert len(set(messages)) == 12 * ROUNDS
