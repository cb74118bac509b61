"""SLOs from contracts, plane alarms, X-Ray sampling and the golden-signals dashboard.

Each contract's SLO becomes multi-window, multi-burn-rate alarms (the SRE workbook's: a fast pair over
1 h and 5 min at burn rate 14.4, a slow pair over 6 h and 30 min at burn rate 6), on errors and on
latency; a composite per pair fires only when both windows agree, and only composites notify. Plane
alarms cover what no single agent owns. Every alarm names its runbook under ``docs/runbooks/``.

Built from aws-cdk-lib's CloudWatch constructs rather than cdk-monitoring-constructs: that library's
alarms are single-metric thresholds (no multi-window burn-rate composites, which are most of this file),
so it would have contributed only dashboard widgets at the price of a second jsii assembly in every synth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_xray as xray
from constructs import Construct

from contracts.capability import THROTTLE_METRIC, CapabilityContract, LlmRuntime
from infra.conventions import METRICS_NAMESPACE

RUNBOOKS = "docs/runbooks"
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
COLLECTOR_ENDPOINT = "http://localhost:4318/v1/traces"
# A p95 objective lets 5 % of requests be slower than p95_ms: that is the latency error budget.
LATENCY_BUDGET = 0.05
LEDGER_LAG_S = 300
CANARY_PERIOD = Duration.minutes(1)  # a 5-minute canary gets five looks at its new version
API_5XX_RATE = 0.01


@dataclass(frozen=True)
class BurnWindow:
    """A pair of windows over which the budget burns ``burn_rate`` times too fast (SRE workbook, ch. 5)."""

    name: str
    long: Duration
    short: Duration
    burn_rate: float


FAST = BurnWindow("fast", Duration.hours(1), Duration.minutes(5), 14.4)  # 2 % of a 30-day budget in an hour
SLOW = BurnWindow("slow", Duration.hours(6), Duration.minutes(30), 6.0)  # 5 % of it in six hours
WINDOWS = (FAST, SLOW)


def error_budget(contract: CapabilityContract) -> float:
    """The fraction of requests allowed to fail: 99.9 % availability leaves 0.001."""
    return round(1 - contract.slo.availability / 100, 9)


def runbook(base: str, name: str) -> str:
    return f"Runbook: {base.rstrip('/')}/{name}.md"


class Observability(Construct):
    """One plane's alarms (to one KMS-encrypted SNS topic), its X-Ray sampling rules and its dashboard."""

    def __init__(
        self, scope: Construct, construct_id: str, *, runbook_base: str = RUNBOOKS, sampling_rules: bool = False
    ) -> None:
        """``sampling_rules``: add the X-Ray sampling rules. They apply to every service in the account and region,
        so they are opt-in (context ``agentplane:account-settings=true``)."""
        super().__init__(scope, construct_id)
        self.runbook_base = runbook_base
        self.key = kms.Key(
            self, "AlarmsKey", enable_key_rotation=True, description="agentplane alarm notifications (SNS)"
        )
        # CloudWatch publishes alarm state changes to the encrypted topic.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=["*"],  # in a key policy, "*" is this key
            )
        )
        self.topic = sns.Topic(self, "Alarms", display_name="agentplane alarms", master_key=self.key, enforce_ssl=True)
        self.action = actions.SnsAction(self.topic)
        self.slo_alarms: dict[str, list[cloudwatch.CompositeAlarm]] = {}
        # Per capability, the fast pair's metric alarms (errors 60 and 5 min, latency 60 and 5 min): what rollouts
        # roll back on. CodeDeploy and Step Functions take alarm names, and document no composite alarms.
        self.rollback_alarms: dict[str, list[cloudwatch.Alarm]] = {}
        self.workflow_alarms: dict[str, cloudwatch.Alarm] = {}
        self.plane_alarms: list[cloudwatch.Alarm] = []
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{Stack.of(self).stack_name}-golden-signals",
            default_interval=Duration.hours(3),
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown="# agentplane: golden signals per capability\nLatency (p50, p95 against the contract's "
                "SLO), traffic, errors and saturation for every agent; the plane's API, workflows, queues and "
                f"ledger below. Alarms and their runbooks: `{runbook_base}/`.",
                width=24,
                height=2,
            )
        )
        if sampling_rules:
            self._sampling_rules()

    # --- SLOs per capability --------------------------------------------------------------------------

    def add_capability(self, contract: CapabilityContract, function: lambda_.IFunction) -> None:
        """Burn-rate alarms on the agent's errors and latency, and its row of golden signals."""
        who = f"{contract.name} {contract.version} ({', '.join(contract.capabilities)})"
        composites = []
        rollback: list[cloudwatch.Alarm] = []

        def errors(period: Duration) -> cloudwatch.IMetric:
            return _error_ratio(_of(function), period)

        def slow(period: Duration) -> cloudwatch.IMetric:
            return _slow_ratio(_of(function), period, contract.slo.p95_ms)

        for window in WINDOWS:
            error_burn, error_pair = self._burn_pair(
                f"{construct_name(contract.name)}Errors{window.name.capitalize()}",
                window,
                budget=error_budget(contract),
                ratio=errors,
                what=f"{who}: errors burn the {contract.slo.availability}% availability budget",
                playbook="slo-errors",
            )
            latency_burn, latency_pair = self._burn_pair(
                f"{construct_name(contract.name)}Latency{window.name.capitalize()}",
                window,
                budget=LATENCY_BUDGET,
                ratio=slow,
                what=f"{who}: requests over p95 {contract.slo.p95_ms} ms burn the latency budget",
                playbook="slo-latency",
            )
            composites += [error_burn, latency_burn]
            if window is FAST:
                rollback += [*error_pair, *latency_pair]
        self.slo_alarms[contract.name] = composites
        self.rollback_alarms[contract.name] = rollback
        if isinstance(contract.runtime, LlmRuntime):
            self._throttling(contract, function)
        self._golden_signals(contract, function)

    def _throttling(self, contract: CapabilityContract, function: lambda_.IFunction) -> None:
        """An llm agent's steps its model's quota refused (each falls back, then to a person): over the share its
        error budget allows at the fast burn rate, for three periods, someone raises the quota or moves traffic."""
        throttled = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=THROTTLE_METRIC,
            dimensions_map={
                "service": contract.name,
                "capability": contract.capabilities[0],
                "version": contract.version,
            },
            statistic="Sum",
            period=Duration.minutes(5),
        )
        ratio = cloudwatch.MathExpression(
            expression="IF(invocations > 0, throttled / invocations, 0)",
            using_metrics={"throttled": throttled, "invocations": function.metric("Invocations", statistic="Sum")},
            period=Duration.minutes(5),
            label="throttled ratio",
        )
        threshold = round(min(1.0, FAST.burn_rate * error_budget(contract)), 9)
        self._plane_alarm(
            f"{construct_name(contract.name)}Throttling",
            ratio,
            threshold=threshold,
            evaluation_periods=3,
            what=f"{contract.name} {contract.version}: its model refuses over {threshold:g} of its steps (throttled)",
            playbook="llm-throttling",
        )

    def add_endpoint(self, contract: CapabilityContract, endpoint_name: str, variant: str = "AllTraffic") -> None:
        """A SageMaker-backed capability: its endpoint's model latency p95 against the contract's p95_ms."""
        latency = cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name="ModelLatency",
            dimensions_map={"EndpointName": endpoint_name, "VariantName": variant},
            statistic="p95",
            period=Duration.minutes(5),
        )
        self._plane_alarm(
            f"{construct_name(contract.name)}EndpointLatency",
            latency,
            threshold=contract.slo.p95_ms * 1000,  # ModelLatency is in microseconds
            evaluation_periods=3,
            # The endpoint's name is generated at deploy; the capability names it in the description.
            what=f"{contract.name} endpoint: model latency p95 over {contract.slo.p95_ms} ms",
            playbook="endpoint-latency",
        )

    def _burn_pair(
        self,
        construct_id: str,
        window: BurnWindow,
        *,
        budget: float,
        ratio: Callable[[Duration], cloudwatch.IMetric],
        what: str,
        playbook: str,
    ) -> tuple[cloudwatch.CompositeAlarm, list[cloudwatch.Alarm]]:
        """The composite that notifies, and its long- and short-window metric alarms."""
        threshold = round(min(1.0, window.burn_rate * budget), 9)
        pair: list[cloudwatch.Alarm] = []
        for period in (window.long, window.short):
            minutes = int(period.to_minutes())
            pair.append(
                cloudwatch.Alarm(
                    self,
                    f"{construct_id}{minutes}m",
                    metric=ratio(period),
                    threshold=threshold,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                    alarm_description=f"{what} ({window.name} window, {minutes} min: bad ratio over "
                    f"{threshold:g} = burn rate {window.burn_rate} x budget {budget:g})",
                )
            )
        composite = cloudwatch.CompositeAlarm(
            self,
            construct_id,
            alarm_rule=cloudwatch.AlarmRule.all_of(*pair),
            alarm_description=f"{what}: {window.name} burn (rate {window.burn_rate} over "
            f"{int(window.long.to_minutes())} and {int(window.short.to_minutes())} min). "
            + runbook(self.runbook_base, playbook),
        )
        composite.add_alarm_action(self.action)
        composite.add_ok_action(self.action)
        return composite, pair

    def slo_breach(self) -> cloudwatch.CompositeAlarm:
        """Any capability burning its budget fast: the stop condition of fault-injection experiments."""
        fast = [alarm for composites in self.slo_alarms.values() for alarm in composites[:2]]
        alarm = cloudwatch.CompositeAlarm(
            self,
            "AnySloFastBurn",
            alarm_rule=cloudwatch.AlarmRule.any_of(*fast),
            alarm_description="Some capability burns its error or latency budget fast. "
            + runbook(self.runbook_base, "slo-errors"),
        )
        return alarm

    # --- span export ------------------------------------------------------------------------------------

    def export_spans(self, functions: list[lambda_.Function], collector_layer_arn: str) -> None:
        """Our OpenTelemetry spans to X-Ray: the ADOT collector layer listens for OTLP on localhost and
        exports to X-Ray; the tracing seam exports only when this endpoint is set."""
        layer = lambda_.LayerVersion.from_layer_version_arn(self, "OtelCollector", collector_layer_arn)
        for function in functions:
            function.add_layers(layer)
            function.add_environment(OTLP_ENDPOINT_ENV, COLLECTOR_ENDPOINT)

    # --- plane alarms ---------------------------------------------------------------------------------

    def add_api(self, api: apigw.RestApi) -> None:
        five_xx = cloudwatch.MathExpression(
            expression="IF(requests > 0, errors / requests, 0)",
            using_metrics={
                "errors": api.metric_server_error(statistic="Sum"),
                "requests": api.metric_count(statistic="Sum"),
            },
            period=Duration.minutes(5),
            label="5xx ratio",
        )
        self._plane_alarm(
            "Api5xx",
            five_xx,
            threshold=API_5XX_RATE,
            evaluation_periods=1,
            what=f"API answers 5xx to more than {API_5XX_RATE:.0%} of requests",
            playbook="api-5xx",
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[api.metric_count(), api.metric_client_error(), api.metric_server_error()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="API latency (p50, p95)",
                left=[api.metric_latency(statistic="p50"), api.metric_latency(statistic="p95")],
                width=12,
            ),
        )

    def add_canary(self, contract: CapabilityContract, alias: lambda_.Alias) -> list[cloudwatch.Alarm]:
        """The version a deploy just published, alone (``ExecutedVersion``), minute by minute: its error ratio
        and its share of calls over the contract's p95, each at the fast burn threshold.

        The SLO alarms see the whole function, where a canary is diluted by the old version's traffic; these
        see only the new version. Deployment guards: they roll back, they do not page.
        """
        function = alias.version.lambda_
        dimensions = {
            "FunctionName": function.function_name,
            "Resource": f"{function.function_name}:{alias.alias_name}",
            "ExecutedVersion": alias.version.version,
        }

        def metric(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/Lambda",
                metric_name=name,
                dimensions_map=dimensions,
                statistic=statistic,
                period=CANARY_PERIOD,
            )

        who = f"{contract.name} {contract.version}: the version being deployed"
        p95_ms = contract.slo.p95_ms
        guards = [
            (
                "CanaryErrors",
                _error_ratio(metric, CANARY_PERIOD, "new version's error ratio"),
                error_budget(contract),
                f"{who} fails",
                "slo-errors",
            ),
            (
                "CanaryLatency",
                _slow_ratio(metric, CANARY_PERIOD, p95_ms, f"new version's ratio over {p95_ms} ms"),
                LATENCY_BUDGET,
                f"{who} takes longer than p95 {contract.slo.p95_ms} ms",
                "slo-latency",
            ),
        ]
        alarms = []
        for suffix, ratio, budget, what, playbook in guards:
            threshold = round(min(1.0, FAST.burn_rate * budget), 9)
            alarms.append(
                cloudwatch.Alarm(
                    self,
                    f"{construct_name(contract.name)}{suffix}",
                    metric=ratio,
                    threshold=threshold,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                    alarm_description=f"{what} on over {threshold:g} of its calls (burn rate {FAST.burn_rate} x "
                    f"budget {budget:g}); rolls the deployment back. " + runbook(self.runbook_base, playbook),
                )
            )
        return alarms

    def add_workflow(self, name: str, state_machine: sfn.StateMachine) -> None:
        self.workflow_alarms[name] = self._plane_alarm(
            f"{construct_name(name)}ExecutionsFailed",
            state_machine.metric_failed(period=Duration.minutes(5), statistic="Sum"),
            threshold=0,
            evaluation_periods=1,
            what=f"workflow {name}: executions failed",
            playbook="execution-failures",
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"{name}: executions",
                left=[state_machine.metric_started(), state_machine.metric_succeeded(), state_machine.metric_failed()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title=f"{name}: duration (p50, p95)",
                left=[state_machine.metric_time(statistic="p50"), state_machine.metric_time(statistic="p95")],
                width=12,
            ),
        )

    def add_dead_letter_queue(self, name: str, queue: sqs.IQueue) -> None:
        depth = queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(1), statistic="Maximum")
        self._plane_alarm(
            f"{construct_name(name)}DlqDepth",
            depth,
            threshold=0,
            evaluation_periods=1,
            what=f"{name}: messages in the dead-letter queue",
            playbook="dead-letters",
        )
        self.dashboard.add_widgets(cloudwatch.SingleValueWidget(title=f"{name} DLQ depth", metrics=[depth], width=6))

    def add_ledger(self, appender: lambda_.IFunction) -> None:
        lag = appender.metric("IteratorAge", statistic="Maximum", period=Duration.minutes(5))
        self._plane_alarm(
            "LedgerLag",
            lag,
            threshold=LEDGER_LAG_S * 1000,  # IteratorAge is in milliseconds
            evaluation_periods=2,
            what=f"ledger appender is more than {LEDGER_LAG_S} s behind the decisions stream",
            playbook="ledger-lag",
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Ledger lag (stream iterator age)", left=[lag], width=6)
        )

    def _plane_alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        evaluation_periods: int,
        what: str,
        playbook: str,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{what}. {runbook(self.runbook_base, playbook)}",
        )
        alarm.add_alarm_action(self.action)
        alarm.add_ok_action(self.action)
        self.plane_alarms.append(alarm)
        return alarm

    # --- dashboard and sampling -----------------------------------------------------------------------

    def _golden_signals(self, contract: CapabilityContract, function: lambda_.IFunction) -> None:
        title = f"{contract.name} {contract.version}"
        slo = cloudwatch.HorizontalAnnotation(value=contract.slo.p95_ms, label=f"SLO p95 {contract.slo.p95_ms} ms")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"{title}: latency",
                left=[function.metric_duration(statistic="p50"), function.metric_duration(statistic="p95")],
                left_annotations=[slo],
                width=6,
            ),
            cloudwatch.GraphWidget(title=f"{title}: traffic", left=[function.metric_invocations()], width=6),
            cloudwatch.GraphWidget(
                title=f"{title}: errors",
                left=[function.metric_errors()],
                right=[_error_ratio(_of(function), Duration.minutes(5))],
                width=6,
            ),
            cloudwatch.GraphWidget(
                title=f"{title}: saturation",
                left=[function.metric("ConcurrentExecutions", statistic="Maximum"), function.metric_throttles()],
                width=6,
            ),
        )

    def _sampling_rules(self) -> None:
        """Approvals always traced; routine traffic sampled, with the rate boosted while errors are seen."""
        prefix = Stack.of(self).stack_name[:20]
        self._sampling_rule("SampleApprovals", f"{prefix}-approvals", 10, 1.0, 10, "/v1/approvals*")
        # Adaptive sampling: while errors or faults are seen, up to every request is kept.
        boost = xray.CfnSamplingRule.SamplingRateBoostProperty(max_rate=1.0, cooldown_window_minutes=1)
        self._sampling_rule("SampleRoutine", f"{prefix}-routine", 9000, 0.05, 1, "*", boost=boost)

    def _sampling_rule(
        self,
        construct_id: str,
        name: str,
        priority: int,
        fixed_rate: float,
        reservoir_size: int,
        url_path: str,
        *,
        boost: xray.CfnSamplingRule.SamplingRateBoostProperty | None = None,
    ) -> None:
        """One rule over every service, host and method of the plane: only the path, rates and priority differ."""
        xray.CfnSamplingRule(
            self,
            construct_id,
            sampling_rule=xray.CfnSamplingRule.SamplingRuleProperty(
                rule_name=name,
                priority=priority,
                fixed_rate=fixed_rate,
                reservoir_size=reservoir_size,
                service_name="*",
                url_path=url_path,
                sampling_rate_boost=boost,
                host="*",
                http_method="*",
                resource_arn="*",
                service_type="*",
                version=1,
            ),
        )


LambdaMetric = Callable[[str, str], cloudwatch.IMetric]  # (metric name, statistic) -> one function's metric


def _of(function: lambda_.IFunction) -> LambdaMetric:
    return lambda name, statistic: function.metric(name, statistic=statistic)


def _error_ratio(metric: LambdaMetric, period: Duration, label: str = "error ratio") -> cloudwatch.MathExpression:
    return cloudwatch.MathExpression(
        expression="IF(invocations > 0, errors / invocations, 0)",
        using_metrics={"errors": metric("Errors", "Sum"), "invocations": metric("Invocations", "Sum")},
        period=period,
        label=label,
    )


def _slow_ratio(metric: LambdaMetric, period: Duration, p95_ms: int, label: str = "") -> cloudwatch.MathExpression:
    # PR(:x) is the percentage of requests at or under x ms; the rest are slow.
    return cloudwatch.MathExpression(
        expression="(100 - fast) / 100",
        using_metrics={"fast": metric("Duration", f"PR(:{p95_ms})")},
        period=period,
        label=label or f"ratio over {p95_ms} ms",
    )


def construct_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))
