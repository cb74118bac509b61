"""The local plane: a synthesized template stood up on moto, its API served on 127.0.0.1.

The plane is handed a cloud assembly (``PlaneOptions.assembly_dir``): whoever starts it synthesizes the app
(``infra.synth.plane_assembly``), so the emulator knows nothing of the app that made the template.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import IO, Any

import boto3
from moto import mock_aws
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from contracts.capability import MODEL_ENDPOINT_ENV
from contracts.registry import KEY
from functions.api.admission import MAX_IN_FLIGHT_ENV
from functions.runtime.clock import WAIT_SCALE_ENV
from infra.local import moto_seam
from infra.local.auth import LocalAuth, personas_in
from infra.local.bedrock import BedrockError, LocalBedrock, MotoAuthorizer
from infra.local.dynamodb import LeanTransactions, PartitionQueries
from infra.local.faults import FaultPlan, FaultSpecError
from infra.local.http_api import ApiServer, LocalApi, Reply, problem
from infra.local.iam import IamEnforcement
from infra.local.interpreter import InterpreterCaches
from infra.local.lambdas import LocalLambdas, RuntimeSettings
from infra.local.otlp import OtlpReceiver, SpanStore
from infra.local.persistence import (
    CannotRestore,
    JournaledEvents,
    JournaledStreams,
    Restored,
    StateDir,
    read_credentials,
    release_in_progress,
    resume_runs,
)
from infra.local.provision import Provisioner
from infra.local.queues import QueueDelivery
from infra.local.rollout import LocalDeployments, RolloutError, WeightedAliases, deployment_groups
from infra.local.sagemaker import LocalEndpoints
from infra.local.schedules import Scheduler
from infra.local.stepfunctions import SyncExecutions
from infra.local.template import REGION, Template
from infra.local.throttle import UsagePlans, persona_api_keys
from infra.local.waits import ScaledWaits
from infra.paths import INSTALLED, LOCAL_LAMBDA_DEPS_DIR, LOCAL_LAMBDA_RUNTIME_DIR

LLM_MODEL_ID_ENV = "LLM_MODEL_ID"  # infra.components.llm_agent.MODEL_ID_ENV, read back from the template

DEFAULT_STATE_DIR = Path(".agentplane")
# What a plane leaves in its state dir. Its runs, ledger, signing key and credentials are journaled under state/
# (infra/local/persistence.py), so the next plane on the dir resumes them; --fresh wipes all of it.
PLANE_FILES = ("plane.json", "credentials.json", "spans.jsonl", "logs", "models", "state")
_USED_MARKERS = ("plane.json", "credentials.json", "spans.jsonl", "logs/api-access.log")
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"


@dataclass
class PlaneOptions:
    assembly_dir: Path  # the synthesized cloud assembly whose template the plane stands up
    state_dir: Path = DEFAULT_STATE_DIR
    port: int = 0
    stack_name: str = "agentplane"
    faults: FaultPlan = field(default_factory=FaultPlan)
    # Step Functions retry intervals are seconds on AWS; locally they shrink by this factor.
    retry_delay_scale: float = 0.01
    # Scheduled rules fire on their rate times this factor (0 disables the timers; /local/schedules/run still works).
    schedule_scale: float = 1.0
    # Usage-plan rates and bursts times this factor; the buckets' clock (tests freeze it to count exactly).
    throttle_scale: float = 1.0
    throttle_clock: Callable[[], float] = time.monotonic
    # SQS and DynamoDB stream batching windows (MaximumBatchingWindowInSeconds) shrink by this factor locally, as
    # retry intervals do.
    batching_window_scale: float = 0.01
    # A rollout's deployment minute lasts this many seconds locally; its clock (tests drive it by hand); how often
    # rollouts move (0: only when ``deployments.tick()`` is called).
    rollout_minute_s: float = 6.0  # a default canary (10 % for 5 minutes) lasts 30 s
    rollout_clock: Callable[[], float] = time.monotonic
    rollout_tick_s: float = 0.25
    # Declared waits (a task token's window, a workflow's timeout) and the run deadlines and approval expiries
    # that cover them last this factor of their time locally; processing timeouts keep theirs (infra/local/waits.py).
    wait_scale: float = 1.0
    # Function timeouts (the template's) times this factor: 1 keeps them as deployed.
    function_timeout_scale: float = 1.0
    # Instances of one function running at once (its reserved concurrency, when lower, bounds it too); past it
    # invocations wait for a free instance. Lambda scales out further, but a 2-core machine starting ten cold
    # instances at once runs its 3 s tasks past their timeouts.
    function_concurrency: int = 4
    # One instance of every aliased version is started before the plane serves: the first run's steps are warm,
    # as a deployed plane that has run before is (cold starts of a loaded local machine outlast 3 s tasks).
    prewarm: bool = True
    # Runs of a workflow processing at once (functions.api.admission), below the template's limit. None: half the
    # function pools' size (at least 1): every run's steps share the same pools, and a 2-core machine running more
    # runs at once than its pools serve runs their steps past their task timeouts.
    max_in_flight: int | None = None
    fresh: bool = False  # wipe what a previous plane left in the state dir instead of refusing to start

    @property
    def admitted_at_once(self) -> int:
        return self.max_in_flight or max(1, self.function_concurrency // 2)


class StateDirInUse(Exception):
    """The state dir holds a previous plane's state, which this plane cannot restore (or another plane serves it)."""


def claim_state_dir(state_dir: Path, *, fresh: bool) -> None:
    """Refuse a state dir a previous plane used without journaling it, or (``fresh``) wipe what a plane left there."""
    if fresh:
        for name in PLANE_FILES:
            found = state_dir / name
            if found.is_dir() and not found.is_symlink():
                shutil.rmtree(found)
            else:
                found.unlink(missing_ok=True)
        return
    used = [name for name in _USED_MARKERS if (state_dir / name).exists()]
    if used and not StateDir.holds_state(state_dir):
        raise StateDirInUse(
            f"{state_dir} holds a previous local plane's state ({used[0]}) but no journal of it (state/); its runs, "
            "ledger, signing key and credentials cannot be restored: start with --fresh to wipe it, or choose "
            "another --state-dir"
        )


class MissingLocalRuntime(RuntimeError):
    pass


class _ScaledClock:
    """Replaces the retrier's ``time`` module only: real backoff shape, shorter waits."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self.scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class LocalPlane:
    def __init__(self, options: PlaneOptions) -> None:
        self.options = options
        self.state_dir = self.options.state_dir.resolve()
        self.lambdas = LocalLambdas(
            self.state_dir / "logs",
            self.options.faults,
            RuntimeSettings(
                runtime_dirs=[LOCAL_LAMBDA_RUNTIME_DIR],
                timeout_scale=self.options.function_timeout_scale,
                max_concurrency=self.options.function_concurrency,
            ),
        )
        self.iam: IamEnforcement | None = None
        self._iam_log: IO[str] | None = None
        self.aws_server: ThreadedMotoServer | None = None
        self.events = JournaledEvents(self.client, self.options.faults, self._agent_of)
        self.transactions = LeanTransactions()
        self.queries = PartitionQueries()
        self.interpreter = InterpreterCaches()
        self.streams = JournaledStreams(self.client, window_scale=self.options.batching_window_scale)
        self.durable = StateDir(self.state_dir)
        self.restored = Restored()
        self.queues = QueueDelivery(self.client, window_scale=self.options.batching_window_scale)
        self.sync_executions = SyncExecutions()
        self.endpoints = LocalEndpoints(self.state_dir)
        # Bedrock Runtime for the llm agents' loops: a local stand-in model that says so in every answer.
        self.bedrock = LocalBedrock(authorizer=MotoAuthorizer())
        self.waits = ScaledWaits(self.options.wait_scale)
        self.provisioner: Provisioner | None = None
        self.aliases = WeightedAliases()
        self.deployments: LocalDeployments | None = None
        self.server: ApiServer | None = None
        self.auth: LocalAuth | None = None
        self.scheduler: Scheduler | None = None
        self._mock: Any = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._access_log: IO[str] | None = None
        self._serving: threading.Thread | None = None
        self._patches = moto_seam.Patches()  # the plane's own (its parts hold theirs): retry clock, server routes
        self._moto_log: logging.FileHandler | None = None
        self.spans = SpanStore()
        self.otlp: OtlpReceiver | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LocalPlane:
        for built in (LOCAL_LAMBDA_DEPS_DIR, LOCAL_LAMBDA_RUNTIME_DIR):
            if not (built / ".installed").is_file():
                if INSTALLED:  # a checkout's `make setup` builds them; the installed package does not yet
                    raise MissingLocalRuntime(
                        f"{built} is missing: the installed local plane cannot build the functions' local layer "
                        "yet; run it from a checkout (`make setup`)"
                    )
                raise MissingLocalRuntime(
                    f"{built} is missing: run `make setup` (it builds the functions' local layer)"
                )
        claim_state_dir(self.state_dir, fresh=self.options.fresh)
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        saved_credentials = read_credentials(self.credentials_path)
        try:
            self.durable.open()
        except CannotRestore as error:
            raise StateDirInUse(
                f"{self.state_dir} cannot be resumed: {error}; start with --fresh to wipe it, or choose another "
                "--state-dir"
            ) from None
        self.restored = self.durable.summary
        template = Template.load_plane(self.options.assembly_dir, self.options.stack_name)

        self._quiet_moto()
        self.spans = SpanStore(self.state_dir / "spans.jsonl")
        self.otlp = OtlpReceiver(self.spans).start()
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
        # Function instances are processes: they reach the same emulated account over loopback.
        self._patches.apply(
            "server.backend_for_host", functools.lru_cache(maxsize=256)(moto_seam.original("server.backend_for_host"))
        )
        self.aws_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.aws_server.start()
        host, port = self.aws_server.get_host_and_port()
        self.bedrock.start()
        self.lambdas.settings.aws_environment = {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            # botocore's service-specific endpoint: moto has no Converse, the local Bedrock does.
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.bedrock.endpoint_url,
            # StartSyncExecution's "sync-" host prefix would name a host that loopback does not have.
            "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
            TRACES_ENDPOINT_ENV: self.otlp.endpoint,
        }
        if self.options.wait_scale != 1.0:
            self.lambdas.settings.aws_environment[WAIT_SCALE_ENV] = repr(self.options.wait_scale)
        self.lambdas.settings.aws_environment[MAX_IN_FLIGHT_ENV] = str(self.options.admitted_at_once)
        self._patches.apply("stepfunctions.retry_clock", _ScaledClock(self.options.retry_delay_scale))
        self.lambdas.install()
        self.aliases.install()
        self.events.install()
        self.transactions.install()
        self.queries.install()
        self.interpreter.install()
        self.streams.install()
        self.queues.install()
        self.sync_executions.install()
        self.endpoints.install()
        self.waits.install()
        self.durable.install()
        self.streams.attach(self.durable)
        self.events.state = self.durable
        try:
            self.provisioner = Provisioner(
                template,
                self.client,
                self.lambdas,
                self.streams,
                endpoints=self.endpoints,
                queues=self.queues,
                restore=self.durable.provisioned,
            )
            self.provisioner.provision()
            self.durable.restore_ended_runs()
            self._iam_log = (self.state_dir / "logs").joinpath("iam.log").open("a", buffering=1)
            self.iam = IamEnforcement(self.provisioner.roles, self._iam_log)
            self.iam.install()
            self.bedrock.log = self._iam_log
            self._fault_models()
            if self.options.prewarm:
                self.lambdas.prewarm(self._aliased_versions())
            self.deployments = self._deployments(template)
            self._access_log = (self.state_dir / "logs").joinpath("api-access.log").open("a", buffering=1)
            self.scheduler = Scheduler(self.client, self.provisioner.schedules)
            if self.options.schedule_scale > 0:
                self.scheduler.start(self.options.schedule_scale)
            self.auth = LocalAuth(
                personas_in(template, self.provisioner.resolver, self.provisioner.physical),
                api_keys=persona_api_keys(template, self.provisioner.api),
            )
            if self.restored.restored:
                self.auth.adopt(saved_credentials)  # a restart keeps its callers' keys
            usage_plans = UsagePlans(
                self.provisioner.api, clock=self.options.throttle_clock, scale=self.options.throttle_scale
            )
            api = LocalApi(
                self.provisioner.api,
                self.client,
                self._access_log,
                local_routes={
                    ("POST", "/local/schedules/run"): self._run_schedules,
                    ("POST", "/local/dead-letters/replay"): self._replay_dead_letters,
                    ("GET", "/local/traces"): self._trace,
                    ("POST", "/local/rollouts"): self._start_rollout,
                },
                auth=self.auth,
                usage_plans=usage_plans,
            )
            self.server = ApiServer(api, self.options.port)
            self.auth.serve(self.url)
            self.auth.write(self.credentials_path)
            self._resume()
        except BaseException:
            self.stop()
            raise
        self._serving = threading.Thread(target=self.server.serve_forever, name="agentplane-api", daemon=True)
        self._serving.start()
        (self.state_dir / "plane.json").write_text(
            json.dumps({"url": self.url, "pid": os.getpid(), "stack": self.options.stack_name}) + "\n"
        )
        return self

    def _resume(self) -> None:
        """What a previous plane on this dir left unfinished: stream records to deliver, runs to drive again."""
        for function_arn, record in self.durable.undelivered():
            if function_arn in self.streams.mappings:
                self.durable.deliver(function_arn, record)
                self.restored.stream_redelivered += 1
        for pending in self.durable.undelivered_events():
            self.events.enqueue(pending["event"], pending["target"], delivery_id=pending["id"])
            self.restored.events_redelivered += 1
        if self.restored.restored:
            environments = [spec.environment for spec in self.lambdas.functions.values()]
            idempotency = {env["IDEMPOTENCY_TABLE"] for env in environments if "IDEMPOTENCY_TABLE" in env}
            self.restored.markers_released = release_in_progress(self.client, idempotency)
        # The tables the API keeps runs and approvals in, as its function is configured.
        api = next((s.environment for s in self.lambdas.functions.values() if "APPROVALS_TABLE" in s.environment), {})
        resume_runs(
            self.durable, self.client, executions=api.get("EXECUTIONS_TABLE"), approvals=api.get("APPROVALS_TABLE")
        )
        line = self.restored.line()
        logging.getLogger("agentplane.local").info(line)
        with (self.state_dir / "logs" / "plane.log").open("a") as log:
            log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {line}\n")

    def _fault_models(self) -> None:
        """``--fault <llm agent>=<Bedrock or SageMaker error>`` fails the agent's model calls, not its function:
        the loop meets the error where it would on AWS (a throttled Converse or InvokeEndpoint) and answers it as
        it would."""
        for spec in self.lambdas.functions.values():
            agent = spec.environment.get("AGENT_NAME") or ""
            model_id, endpoint = spec.environment.get(LLM_MODEL_ID_ENV), spec.environment.get(MODEL_ENDPOINT_ENV)
            fault = self.options.faults.faults.get(agent)
            if fault is None or fault.error is None:
                continue
            try:
                if model_id is not None:
                    BedrockError(fault.error)
                    self.bedrock.inject(model_id, fault.error, rate=fault.rate)
                elif endpoint is not None:
                    self.endpoints.inject(endpoint, fault.error, rate=fault.rate)
                else:
                    continue
            except ValueError:
                continue  # not the model service's error: the function fails as any agent's would
            del self.options.faults.faults[agent]

    def _aliased_versions(self) -> list[tuple[str, str]]:
        lambdas = self.client("lambda")
        return [
            (name, alias["FunctionVersion"])
            for name in sorted(self.lambdas.functions)
            for alias in lambdas.list_aliases(FunctionName=name)["Aliases"]
        ]

    def _deployments(self, template: Template) -> LocalDeployments:
        assert self.provisioner is not None
        provisioner = self.provisioner
        groups = deployment_groups(
            template.resources,
            provisioner.resolver.resolve,
            lambda logical_id: provisioner.physical[logical_id].ref,
            provisioner.alarms,
            {name: spec.environment.get("AGENT_NAME", name) for name, spec in self.lambdas.functions.items()},
        )
        deployments = LocalDeployments(
            self.client,
            self.lambdas,
            self.options.faults,
            groups,
            clock=self.options.rollout_clock,
            minute_s=self.options.rollout_minute_s,
            published=self._record_published,
        )
        if self.options.rollout_tick_s > 0:
            deployments.start_ticking(self.options.rollout_tick_s)
        return deployments

    def _record_published(self, agent: str, version: str) -> None:
        """A rollout publishes a version as a deploy would: the agent's registry entry names it."""
        self.client("dynamodb").update_item(
            TableName=self.physical("RegistryTable", "AWS::DynamoDB::Table"),
            Key={KEY: {"S": agent}},  # the primary implementation is registered under the agent's name
            UpdateExpression="SET published_version = :version",
            ConditionExpression=f"attribute_exists({KEY})",
            ExpressionAttributeValues={":version": {"S": version}},
        )

    def _start_rollout(self, query: dict[str, list[str]]) -> Reply:
        """``POST /local/rollouts?agent=NAME[&fault=Error[:rate]]``: what a deploy of a new agent version starts
        on AWS; the fault, if any, is injected into the new version only."""
        assert self.deployments is not None
        agent = query.get("agent", [""])[-1]
        try:
            spec = query.get("fault", [""])[-1]
            deployment = self.deployments.start(agent, FaultPlan.parse_error(spec) if spec else None)
        except (RolloutError, FaultSpecError) as error:
            status = error.status if isinstance(error, RolloutError) else 400
            return problem(status, "Rollout refused", str(error), kind="refused", instance="/local/rollouts")
        return Reply(202, {"Content-Type": "application/json"}, json.dumps(deployment.to_json()).encode())

    def _quiet_moto(self) -> None:
        """moto logs every failed state at ERROR with its whole parse tree: keep that in a file, not the console."""
        moto_logger = logging.getLogger("moto")
        self._moto_log = logging.FileHandler(self.state_dir / "logs" / "moto.log")
        moto_logger.addHandler(self._moto_log)
        moto_logger.propagate = False
        # The functions' AWS endpoint logs every request, and a failed one with its traceback: keep them in the file.
        for name in ("werkzeug", "flask.app"):
            server_logger = logging.getLogger(name)
            server_logger.addHandler(self._moto_log)
            server_logger.setLevel(logging.ERROR)
            server_logger.propagate = False

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until asynchronous deliveries (stream batches, bus events, buffered queues) have drained."""
        return (
            self.streams.wait_idle(timeout)
            and self.events.wait_idle(timeout)
            and self.queues.wait_idle(timeout)
            and self.streams.wait_idle(timeout)
        )

    def _run_schedules(self, query: dict[str, list[str]]) -> Reply:
        assert self.scheduler is not None
        self.settle()  # a digest on demand covers what has been written so far
        rule = query.get("rule", [None])[-1]
        results = self.scheduler.run(rule)
        status = 502 if any(r["error"] for r in results) else 200
        return Reply(status, {"Content-Type": "application/json"}, json.dumps({"fired": results}).encode())

    def _replay_dead_letters(self, _: dict[str, list[str]]) -> Reply:
        self.settle()  # what is still being retried is not in a DLQ yet
        replayed = self.events.replay_dead_letters()
        self.settle()
        body = {"replayed": replayed, "dead_lettered_again": self.events.stats.dead_lettered}
        return Reply(200, {"Content-Type": "application/json"}, json.dumps(body).encode())

    def _agent_of(self, function_arn: str) -> str:
        """The name faults know a function by: its contract's agent name, else its logical id.

        A queue an agent drains (a bursty agent's buffer) is known by that agent's name too.
        """
        drained = self.queues.mappings.get(function_arn)
        if drained is not None:
            function_arn = drained.function_arn
        # An ARN or a name, either with a version or alias qualifier: the function is what comes before it.
        name = function_arn.split(":function:", 1)[1] if ":function:" in function_arn else function_arn
        spec = self.lambdas.functions.get(name.split(":", 1)[0])
        return spec.environment.get("AGENT_NAME", spec.logical_id) if spec else function_arn

    def _trace(self, query: dict[str, list[str]]) -> Reply:
        """The spans the receiver holds for ``?trace_id=``, oldest first (what `agentplane trace` reads)."""
        self.settle()
        trace_id = query.get("trace_id", [""])[-1]
        body = json.dumps({"trace_id": trace_id, "spans": self.spans.trace(trace_id)}).encode()
        return Reply(200, {"Content-Type": "application/json"}, body)

    def stop(self) -> None:
        self.durable.uninstall()  # what happens while stopping is not this plane's state: runs in flight resume
        self.durable.close()
        if self.deployments is not None:
            self.deployments.stop()
            self.deployments = None
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        self.endpoints.stop()
        self.bedrock.stop()
        self.waits.uninstall()
        self.endpoints.uninstall()
        self.sync_executions.uninstall()
        self.queues.uninstall()
        self.streams.uninstall()
        self.transactions.uninstall()
        self.queries.uninstall()
        self.interpreter.uninstall()
        self.events.uninstall()
        self.aliases.uninstall()
        self.lambdas.uninstall()
        if self.iam is not None:
            self.iam.uninstall()
            self.iam = None
        if self._iam_log is not None:
            self._iam_log.close()
            self._iam_log = None
        if self.aws_server is not None:
            self.aws_server.stop()
            self.aws_server = None
        self._patches.restore()
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        if self._access_log is not None:
            self._access_log.close()
            self._access_log = None
        if self._moto_log is not None:
            for name in ("moto", "werkzeug", "flask.app"):
                logger = logging.getLogger(name)
                logger.removeHandler(self._moto_log)
                logger.propagate = True
            self._moto_log.close()
            self._moto_log = None
        if self.otlp is not None:
            # Providers exporting to this receiver are flushed first: they die with it.
            tracing = sys.modules.get("functions.runtime.tracing")
            if tracing is not None:
                tracing.shutdown()
            self.otlp.stop()
            self.otlp = None
        if self.auth is not None:
            self.auth.withdraw()  # credentials.json stays: the next plane on this dir serves the same keys
            self.auth = None
        (self.state_dir / "plane.json").unlink(missing_ok=True)

    def __enter__(self) -> LocalPlane:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # --- what it serves --------------------------------------------------------------------------

    @property
    def credentials_path(self) -> Path:
        """One access key per persona, written at start; a plane resuming the dir serves the same keys."""
        return self.state_dir / "credentials.json"

    @property
    def url(self) -> str:
        if self.server is None:
            raise RuntimeError("the local plane is not running")
        return f"http://127.0.0.1:{self.server.port}"

    def client(self, service: str) -> Any:
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = boto3.client(
                    service,  # type: ignore[call-overload]
                    region_name=REGION,
                    aws_access_key_id="local",
                    aws_secret_access_key="local",  # noqa: S106 - moto's fake credentials
                )
            return self._clients[service]

    def physical(self, logical_prefix: str, kind: str) -> str:
        """The physical name of the one resource of ``kind`` whose logical id starts with ``logical_prefix``."""
        assert self.provisioner is not None
        template = self.provisioner.template
        found = [
            lid for lid, res in template.resources.items() if lid.startswith(logical_prefix) and res["Type"] == kind
        ]
        if len(found) != 1:
            raise LookupError(f"{len(found)} {kind} resources start with {logical_prefix!r}")
        return self.provisioner.physical[found[0]].ref

    def summary(self) -> SimpleNamespace:
        assert self.provisioner is not None
        return SimpleNamespace(
            resources=len(self.provisioner.physical),
            functions=sorted(self.lambdas.functions),
            not_emulated=dict(self.provisioner.skipped),
        )


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> bool:
    """Poll until predicate holds or timeout passes (state waits, never timing asserts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
