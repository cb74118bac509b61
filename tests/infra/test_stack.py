"""The synthesized plane: what each agent may do, what is encrypted and traced, and what must never move."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from contracts.capability import CapabilityContract, LambdaRuntime, LlmRuntime, SageMakerRuntime
from contracts.workflow import WORKFLOWS_DIR, MapStep, load_workflow
from infra.components.agent_pool import PERMISSION_VERBS, Resources
from infra.components.public_api import admission_limit
from infra.components.sagemaker_endpoint import invoker_contract
from infra.workflows.resolve import workflow_agents
from tests import generated_contracts
from tests.infra.assembly import (
    ACCESS_LOGS_BUCKET,
    DATA_KEY,
    DECISIONS_TABLE,
    DOCUMENTS_BUCKET,
    EVENT_BUS,
    EXECUTIONS_TABLE,
    IDEMPOTENCY_TABLE,
    PINNED_LOGICAL_IDS,
    Synthesized,
    lambda_function_lid,
    llm_grants,
    qualified_name,
)

pytestmark = pytest.mark.infra

CONTRACTS = generated_contracts.CONTRACTS  # the shipped contracts, or the set the generated tests are pointed at
DOC_REVIEW = load_workflow(WORKFLOWS_DIR / "doc-review.yaml")
LAMBDA_AGENTS = sorted(name for name, contract in CONTRACTS.items() if isinstance(contract.runtime, LambdaRuntime))
ENDPOINT_AGENTS = sorted(name for name, c in CONTRACTS.items() if isinstance(c.runtime, SageMakerRuntime))
LLM_AGENTS = sorted(name for name, c in CONTRACTS.items() if isinstance(c.runtime, LlmRuntime))

TABLES = (DECISIONS_TABLE, EXECUTIONS_TABLE, IDEMPOTENCY_TABLE)
BUCKETS = (ACCESS_LOGS_BUCKET, DOCUMENTS_BUCKET)

# Identity-policy actions that support no resource-level permissions, so '*' is their only resource.
RESOURCELESS_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "dynamodb:ListStreams",  # granted with a DynamoDB stream event source; it has no resource-level form
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "ecr:GetAuthorizationToken",  # a SageMaker execution role pulling its image
}


SQS_EVENT_SOURCE = (
    "sqs:ReceiveMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueUrl",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
)


def get_att(lid: str, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [lid, attribute]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def actions(statements: Iterable[dict[str, Any]]) -> set[str]:
    return {action for statement in statements for action in as_list(statement["Action"])}


def normalized(statement: dict[str, Any]) -> str:
    """A statement as comparable text: action and resource lists sorted, singletons as lists."""
    canonical = dict(statement)
    canonical["Action"] = sorted(as_list(statement["Action"]))
    canonical["Resource"] = sorted((as_list(statement["Resource"])), key=json.dumps)
    return json.dumps(canonical, sort_keys=True)


def statements_on(statements: Iterable[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [statement for statement in statements if action in as_list(statement["Action"])]


def agent_role_statements(synthesized: Synthesized, agent: str) -> list[dict[str, Any]]:
    return synthesized.role_statements(synthesized.role_of(synthesized.agent_functions()[agent]))


def verb_resources(synthesized: Synthesized) -> Resources:
    stack = synthesized.stack
    return Resources(
        data=stack.data,
        event_bus_arn=stack.mesh.bus.event_bus_arn,
        event_bus_name=stack.mesh.bus.event_bus_name,
        knowledge_base=stack.layers.knowledge_base,
        knowledge_base_path=stack.layers.knowledge_base_path,
    )


@pytest.fixture(scope="module")
def assertions(synthesized: Synthesized) -> Template:
    return Template.from_json(synthesized.template)


# --- agents: built from their contracts ----------------------------------------------------------------------


def test_every_lambda_contract_has_a_function(synthesized: Synthesized) -> None:
    # GIVEN the contracts in the repository WHEN the plane is synthesized
    # THEN each Lambda contract has exactly one function that runs as it, each SageMaker contract its endpoint's
    # invoker, and no function runs as an unknown agent
    assert sorted(synthesized.agent_functions()) == sorted(LAMBDA_AGENTS + ENDPOINT_AGENTS + LLM_AGENTS)


@pytest.mark.parametrize("agent", LAMBDA_AGENTS)
def test_agent_function_follows_its_contract(synthesized: Synthesized, agent: str) -> None:
    # GIVEN an agent's contract
    contract = CONTRACTS[agent]
    runtime = contract.runtime
    assert isinstance(runtime, LambdaRuntime)

    # WHEN its function is read from the template
    props = synthesized.resources[synthesized.agent_functions()[agent]]["Properties"]
    environment = props["Environment"]["Variables"]

    # THEN it runs the contract's handler on arm64 Python 3.14 with active tracing, sized as the contract says
    assert props["Runtime"] == "python3.14"
    assert props["Architectures"] == ["arm64"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["Handler"] == runtime.handler
    assert props["MemorySize"] == runtime.memory_mb
    assert props["Timeout"] == runtime.effective_timeout_s(contract.slo)
    assert props.get("ReservedConcurrentExecutions") == runtime.reserved_concurrency
    # AND it knows which agent, version and capabilities it is
    assert environment["AGENT_NAME"] == contract.name
    assert environment["AGENT_VERSION"] == contract.version
    assert environment["AGENT_CAPABILITIES"] == ",".join(contract.capabilities)
    assert environment["DECISIONS_TABLE"] == {"Ref": DECISIONS_TABLE}


@pytest.mark.parametrize("agent", LAMBDA_AGENTS + LLM_AGENTS)
def test_agent_role_grants_exactly_its_contract(synthesized: Synthesized, agent: str) -> None:
    # GIVEN what the agent's permission verbs grant, and what every agent's runtime needs for itself
    contract: CapabilityContract = CONTRACTS[agent]
    stack = synthesized.stack
    grants = [PERMISSION_VERBS[verb](verb_resources(synthesized)) for verb in contract.permissions]
    function_lid = synthesized.agent_functions()[agent]
    props = synthesized.resources[function_lid]["Properties"]
    log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
    # A declared degraded handler runs as its own function, with its own log group, under the same role.
    log_groups = [log_group] + [
        fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        for fn in synthesized.of_type("AWS::Lambda::Function").values()
        if fn["Properties"].get("Environment", {}).get("Variables", {}).get("AGENT_NAME") == agent
        and "AGENT_VARIANT" in fn["Properties"]["Environment"]["Variables"]
    ]
    runtime_own = [
        *({"Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": get_att(lg)} for lg in log_groups),
        {"Action": ["dynamodb:PutItem", "dynamodb:GetItem"], "Resource": get_att(DECISIONS_TABLE)},
        {"Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": get_att(DATA_KEY)},
        {"Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*"},
    ]
    if isinstance(contract.runtime, LambdaRuntime) and contract.runtime.bursty and contract.subscribes:
        # A buffered agent drains its queue (the event source's grant); the queue itself is tested on its own.
        [queue] = [
            m["Properties"]["EventSourceArn"]
            for m in synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
            if m["Properties"]["FunctionName"] == qualified_name(synthesized.live_alias(function_lid))
        ]
        runtime_own.append({"Action": list(SQS_EVENT_SOURCE), "Resource": queue})
    from_contract = [stack.resolve(s.to_statement_json()) for grant in grants for s in grant.statements]
    if isinstance(contract.runtime, LlmRuntime):  # its model, and its tools through the tool dispatcher
        from_contract += llm_grants(synthesized, contract)
    expected = [{"Effect": "Allow", **statement} for statement in runtime_own] + from_contract

    # WHEN its role's statements are read from the template
    granted = agent_role_statements(synthesized, agent)

    # THEN the role holds those statements and nothing else (CDK drops a statement identical to another)
    assert sorted(set(map(normalized, granted))) == sorted(set(map(normalized, expected)))
    # AND the function is told where the granted resources are, and mounts the layers its verbs bring
    environment = props["Environment"]["Variables"]
    for grant in grants:
        for key, value in grant.environment.items():
            assert environment[key] == stack.resolve(value), key
        for layer in grant.layers:
            assert stack.resolve(layer.layer_version_arn) in props["Layers"]


def test_evidence_verifier_reaches_no_documents_events_or_executions(synthesized: Synthesized) -> None:
    # GIVEN the evidence verifier, whose contract grants no data access
    # WHEN its role is read
    granted = actions(agent_role_statements(synthesized, "evidence-verifier"))

    # THEN it may write its decision record and nothing in S3, on the bus, or in the executions view
    assert not {action for action in granted if action.startswith(("s3:", "events:", "states:", "lambda:"))}
    assert "dynamodb:UpdateItem" not in granted
    assert granted & {"dynamodb:PutItem", "dynamodb:GetItem"} == {"dynamodb:PutItem", "dynamodb:GetItem"}


def test_decision_recorder_publishes_to_the_bus_and_updates_only_executions(synthesized: Synthesized) -> None:
    # GIVEN the decision recorder (write:executions, publish:events)
    statements = agent_role_statements(synthesized, "decision-recorder")

    # THEN it may put events on the plane's bus only
    put_events = statements_on(statements, "events:PutEvents")
    assert [statement["Resource"] for statement in put_events] == [get_att(EVENT_BUS)]
    # AND update items in the executions table and its idempotency records only (its decision record is a
    # conditional put, never an update)
    updates = statements_on(statements, "dynamodb:UpdateItem")
    assert [statement["Resource"] for statement in updates] == [get_att(EXECUTIONS_TABLE), get_att(IDEMPOTENCY_TABLE)]
    assert not [s for s in statements if s["Resource"] == get_att(DOCUMENTS_BUCKET)]


def test_document_intake_reads_and_writes_only_under_the_documents_prefix(synthesized: Synthesized) -> None:
    # GIVEN the document intake agent (read:documents for the claim-checked request, write:documents)
    statements = agent_role_statements(synthesized, "document-intake")

    # THEN its only S3 actions are GetObject and PutObject on objects under documents/ of the documents bucket
    s3_statements = [s for s in statements if any(a.startswith("s3:") for a in as_list(s["Action"]))]
    assert sorted(a for s in s3_statements for a in as_list(s["Action"])) == ["s3:GetObject", "s3:PutObject"]
    for statement in s3_statements:
        assert statement["Resource"] == {"Fn::Join": ["", [get_att(DOCUMENTS_BUCKET), "/documents/*"]]}
    # AND it can decrypt what it reads and encrypt what it writes with the data key
    assert {"kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"} <= actions(
        s for s in statements if s["Resource"] == get_att(DATA_KEY)
    )


def test_no_policy_allows_every_action(synthesized: Synthesized) -> None:
    # GIVEN every policy document in the template: identity, key, bucket, queue and trust policies
    # THEN no statement names the action "*"
    offenders = [
        (lid, statement)
        for lid, statement in synthesized.all_policy_statements()
        if "*" in as_list(statement["Action"])
    ]
    assert offenders == []


def test_agent_roles_cannot_pass_roles_or_borrow_managed_policies(synthesized: Synthesized) -> None:
    # GIVEN each agent's role
    for agent, function_lid in synthesized.agent_functions().items():
        role_lid = synthesized.role_of(function_lid)
        granted = actions(synthesized.role_statements(role_lid))
        # THEN it cannot hand a role to a service, touch IAM at all, or inherit a managed policy's grants
        assert not {action for action in granted if action.startswith("iam:")}, agent
        assert "ManagedPolicyArns" not in synthesized.resources[role_lid]["Properties"], agent


def test_wildcard_resources_only_for_actions_without_resource_level_permissions(synthesized: Synthesized) -> None:
    # GIVEN every Allow statement of every IAM role and policy
    for lid, res in {**synthesized.of_type("AWS::IAM::Policy"), **synthesized.of_type("AWS::IAM::Role")}.items():
        documents = [res["Properties"].get("PolicyDocument")] + [
            policy["PolicyDocument"] for policy in res["Properties"].get("Policies", [])
        ]
        for document in filter(None, documents):
            for statement in document["Statement"]:
                # THEN Resource "*" appears only for X-Ray and log-delivery actions, which have no resource ARNs
                if statement["Effect"] == "Allow" and "*" in as_list(statement["Resource"]):
                    assert set(as_list(statement["Action"])) <= RESOURCELESS_ACTIONS, (lid, statement)


def test_api_function_admits_doc_review_runs_by_the_limit_its_contracts_give(synthesized: Synthesized) -> None:
    # GIVEN the API function
    (api_lid,) = [
        lid
        for lid, res in synthesized.of_type("AWS::Lambda::Function").items()
        if res["Properties"]["Handler"] == "functions.api.handler.lambda_handler"
    ]
    rendered = json.dumps(synthesized.resources[api_lid]["Properties"]["Environment"]["Variables"]["WORKFLOWS"])
    limit = admission_limit(CONTRACTS[name] for name in workflow_agents(DOC_REVIEW, CONTRACTS))

    # THEN its WORKFLOWS setting carries doc-review's admission limit, derived from the agents' contracts
    assert f'\\"max_in_flight\\":{limit.max_in_flight}' in rendered
    assert f'\\"admission_window_ms\\":{limit.window_ms}' in rendered
    # AND it may count admissions in the executions table with conditional updates
    statements = synthesized.role_statements(synthesized.role_of(api_lid))
    executions = {"Fn::GetAtt": [EXECUTIONS_TABLE, "Arn"]}
    assert any(executions in as_list(s["Resource"]) for s in statements_on(statements, "dynamodb:UpdateItem"))


def test_api_function_starts_only_the_doc_review_state_machine(synthesized: Synthesized) -> None:
    # GIVEN the API function's role
    (api_lid,) = [
        lid
        for lid, res in synthesized.of_type("AWS::Lambda::Function").items()
        if res["Properties"]["Handler"] == "functions.api.handler.lambda_handler"
    ]
    statements = synthesized.role_statements(synthesized.role_of(api_lid))
    machine = doc_review_machine(synthesized)
    alias = synthesized.state_machine_alias(machine)

    # THEN it may start the doc-review state machine, through its live alias, and nothing else
    (start,) = statements_on(statements, "states:StartExecution")
    assert start["Resource"] == [{"Ref": machine}, {"Ref": alias}]
    assert start["Condition"] == {"StringEquals": {"states:StateMachineQualifier": "live"}}
    # AND its other Step Functions rights are to read that machine's runs (and run quick-check synchronously),
    # and to read the workflows' aliases (rollouts)
    others = {a for a in actions(statements) if a.startswith("states:")} - {"states:StartExecution"}
    assert others == {
        "states:DescribeExecution",
        "states:StartSyncExecution",
        "states:SendTaskSuccess",  # approvals resume the run waiting at the gate
        "states:SendTaskFailure",
        "states:DescribeStateMachineAlias",
    }
    (describe,) = statements_on(statements, "states:DescribeExecution")
    assert get_att(machine, "Name") in describe["Resource"]["Fn::Join"][1]
    # AND it invokes no agent directly: in Lambda it only reads the agents' aliases
    assert {a for a in actions(statements) if a.startswith(("lambda:", "events:"))} == {"lambda:GetAlias"}
    # AND in S3 it reads the ledger's digests (for audit lineage and export) and writes claim-checked requests only
    s3 = {a for a in actions(statements) if a.startswith("s3:")}
    assert s3 == {"s3:GetObject", "s3:ListBucket", "s3:PutObject"}
    (put,) = statements_on(statements, "s3:PutObject")
    assert put["Resource"] == {"Fn::Join": ["", [get_att(DOCUMENTS_BUCKET), "/documents/requests/*"]]}


# --- encryption and durability ---------------------------------------------------------------------------------


@pytest.mark.parametrize("table", TABLES)
def test_table_is_encrypted_with_the_data_key_and_recoverable(
    synthesized: Synthesized, synthesized_prod: Synthesized, table: str
) -> None:
    # GIVEN a table of the plane
    props = synthesized.resources[table]["Properties"]

    # THEN it is encrypted with the customer-managed data key and can be restored to any point in time
    assert props["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": get_att(DATA_KEY)}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    # AND in prod (whose removal policy is retain) it is protected from deletion; a sandbox's goes with its stack
    assert synthesized_prod.resources[table]["Properties"]["DeletionProtectionEnabled"] is True
    assert props["DeletionProtectionEnabled"] is False


def test_decisions_table_streams_new_images_to_the_ledger(synthesized: Synthesized) -> None:
    # GIVEN the append-only decisions table, which feeds the audit ledger
    props = synthesized.resources[DECISIONS_TABLE]["Properties"]
    # THEN its stream carries each record as written
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}


def test_data_key_rotates(synthesized: Synthesized) -> None:
    assert synthesized.resources[DATA_KEY]["Properties"]["EnableKeyRotation"] is True


def test_documents_bucket_is_kms_encrypted_and_versioned(synthesized: Synthesized) -> None:
    # GIVEN the documents bucket
    props = synthesized.resources[DOCUMENTS_BUCKET]["Properties"]

    # THEN objects are encrypted with the data key (bucket keys keep KMS calls down) and every version is kept
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": get_att(DATA_KEY)}
    assert rule["BucketKeyEnabled"] is True
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    # AND its access is logged to the access-logs bucket
    assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": ACCESS_LOGS_BUCKET}


@pytest.mark.parametrize("bucket", BUCKETS)
def test_bucket_is_private_and_refuses_plain_http(synthesized: Synthesized, bucket: str) -> None:
    # GIVEN a bucket of the plane
    props = synthesized.resources[bucket]["Properties"]

    # THEN public access is blocked four ways
    assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    # AND its bucket policy denies every request that does not come over TLS
    (policy,) = [
        res
        for res in synthesized.of_type("AWS::S3::BucketPolicy").values()
        if res["Properties"]["Bucket"] == {"Ref": bucket}
    ]
    denials = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(denials) == 1
    assert denials[0]["Action"] == "s3:*"
    assert denials[0]["Principal"] == {"AWS": "*"}
    assert sorted(map(json.dumps, denials[0]["Resource"])) == sorted(
        map(json.dumps, [get_att(bucket), {"Fn::Join": ["", [get_att(bucket), "/*"]]}])
    )


def decision_recorded_rule(synthesized: Synthesized) -> tuple[str, dict[str, Any]]:
    (rule,) = [
        (lid, res["Properties"])
        for lid, res in synthesized.of_type("AWS::Events::Rule").items()
        if res["Properties"].get("EventPattern", {}).get("detail-type") == ["decision.recorded"]
    ]
    return rule


def test_dead_letter_queue_is_encrypted_and_tls_only(synthesized: Synthesized, assertions: Template) -> None:
    # GIVEN the entity tagger's dead-letter queue (the decision.recorded rule target's DLQ)
    rule_lid, rule = decision_recorded_rule(synthesized)
    queue_lid = rule["Targets"][0]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]

    # THEN it is encrypted at rest and refuses plain HTTP
    assert synthesized.resources[queue_lid]["Properties"]["SqsManagedSseEnabled"] is True
    assertions.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": queue_lid}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}),
                        # AND only the rule that owns it may send to it
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Action": "sqs:SendMessage",
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Condition": {"ArnEquals": {"aws:SourceArn": get_att(rule_lid)}},
                            }
                        ),
                    ]
                )
            },
        },
    )


# --- tracing, logging and the front door -----------------------------------------------------------------------


def test_state_machine_traces_and_logs_every_event(synthesized: Synthesized) -> None:
    # GIVEN each state machine
    for lid, machine in synthesized.of_type("AWS::StepFunctions::StateMachine").items():
        props = machine["Properties"]
        # THEN it is traced in X-Ray and logs every execution event, with its data, to its log group
        assert props["TracingConfiguration"] == {"Enabled": True}, lid
        assert props["LoggingConfiguration"]["Level"] == "ALL", lid
        assert props["LoggingConfiguration"]["IncludeExecutionData"] is True, lid
        (destination,) = props["LoggingConfiguration"]["Destinations"]
        log_group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
        assert synthesized.resources[log_group]["Type"] == "AWS::Logs::LogGroup"


def test_api_stage_is_traced_and_access_logged(synthesized: Synthesized) -> None:
    # GIVEN the API's stage
    (stage,) = synthesized.of_type("AWS::ApiGateway::Stage").values()
    props = stage["Properties"]

    # THEN requests are traced and written to an access log group as JSON with the caller's identity
    assert props["TracingEnabled"] is True
    log_group = props["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][0]
    assert synthesized.resources[log_group]["Type"] == "AWS::Logs::LogGroup"
    access_log = json.loads(props["AccessLogSetting"]["Format"])
    assert {"requestId", "caller", "user", "status", "resourcePath"} <= set(access_log)


def method_paths(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """``"GET /v1/health"`` -> that method's properties, with paths rebuilt from the resource tree."""
    resources = synthesized.of_type("AWS::ApiGateway::Resource")

    def path(ref: Any) -> str:
        if isinstance(ref, dict) and "Ref" in ref and ref["Ref"] in resources:
            props = resources[ref["Ref"]]["Properties"]
            return path(props["ParentId"]) + "/" + props["PathPart"]
        return ""  # the API's root resource

    return {
        f"{m['Properties']['HttpMethod']} {path(m['Properties']['ResourceId'])}": m["Properties"]
        for m in synthesized.of_type("AWS::ApiGateway::Method").values()
    }


def test_api_methods_require_sigv4_except_health(synthesized: Synthesized) -> None:
    # GIVEN every method of the REST API
    methods = method_paths(synthesized)
    assert "GET /v1/health" in methods
    assert f"POST /v1/workflows/{DOC_REVIEW.name}/executions" in methods

    # THEN each one is IAM-authorised, except the readiness probe
    authorization = {route: props["AuthorizationType"] for route, props in methods.items()}
    assert authorization.pop("GET /v1/health") == "NONE"
    assert set(authorization.values()) == {"AWS_IAM"}


def test_doc_review_route_validates_bodies_of_any_content_type(synthesized: Synthesized) -> None:
    # GIVEN the doc-review start route
    props = method_paths(synthesized)[f"POST /v1/workflows/{DOC_REVIEW.name}/executions"]

    # THEN its body is checked against the generated model whether or not the caller says it is JSON
    models = props["RequestModels"]
    assert set(models) == {"application/json", "$default"}
    (model_ref,) = {json.dumps(ref) for ref in models.values()}
    model = synthesized.resources[json.loads(model_ref)["Ref"]]["Properties"]
    assert model["Schema"]["title"] == DOC_REVIEW.input
    assert model["Schema"]["$schema"] == "http://json-schema.org/draft-04/schema#"
    # AND a validator that checks bodies is attached
    validator = synthesized.resources[props["RequestValidatorId"]["Ref"]]["Properties"]
    assert validator["ValidateRequestBody"] is True


def test_gateway_refusals_are_problem_json(synthesized: Synthesized) -> None:
    # GIVEN API Gateway's own responses
    responses = {
        res["Properties"]["ResponseType"]: res["Properties"]
        for res in synthesized.of_type("AWS::ApiGateway::GatewayResponse").values()
    }
    # THEN a body that fails validation is a 400 RFC 9457 problem, as are the catch-all 4xx and 5xx
    assert {"BAD_REQUEST_BODY", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    assert responses["BAD_REQUEST_BODY"]["StatusCode"] == "400"
    for response_type, props in responses.items():
        assert props["ResponseParameters"]["gatewayresponse.header.Content-Type"] == "'application/problem+json'"
        (template,) = props["ResponseTemplates"].values()
        assert set(props["ResponseTemplates"]) == {"application/problem+json"}, response_type
        assert '"type":"https://agentplane.dev/problems/' in template, response_type


# --- choreography ---------------------------------------------------------------------------------------------


def test_decision_recorded_reaches_the_entity_tagger_with_retries_and_a_dlq(synthesized: Synthesized) -> None:
    # GIVEN the rule for decision.recorded on the plane's bus
    _, rule = decision_recorded_rule(synthesized)
    assert rule["EventBusName"] == {"Ref": EVENT_BUS}

    # THEN it targets the entity tagger's buffer queue (it is bursty), retries, and dead-letters what it cannot
    # deliver to an SQS queue
    (target,) = rule["Targets"]
    [drained] = [
        m["Properties"]["EventSourceArn"]
        for m in synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"]
        == qualified_name(synthesized.live_alias(synthesized.agent_functions()["entity-tagger"]))
    ]
    assert target["Arn"] == drained
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] > 0
    dlq = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    assert synthesized.resources[dlq]["Type"] == "AWS::SQS::Queue"


def test_bus_archives_plane_events_for_replay(assertions: Template) -> None:
    assertions.has_resource_properties(
        "AWS::Events::Archive",
        {
            "SourceArn": get_att(EVENT_BUS),
            "EventPattern": {"source": ["agentplane"]},
            "RetentionDays": Match.any_value(),
        },
    )


# --- logical ids are public API --------------------------------------------------------------------------------


def test_stateful_logical_ids_are_pinned(synthesized: Synthesized) -> None:
    """Stateful resources keep the logical ids they were first deployed under.

    CloudFormation identifies a resource by its logical id: changing one (renaming a construct, moving it to
    another parent) makes the next deploy create a new resource and delete or orphan the old one, losing its
    data (tables, documents, the key that decrypts them, the bus archive). If this fails, restore the id
    (e.g. with ``override_logical_id``) instead of updating the list.
    """
    found = {lid: synthesized.resources[lid]["Type"] for lid in PINNED_LOGICAL_IDS if lid in synthesized.resources}
    assert found == PINNED_LOGICAL_IDS


@pytest.mark.parametrize("lid", [DATA_KEY, *TABLES, *BUCKETS])
def test_stateful_resources_are_retained_in_prod(synthesized_prod: Synthesized, lid: str) -> None:
    # GIVEN prod (its removal policy: retain) WHEN the stack is deleted or the resource replaced
    # THEN the data outlives it
    assert synthesized_prod.resources[lid]["DeletionPolicy"] == "Retain"
    assert synthesized_prod.resources[lid]["UpdateReplacePolicy"] == "Retain"


# --- the doc-review state machine ------------------------------------------------------------------------------


def doc_review_machine(synthesized: Synthesized) -> str:
    (lid,) = [lid for lid in synthesized.of_type("AWS::StepFunctions::StateMachine") if lid.startswith("DocReview")]
    return lid


@pytest.fixture(scope="module")
def doc_review_asl(synthesized: Synthesized) -> dict[str, Any]:
    return synthesized.state_machine_definition(doc_review_machine(synthesized))


def tasks_of(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every Task state, including those inside Map item processors."""
    found = {}
    for name, state in states.items():
        if state["Type"] == "Task":
            found[name] = state
        if state["Type"] == "Map":
            found |= tasks_of(state["ItemProcessor"]["States"])
    return found


def test_doc_review_has_the_designed_steps(doc_review_asl: dict[str, Any]) -> None:
    # GIVEN the resolved doc-review definition
    states = doc_review_asl["States"]

    # THEN intake runs first, the document is summarized (on CPU if the endpoint fails), its claims are verified in
    # a Map, then scored and recorded; failures are recorded too
    assert doc_review_asl["StartAt"] == "Intake"
    expected = {
        "Intake": "Task",
        "SummarizeDocument": "Task",
        "SummarizeOnCpu": "Task",
        "VerifyClaims": "Map",
        "ScoreRisk": "Task",
        "NeedsApproval": "Choice",
        "RequestApproval": "Task",
        "ApprovalTimedOut": "Pass",
        "NoApprovalNeeded": "Pass",
        "RecordDecision": "Task",
        "HasCause": "Choice",
        "NameTheCause": "Pass",
        "RecordFailure": "Task",
        "ReservedErrorName": "Choice",
        "UnreservedErrorName": "Pass",
        "Failed": "Fail",
        "Done": "Succeed",
    }
    assert {name: states[name]["Type"] for name in expected if name in states} == expected
    assert states["Intake"]["Next"] == "SummarizeDocument"
    assert states["SummarizeDocument"]["Next"] == "SummarizedOnEndpoint"
    assert states["SummarizeOnCpu"]["Next"] == "SummarizedOnCpu"
    assert states["SummarizedOnEndpoint"]["Next"] == states["SummarizedOnCpu"]["Next"] == "VerifyClaims"
    # AND what was degraded (the CPU fallback) reaches the risk policy
    assert states["SummarizedOnCpu"]["ResultPath"] == states["SummarizedOnEndpoint"]["ResultPath"] == "$.degraded"
    assert states["ScoreRisk"]["Parameters"]["payload"]["degraded.$"] == "$.degraded.steps"
    assert states["VerifyClaims"]["Next"] == "ScoreRisk"
    assert states["ScoreRisk"]["Next"] == "NeedsApproval"
    assert states["RequestApproval"]["Next"] == "RecordDecision"
    assert states["RecordFailure"]["Next"] == "ReservedErrorName"
    assert states["VerifyClaims"]["ItemsPath"] == "$.summary.claims"
    verify = DOC_REVIEW.step("VerifyClaims")
    assert isinstance(verify, MapStep)
    assert states["VerifyClaims"]["MaxConcurrency"] == verify.concurrency


def test_doc_review_transitions_name_existing_states(doc_review_asl: dict[str, Any]) -> None:
    # cfn-lint checks each state's shape but not that Next/Catch targets exist (see test_cfn_lint.py)
    def check(scope: dict[str, Any]) -> None:
        states = scope["States"]
        assert scope["StartAt"] in states
        for name, state in states.items():
            targets = [state.get("Next"), *(catcher["Next"] for catcher in state.get("Catch", []))]
            for target in filter(None, targets):
                assert target in states, f"{name} -> {target}"
            assert state["Type"] in ("Succeed", "Fail", "Choice") or "Next" in state or state.get("End") is True
            if state["Type"] == "Map":
                check(state["ItemProcessor"])

    check(doc_review_asl)


def test_every_agent_step_retries_transient_errors_with_full_jitter(doc_review_asl: dict[str, Any]) -> None:
    # GIVEN every Task, top level or inside the claims Map
    for name, state in tasks_of(doc_review_asl["States"]).items():
        if name == "RecordFailure":
            continue  # retries any error (test_recording_a_failure_never_fails_the_run)
        # THEN it retries, backing off exponentially with full jitter so retries from a fan-out do not align
        assert state["Retry"], name
        for retrier in state["Retry"]:
            assert retrier["JitterStrategy"] == "FULL", name
            assert retrier["BackoffRate"] == 2, name
            # AND only transient Lambda errors are retried: an agent's typed errors are final
            assert "States.ALL" not in retrier["ErrorEquals"], name
            assert all(error.startswith("Lambda.") for error in retrier["ErrorEquals"]), name


def test_every_step_failure_is_recorded(doc_review_asl: dict[str, Any]) -> None:
    # GIVEN the top-level steps (a claim check inside the Map fails the Map, which is caught here)
    states = doc_review_asl["States"]
    steps = [name for name, state in states.items() if state["Type"] in ("Task", "Map") and name != "RecordFailure"]
    assert "VerifyClaims" in steps

    # THEN any error of any of them is caught, kept at $.failure and handed to the failure path
    for name in steps:
        catchers = states[name]["Catch"]
        assert {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "HasCause"} in catchers, name
    # AND a failure with a cause goes straight to RecordFailure; one without is given a cause first
    assert states["HasCause"]["Choices"][0]["Next"] == "RecordFailure"
    assert states["HasCause"]["Default"] == "NameTheCause"
    assert states["NameTheCause"]["ResultPath"] == "$.failure"
    assert states["NameTheCause"]["Next"] == "RecordFailure"


def test_recording_a_failure_never_fails_the_run(doc_review_asl: dict[str, Any]) -> None:
    states = doc_review_asl["States"]
    record = states["RecordFailure"]

    # THEN the recorder retries any error of its own, with jitter...
    assert record["Retry"][-1]["ErrorEquals"] == ["States.ALL"]
    assert record["Retry"][-1]["MaxAttempts"] == (DOC_REVIEW.failure.attempts if DOC_REVIEW.failure else None)
    assert record["Retry"][-1]["JitterStrategy"] == "FULL"
    # AND if it still fails, the run ends failed with the original error and cause, not the recorder's
    [catcher] = record["Catch"]
    assert catcher["ErrorEquals"] == ["States.ALL"]
    assert catcher["Next"] == record["Next"] == "ReservedErrorName"
    assert catcher["ResultPath"] != "$.failure"
    assert states["Failed"] == {"Type": "Fail", "ErrorPath": "$.failure.Error", "CausePath": "$.failure.Cause"}
    # AND a reserved name (States.Timeout), which a Fail state may not raise, ends the run without its prefix
    reserved = states["ReservedErrorName"]
    assert reserved["Choices"][0]["StringMatches"] == "States.*"
    assert reserved["Choices"][0]["Next"] == "UnreservedErrorName"
    assert reserved["Default"] == states["UnreservedErrorName"]["Next"] == "Failed"


def test_every_task_sends_its_agents_contract_capability(
    synthesized: Synthesized, doc_review_asl: dict[str, Any]
) -> None:
    # GIVEN which agent each function runs as
    agent_of = {lid: agent for agent, lid in synthesized.agent_functions().items()}
    invoked = set()

    for name, state in tasks_of(doc_review_asl["States"]).items():
        if name == "RequestApproval":
            continue  # the approval gate is the plane's, not an agent: it takes the callback request, no envelope
        # WHEN a task's target and envelope are read (a dispatched step names its primary in the comment)
        parameters = state["Parameters"]
        target = lambda_function_lid(state["Resource"])
        if target in agent_of:
            contract = CONTRACTS[agent_of[target]]
            if isinstance(contract.runtime, SageMakerRuntime):
                contract = invoker_contract(contract)  # its step runs the endpoint's invoker, as the contract
        else:
            parameters = parameters["envelope"]
            contract = CONTRACTS[state["Comment"].split("primary ")[1].split()[0]]
            assert state["TimeoutSeconds"] >= contract.runtime.effective_timeout_s(contract.slo)  # type: ignore[union-attr]
        runtime = contract.runtime
        assert isinstance(runtime, LambdaRuntime)
        invoked.add(contract.name)

        # THEN the envelope names the agent's capability at the contract's version, within its deadline
        assert parameters["capability"] == contract.capabilities[0], name
        assert parameters["capability_version"] == contract.version, name
        assert parameters["deadline.$"] == "$.deadline", name
        assert parameters["correlation_id.$"] == "$.correlation_id", name
        if target in agent_of:
            assert state["TimeoutSeconds"] == runtime.effective_timeout_s(contract.slo), name

    # AND every agent the workflow declares is one of its steps
    assert invoked == set(workflow_agents(DOC_REVIEW, CONTRACTS))
