"""The interpreter's caches: a definition is parsed once however many executions run it, with the same answers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.local import interpreter

pytestmark = pytest.mark.integration
GUARD_S = 30.0  # a bound so a stuck execution fails the test instead of hanging it; never a timing assertion
DEFINITION = {
    "StartAt": "Pick",
    "States": {
        "Pick": {"Type": "Pass", "InputPath": "$.order", "ResultPath": "$.picked", "Next": "Lines"},
        "Lines": {
            "Type": "Map",
            "ItemsPath": "$.picked.lines",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Line",
                "States": {"Line": {"Type": "Pass", "Parameters": {"sku.$": "$.sku"}, "End": True}},
            },
            "ResultPath": "$.skus",
            "Next": "Done",
        },
        "Done": {"Type": "Pass", "OutputPath": "$.skus", "End": True},
    },
}


@pytest.fixture
def sfn() -> Iterator[Any]:
    caches = interpreter.InterpreterCaches()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        caches.install()
        try:
            yield boto3.client("stepfunctions", region_name="us-east-1")
        finally:
            caches.uninstall()


def run(sfn: Any, machine: str, name: str, document: dict[str, Any]) -> Any:
    arn = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(document))["executionArn"]
    deadline = time.monotonic() + GUARD_S
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not finish"
        time.sleep(0.01)
    assert described["status"] == "SUCCEEDED", described
    return json.loads(described["output"])


def test_executions_of_one_definition_share_one_parse_and_keep_their_own_data(sfn: Any) -> None:
    # GIVEN a state machine with paths, a Map and parameters
    machine = sfn.create_state_machine(
        name="orders", definition=json.dumps(DEFINITION), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    before = interpreter._program.cache_info()

    # WHEN three executions run it, each on different data
    outputs = [
        run(sfn, machine, f"order-{n}", {"order": {"lines": [{"sku": f"{n}-{i}"} for i in range(n)]}})
        for n in (1, 2, 3)
    ]

    # THEN each got the answer for its own input
    assert outputs == [[{"sku": f"{n}-{i}"} for i in range(n)] for n in (1, 2, 3)]
    # AND the definition was parsed once, the later executions reusing the program
    after = interpreter._program.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 2)


def test_uninstall_gives_moto_back_its_own_parsers() -> None:
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    original = ExecutionWorker._get_evaluation_entrypoint
    caches = interpreter.InterpreterCaches()
    caches.install()
    assert ExecutionWorker._get_evaluation_entrypoint is not original
    caches.uninstall()
    assert ExecutionWorker._get_evaluation_entrypoint is original


def test_a_timeout_inside_a_map_iteration_reaches_the_maps_catch_with_its_name(sfn: Any) -> None:
    # GIVEN a Map whose iteration waits on a task token that never comes (1 s), and a Catch for States.Timeout
    queue = boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="asks")["QueueUrl"]
    ask = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "TimeoutSeconds": 1,
        "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}},
        "End": True,
    }
    definition = {
        "StartAt": "Lines",
        "States": {
            "Lines": {
                "Type": "Map",
                "ItemsPath": "$.lines",
                "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Ask", "States": {"Ask": ask}},
                "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.failure", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    machine = sfn.create_state_machine(
        name="asks", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/asks"
    )["stateMachineArn"]

    # WHEN the iteration times out THEN the Map fails with States.Timeout, as Step Functions reports it, and its
    # Catch takes it (moto alone re-raised the name as a custom one, refused it and failed the run States.Runtime)
    output = run(sfn, machine, "one", {"lines": [1]})
    assert output["failure"]["Error"] == "States.Timeout"
