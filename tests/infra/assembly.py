"""One synthesized cloud assembly and the questions infra tests ask of its template.

Synthesis starts a jsii node process and takes seconds, so tests share one per session (see conftest.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.capability import CapabilityContract, LlmRuntime
from contracts.loader import CONTRACTS_DIR
from infra.app import DEFAULT_STACK_NAME, build_app
from infra.local.template import ACCOUNT_ID, REGION, Physical, Resolver
from infra.paths import FUNCTIONS_DIR
from infra.stack import AgentPlaneStack

# Asset metadata lets readers of the template (the local plane, these tests) find staged code.
SYNTH_CONTEXT = {"aws:cdk:enable-asset-metadata": "true"}

# Stateful resources and the logical ids they were first deployed under. CloudFormation knows a resource by its
# logical id: a new id means a new resource, and the old one (with its data) deleted or orphaned. Never edit these
# to make a test pass; pin the construct's id instead.
DATA_KEY = "DataDataKeyCDD1A924"
DECISIONS_TABLE = "DataDecisionsFDC15C64"
EXECUTIONS_TABLE = "DataExecutionsAFA4343B"
IDEMPOTENCY_TABLE = "DataIdempotency4AE02808"
ACCESS_LOGS_BUCKET = "DataAccessLogsC0C25EE4"
DOCUMENTS_BUCKET = "DataDocumentsDACEAC53"
EVENT_BUS = "EventsBus45DE4339"
EVENT_ARCHIVE = "EventsBusArchive3AC72948"
LEDGER_TABLE = "LedgerEntries5999C498"
LEDGER_SIGNING_KEY = "LedgerSigningKey8DA431AD"
LEDGER_DIGESTS_BUCKET = "LedgerDigests8E461BB7"
APPROVALS_TABLE = "ApprovalsA0F5E432"
PINNED_LOGICAL_IDS = {
    DATA_KEY: "AWS::KMS::Key",
    DECISIONS_TABLE: "AWS::DynamoDB::Table",
    EXECUTIONS_TABLE: "AWS::DynamoDB::Table",
    IDEMPOTENCY_TABLE: "AWS::DynamoDB::Table",
    ACCESS_LOGS_BUCKET: "AWS::S3::Bucket",
    DOCUMENTS_BUCKET: "AWS::S3::Bucket",
    EVENT_BUS: "AWS::Events::EventBus",
    EVENT_ARCHIVE: "AWS::Events::Archive",
    LEDGER_TABLE: "AWS::DynamoDB::Table",
    LEDGER_SIGNING_KEY: "AWS::KMS::Key",
    LEDGER_DIGESTS_BUCKET: "AWS::S3::Bucket",
    APPROVALS_TABLE: "AWS::DynamoDB::Table",
}


@dataclass(frozen=True)
class Synthesized:
    outdir: Path
    stack: AgentPlaneStack
    template: dict[str, Any]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.template["Resources"]
        return resources

    @property
    def template_path(self) -> Path:
        return self.outdir / f"{DEFAULT_STACK_NAME}.template.json"

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {lid: res for lid, res in self.resources.items() if res["Type"] == resource_type}

    def agent_functions(self) -> dict[str, str]:
        """Agent name (the ``AGENT_NAME`` its function runs as) -> the function's logical id."""
        found = {}
        for lid, res in self.of_type("AWS::Lambda::Function").items():
            variables = res["Properties"].get("Environment", {}).get("Variables", {})
            name = variables.get("AGENT_NAME")
            if name is not None and "AGENT_VARIANT" not in variables:  # the primary, not a degraded handler
                found[name] = lid
        return found

    def live_alias(self, function_lid: str) -> str:
        """The logical id of a function's ``live`` alias: what every caller of an agent invokes."""
        [lid] = [
            lid
            for lid, res in self.of_type("AWS::Lambda::Alias").items()
            if res["Properties"]["FunctionName"] == {"Ref": function_lid} and res["Properties"]["Name"] == "live"
        ]
        return lid

    def state_machine_alias(self, machine_lid: str) -> str:
        """The logical id of the ``live`` alias whose version publishes this state machine: what callers start."""
        versions = {
            lid
            for lid, res in self.of_type("AWS::StepFunctions::StateMachineVersion").items()
            if res["Properties"]["StateMachineArn"] == {"Ref": machine_lid}
        }
        [lid] = [
            lid
            for lid, res in self.of_type("AWS::StepFunctions::StateMachineAlias").items()
            if res["Properties"]["DeploymentPreference"]["StateMachineVersionArn"].get("Ref") in versions
        ]
        return lid

    def role_of(self, function_lid: str) -> str:
        role = self.resources[function_lid]["Properties"]["Role"]
        assert set(role) == {"Fn::GetAtt"}, f"{function_lid} must use a role of this stack, not {role}"
        lid: str = role["Fn::GetAtt"][0]
        return lid

    def role_statements(self, role_lid: str) -> list[dict[str, Any]]:
        """Every identity-policy statement attached to a role: inline policies and AWS::IAM::Policy resources."""
        statements = [
            statement
            for policy in self.resources[role_lid]["Properties"].get("Policies", [])
            for statement in policy["PolicyDocument"]["Statement"]
        ]
        for policy in self.of_type("AWS::IAM::Policy").values():
            if {"Ref": role_lid} in policy["Properties"].get("Roles", []):
                statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
        return statements

    def all_policy_statements(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(logical id, statement) for every policy document in the template, identity or resource based."""
        for lid, res in self.resources.items():
            props = res.get("Properties", {})
            documents = [props.get(key) for key in ("PolicyDocument", "KeyPolicy", "AssumeRolePolicyDocument")]
            documents += [policy["PolicyDocument"] for policy in props.get("Policies", [])]
            for document in documents:
                if isinstance(document, dict):
                    for statement in document["Statement"]:
                        yield lid, statement

    def state_machine_definition(self, lid: str) -> dict[str, Any]:
        """A state machine's ASL as plain JSON: its ``Fn::Join`` resolved against stand-in physical resources.

        Every Lambda ARN ends in the function's logical id, so a Task's ``Resource`` says which agent it runs.
        """
        props = self.resources[lid]["Properties"]
        physical = {
            other: Physical(
                ref=f"{other}-ref",
                attributes={"Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{other}", "Name": other},
            )
            for other in self.resources
        }
        for other, res in self.of_type("AWS::Lambda::Alias").items():
            # Ref of an alias is the function's ARN qualified by the alias name
            function = res["Properties"]["FunctionName"]["Ref"]
            arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function}:{res['Properties']['Name']}"
            physical[other] = Physical(ref=arn, attributes={"AliasArn": arn})
        resolved = Resolver(DEFAULT_STACK_NAME, physical).resolve(props["DefinitionString"])
        substitutions = Resolver(DEFAULT_STACK_NAME, physical).resolve(props.get("DefinitionSubstitutions", {}))
        for name, value in substitutions.items():
            resolved = resolved.replace("${" + name + "}", str(value))
        definition: dict[str, Any] = json.loads(resolved)
        return definition


def synthesize(
    outdir: Path,
    *,
    contracts_dir: Path = CONTRACTS_DIR,
    functions_dir: Path = FUNCTIONS_DIR,
    context: dict[str, Any] | None = None,
) -> Synthesized:
    app = build_app(outdir, contracts_dir=contracts_dir, context=context or SYNTH_CONTEXT, functions_dir=functions_dir)
    stack = app.node.find_child(DEFAULT_STACK_NAME)
    assert isinstance(stack, AgentPlaneStack)
    app.synth()
    template = json.loads((outdir / f"{DEFAULT_STACK_NAME}.template.json").read_text(encoding="utf-8"))
    return Synthesized(outdir=outdir, stack=stack, template=template)


def qualified_name(alias_lid: str, alias: str = "live") -> dict[str, Any]:
    """How CDK names a function by its alias where a name is asked for (event source mappings): ``name:alias``."""
    return {"Fn::Join": ["", [{"Fn::Select": [6, {"Fn::Split": [":", {"Ref": alias_lid}]}]}, f":{alias}"]]}


def lambda_function_lid(arn: str) -> str:
    """The function's logical id a stand-in Lambda ARN from :meth:`Synthesized.state_machine_definition` names
    (an alias's ARN names its function, qualified)."""
    prefix = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:"
    assert arn.startswith(prefix), f"not a Lambda function ARN of this stack: {arn}"
    return arn.removeprefix(prefix).split(":")[0]


def lambda_qualifier(arn: str) -> str | None:
    """The alias (or version) a stand-in Lambda ARN is qualified by; None for the unqualified function."""
    lambda_function_lid(arn)
    parts = arn.split(":")
    return parts[7] if len(parts) > 7 else None


def all_states(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """Every state of an ASL definition, including those inside Map iterators and Parallel branches."""
    found = []
    for state in definition.get("States", {}).values():
        found.append(state)
        for inner in [state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])]:
            if inner:
                found.extend(all_states(inner))
    return found


def llm_grants(synthesized: Synthesized, contract: CapabilityContract) -> list[dict[str, Any]]:
    """What an llm agent's role holds beyond any agent's: its model's ARNs, and its tools' dispatcher."""
    from infra.components.llm_agent import bedrock_statements

    stack = synthesized.stack
    statements = [stack.resolve(s.to_statement_json()) for s in bedrock_statements(stack, contract)]
    runtime = contract.runtime
    if isinstance(runtime, LlmRuntime) and runtime.tools:
        assert stack.registry.tool_dispatcher is not None
        dispatcher = stack.resolve(stack.registry.tool_dispatcher.function_arn)
        statements.append({"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": dispatcher})
    # each turn's content, put by its digest (none of these agents' tools acts externally: none reads it back)
    documents = stack.data.documents
    conversations = stack.resolve(documents.arn_for_objects("conversations/*"))
    statements.append({"Action": "s3:PutObject", "Effect": "Allow", "Resource": conversations})
    key = stack.resolve(stack.data.key.key_arn)
    statements.append({"Action": ["kms:GenerateDataKey", "kms:Encrypt"], "Effect": "Allow", "Resource": key})
    return statements
