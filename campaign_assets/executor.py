"""Steps as threads of the run worker: the executor of every campaign run.

A campaign's steps wait on vendors, not on the CPU. Dagster's multiprocess
executor gives each step its own process; on two cores that start cost
(1.8 s of worker start per step even with a preloaded forkserver, about 70
CPU-seconds per campaign with the run worker) was the whole gap between a run
and its ideal schedule, and what kept a backfill from saturating the vendors
(README "Benchmarks"). Here every step runs in a thread of the run worker:
starting one costs a thread and an execution plan, the job definition is
built once per run (``ReconstructableJob.get_definition`` is cached per
process), and nothing is pickled.

Everything else is Dagster's own machinery, as the multiprocess executor uses
it: ``ActiveExecution`` orders the steps and holds ``max_concurrent``, the
``tag_concurrency_limits``, ``dagster/priority`` and retries;
``InstanceConcurrencyContext`` claims the pools' slots across runs; each step
runs through ``execute_plan_iterator`` with its own resources (and one
instance the step threads share), so a step sees what it would see in its own
process. The differences:

- stdout and stderr are captured once for the run (as the in-process executor
  does), because capture redirects the process's file descriptors, which
  threads share; ``capture_logs: false`` leaves them alone, for a run worker
  that is a terminal's own process (``campaign-assets launch`` draws its
  progress there);
- a step cannot be killed: when the run is terminated, steps in flight are
  abandoned with the process (their ledger claims and service slots name this
  pid, so the next claimant on this host frees them at once, as after a
  crash; see README "Bounds after a crash");
- Dagster attaches each computing step's handler to the managed python
  loggers (``campaign_assets.http``, ``campaign_assets.items``), which are
  per process: a line one of them logs while two steps compute is stored once,
  in the run's log, but may be shown under the other step.

Dagster tracks a threaded executor as a feature request
(dagster-io/dagster#4041); this one builds on the 1.13 internals that the
multiprocess executor uses, which is why ``pyproject.toml`` pins dagster below
1.14.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import create_execution_plan, execute_plan_iterator
from dagster._core.execution.compute_logs import create_compute_log_file_key
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.context_creation_job import create_context_free_log_manager
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.plan.state import KnownExecutionState
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.executor.base import Executor
from dagster._core.executor.init import InitExecutorContext
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClassData
from dagster._utils.error import SerializableErrorInfo, serializable_error_info_from_exc_info

# A step's events reach the orchestrating loop through one queue; the loop
# wakes on the first event or after this long (pools' and retries' timers).
WAKE_S = 0.05
# Compute logs are captured once per run (file descriptors are per process).
NO_CAPTURE = ConfigurableClassData("dagster._core.storage.noop_compute_log_manager", "NoOpComputeLogManager", "{}")


class StepThreadInstance(dg.DagsterInstance):
    """The instance a step thread works with.

    Dagster builds each step's log manager with the instance's YAML-defined
    handlers, and to find them it calls ``logging.config.dictConfig`` even when
    dagster.yaml defines none. dictConfig takes the logging module's lock and
    then every handler's; a step logging at the same moment holds its handler's
    lock and then wants the module's (SQLAlchemy asks for a logger as the event
    is stored): two steps in one process deadlock. With no ``python_logs:
    dagster_handler_config`` there are no handlers to find, so none is looked
    for; with one, Dagster's own lookup runs as before.
    """

    def get_yaml_python_handlers(self) -> Sequence[logging.Handler]:
        if not self.get_python_log_dagster_handler_config():
            return []
        return super().get_yaml_python_handlers()

    def handle_new_event(self, event: dg.EventLogEntry, *, batch_metadata: Any = None) -> None:
        """Every step plan announces its own (here no-op) log capture; the run's
        one capture, made by the executor, already names every step."""
        if event.dagster_event is not None and event.dagster_event.event_type == dg.DagsterEventType.LOGS_CAPTURED:
            return
        super().handle_new_event(event, batch_metadata=batch_metadata)


STEP_INSTANCE = ConfigurableClassData(StepThreadInstance.__module__, StepThreadInstance.__name__, "{}")

_DONE = object()


@dataclass(frozen=True)
class _Crash:
    """A step thread raised outside Dagster's own step handling (its step: the attempt's)."""

    error: SerializableErrorInfo


@dataclass(frozen=True)
class _Attempt:
    """One attempt of a step, in its thread; its events arrive on the shared inbox.
    A retry can start before the thread of the attempt it replaces has ended."""

    key: str
    thread: threading.Thread


def _run_step(
    inbox: queue.SimpleQueue,
    attempt: int,
    *,
    key: str,
    recon_job: ReconstructableJob,
    dagster_run: DagsterRun,
    run_config: Mapping[str, object],
    instance: dg.DagsterInstance,
    retries: RetryMode,
    known_state: KnownExecutionState,
    repository_load_data: Any,
) -> None:
    """Execute one step as its own (single-step) plan, as a step process does,
    on the step threads' shared instance."""
    try:
        started = DagsterEvent.step_worker_started(
            create_context_free_log_manager(instance, dagster_run),
            dagster_run.job_name,
            message=f'Executing step "{key}" in a thread of the run worker.',
            metadata={"pid": dg.MetadataValue.text(str(os.getpid()))},
            step_key=key,
        )
        inbox.put((attempt, started))
        plan = create_execution_plan(
            job=recon_job,
            run_config=run_config,
            step_keys_to_execute=[key],
            known_state=known_state,
            repository_load_data=repository_load_data,
        )
        for event in execute_plan_iterator(
            plan, recon_job, dagster_run, run_config=run_config, retry_mode=retries.for_inner_plan(), instance=instance
        ):
            inbox.put((attempt, event))
    except BaseException:  # a thread must report whatever ends it
        inbox.put((attempt, _Crash(serializable_error_info_from_exc_info(sys.exc_info()))))
    finally:
        inbox.put((attempt, _DONE))


class ThreadedExecutor(Executor):
    """Run the plan's steps in threads of this process (see the module docstring)."""

    def __init__(
        self,
        retries: RetryMode,
        max_concurrent: int,
        tag_concurrency_limits: list[dict[str, Any]] | None = None,
        capture_logs: bool = True,
    ) -> None:
        self._retries = retries
        self._capture_logs = capture_logs
        self._max_concurrent = max_concurrent
        self._tag_concurrency_limits = list(tag_concurrency_limits or [])

    @property
    def retries(self) -> RetryMode:
        return self._retries

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        job = plan_context.reconstructable_job
        instance = plan_context.instance
        ref = instance.get_ref()
        step_ref = ref._replace(
            compute_logs_data=NO_CAPTURE,
            # a deployment's own instance class is kept (and then owns the logging lookup)
            custom_instance_class_data=ref.custom_instance_class_data or STEP_INSTANCE,
        )
        step_keys = execution_plan.step_keys_to_execute
        yield DagsterEvent.engine_event(
            plan_context,
            f"Executing steps in threads of the run worker (at most {self._max_concurrent} at once)",
            event_specific_data=EngineEventData(metadata={"step_keys": dg.MetadataValue.text(str(step_keys))}),
        )
        inbox: queue.SimpleQueue = queue.SimpleQueue()
        running: dict[int, _Attempt] = {}
        attempts = itertools.count()
        with ExitStack() as stack:
            if self._capture_logs:
                manager = instance.compute_log_manager
                log_key = manager.build_log_key_for_run(plan_context.run_id, create_compute_log_file_key())
                log_context = stack.enter_context(manager.capture_logs(log_key))
                yield DagsterEvent.capture_logs(plan_context, step_keys, log_key, log_context)
            # One instance for every step thread (storage engines are thread-safe): building
            # one per step cost a tenth of a second of each step's start.
            step_instance = stack.enter_context(dg.DagsterInstance.from_ref(step_ref))
            concurrency = stack.enter_context(InstanceConcurrencyContext(instance, plan_context.dagster_run))
            active = stack.enter_context(
                ActiveExecution(
                    execution_plan,
                    retry_mode=self._retries,
                    max_concurrent=self._max_concurrent,
                    tag_concurrency_limits=self._tag_concurrency_limits,
                    instance_concurrency_context=concurrency,
                )
            )
            while not active.is_complete or running:
                if active.check_for_interrupts():
                    active.mark_interrupted()
                    yield DagsterEvent.engine_event(
                        plan_context,
                        "Threaded executor: termination requested; steps in flight are abandoned with the process",
                        EngineEventData.interrupted(sorted({a.key for a in running.values()})),
                    )
                    raise DagsterExecutionInterruptedError()

                for step in active.get_steps_to_execute(limit=self._max_concurrent - len(running)):
                    step_context = plan_context.for_step(step)
                    yield DagsterEvent.step_worker_starting(step_context, f'Starting a thread for "{step.key}".', metadata={})
                    attempt = next(attempts)
                    thread = threading.Thread(
                        target=_run_step,
                        name=f"step:{step.key}",
                        args=(inbox, attempt),
                        kwargs={
                            "key": step.key,
                            "recon_job": job,
                            "dagster_run": plan_context.dagster_run,
                            "run_config": plan_context.run_config,
                            "instance": step_instance,
                            "retries": self._retries,
                            "known_state": active.get_known_state(),
                            "repository_load_data": execution_plan.repository_load_data,
                        },
                        daemon=True,  # abandoned, not waited for, when the run is terminated
                    )
                    running[attempt] = _Attempt(step.key, thread)
                    thread.start()
                yield from active.concurrency_event_iterator(plan_context)

                try:
                    first = inbox.get(timeout=WAKE_S)
                except queue.Empty:
                    first = None
                messages = [] if first is None else [first]
                while True:
                    try:
                        messages.append(inbox.get_nowait())
                    except queue.Empty:
                        break

                for attempt, message in messages:
                    key = running[attempt].key
                    if message is _DONE:
                        running.pop(attempt).thread.join()
                        if all(other.key != key for other in running.values()):  # not retried already
                            active.verify_complete(plan_context, key)
                    elif isinstance(message, _Crash):
                        yield DagsterEvent.engine_event(
                            plan_context.for_step(active.get_step_by_key(key)),
                            f'Threaded executor: the thread of step "{key}" raised',
                            EngineEventData.engine_error(message.error),
                        )
                        yield from self._fail_step(plan_context, active, key, message.error)
                    elif message.event_type != dg.DagsterEventType.LOGS_CAPTURED:  # not stored either
                        yield message
                        active.handle_event(message)
                        if message.is_resource_init_failure:
                            error = message.engine_event_data.error
                            assert isinstance(error, SerializableErrorInfo)
                            yield from self._fail_step(plan_context, active, key, error)
                yield from active.plan_events_iterator(plan_context)

    def _fail_step(
        self, plan_context: PlanOrchestrationContext, active: ActiveExecution, key: str, error: SerializableErrorInfo
    ) -> Iterator[DagsterEvent]:
        """A step that ended outside Dagster's own step handling (its thread raised, or its
        resources failed to start): a failure, or a retry under its policy."""
        step_context = plan_context.for_step(active.get_step_by_key(key))
        event = self.log_failure_or_retry_event_after_error(step_context, error, active.get_known_state())
        yield event
        active.handle_event(event)


@dg.executor(
    name="threads",
    # Steps hand values on through the IO manager, as between processes.
    requirements=dg.multiple_process_executor_requirements(),
    config_schema={
        "max_concurrent": dg.Field(int, default_value=16, description="Steps in flight at once within a run."),
        "tag_concurrency_limits": dg.Field(list, is_required=False, description="As the multiprocess executor's."),
        "retries": get_retries_config(),
        "capture_logs": dg.Field(
            bool, default_value=True, description="Capture stdout and stderr for the run's logs in the UI."
        ),
    },
)
def threaded_executor(init_context: InitExecutorContext) -> ThreadedExecutor:
    """Steps in threads of the run worker: for I/O-bound steps (see campaign_assets.executor)."""
    config = init_context.executor_config
    return ThreadedExecutor(
        retries=RetryMode.from_config(config["retries"]),  # type: ignore[arg-type]
        max_concurrent=config["max_concurrent"],
        tag_concurrency_limits=config.get("tag_concurrency_limits"),
        capture_logs=config["capture_logs"],
    )
