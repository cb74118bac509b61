"""Local function instances run as Lambda runs them: only the deployed packages, the timeout, the memory size."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from infra.local.faults import FaultPlan
from infra.local.lambdas import FunctionSpec, LocalLambdas, RuntimeSettings
from infra.paths import LOCAL_LAMBDA_DEPS_DIR, LOCAL_LAMBDA_RUNTIME_DIR

pytestmark = pytest.mark.integration

HANDLERS = {
    # Dev-only: in the development virtualenv, not in the `lambda` group the layer is built from.
    "dev_only": "import hypothesis\n\ndef lambda_handler(event, context):\n    return 'unreachable'\n",
    "deployed": dedent(
        """
        import boto3  # the Lambda runtime's own
        import pydantic  # the dependencies layer's

        def lambda_handler(event, context):
            return {"pydantic": pydantic.VERSION, "boto3": boto3.__version__, "echo": event,
                    "remaining_ms": context.get_remaining_time_in_millis()}
        """
    ),
    "lazy_dev_only": "def lambda_handler(event, context):\n    import moto\n    return 'unreachable'\n",
    "slow": dedent(
        """
        import time
        calls = []

        def lambda_handler(event, context):
            calls.append(event)
            if event.get("sleep_s"):
                time.sleep(event["sleep_s"])
            return {"calls": len(calls)}
        """
    ),
    "snapstart": dedent(
        """
        import os
        from snapshot_restore_py import register_after_restore, register_before_snapshot  # the runtime's own

        phases = ["init"]
        register_before_snapshot(lambda: phases.append("before snapshot"))

        @register_after_restore
        def restored():
            if os.environ.get("FAIL_RESTORE"):
                raise RuntimeError("the connection pool did not come back")
            phases.append("after restore")

        def lambda_handler(event, context):
            return {"phases": phases, "initialization": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]}
        """
    ),
    "hungry": dedent(
        """
        def lambda_handler(event, context):
            hoard = bytearray(event["mb"] * 1024 * 1024)
            hoard[::4096] = b"x" * len(hoard[::4096])  # touch every page: resident, not just reserved
            return len(hoard)
        """
    ),
}


@pytest.fixture
def lambdas(tmp_path: Path) -> Iterator[LocalLambdas]:
    asset = tmp_path / "asset"
    (asset / "fns").mkdir(parents=True)
    for name, source in HANDLERS.items():
        (asset / "fns" / f"{name}.py").write_text(source)
    local = LocalLambdas(tmp_path / "logs", FaultPlan(), RuntimeSettings(runtime_dirs=[LOCAL_LAMBDA_RUNTIME_DIR]))
    for name in HANDLERS:
        local.register(
            FunctionSpec(
                logical_id=name,
                name=name,
                handler=f"fns.{name}.lambda_handler",
                code_dir=asset,
                layer_dirs=[LOCAL_LAMBDA_DEPS_DIR / "python"],
                environment={},
                timeout_s=2,
                memory_mb=128,
                snapstart=name == "snapstart",
            )
        )
    yield local
    local.uninstall()


def invoke(lambdas: LocalLambdas, name: str, event: Any = None) -> tuple[Any, bool]:
    payload, failed, _ = lambdas.invoke(name, event or {})
    return json.loads(payload), failed


def test_a_dev_only_import_fails_as_it_would_on_lambda(lambdas: LocalLambdas) -> None:
    # GIVEN a handler importing a package the development virtualenv has and the deployed layer does not
    # WHEN it is invoked
    error, failed = invoke(lambdas, "dev_only")

    # THEN it fails at import, as Lambda reports it, naming the function, the module and the fix
    assert failed
    assert error["errorType"] == "Runtime.ImportModuleError"
    message = error["errorMessage"]
    assert "Unable to import module 'fns.dev_only': No module named 'hypothesis'" in message
    assert "function dev_only" in message
    assert "`lambda` dependency group" in message


def test_an_import_inside_the_handler_fails_the_same_way(lambdas: LocalLambdas) -> None:
    error, failed = invoke(lambdas, "lazy_dev_only")

    assert failed
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'moto'" in error["errorMessage"]


def test_the_layer_and_the_runtime_libraries_are_importable(lambdas: LocalLambdas) -> None:
    answer, failed = invoke(lambdas, "deployed", {"n": 1})

    assert not failed
    assert answer["echo"] == {"n": 1}
    assert answer["pydantic"].startswith("2.")
    assert 0 < answer["remaining_ms"] <= 2000


def test_an_invocation_past_its_timeout_ends_as_lambda_ends_it(lambdas: LocalLambdas) -> None:
    # GIVEN a warm instance
    first, _ = invoke(lambdas, "slow")
    assert first == {"calls": 1}

    # WHEN an invocation runs past the function's 2 s timeout
    error, failed = invoke(lambdas, "slow", {"sleep_s": 30})

    # THEN it is Lambda's timeout, and the instance it ran on is gone: the next call starts a fresh one
    assert failed
    assert error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in error["errorMessage"]
    after, failed_after = invoke(lambdas, "slow")
    assert not failed_after
    assert after == {"calls": 1}
    assert lambdas.cold_starts("slow") == 2


def test_warm_instances_keep_their_module_state(lambdas: LocalLambdas) -> None:
    invoke(lambdas, "slow")
    second, _ = invoke(lambdas, "slow")

    assert second == {"calls": 2}
    assert lambdas.cold_starts("slow") == 1


def test_an_instance_past_its_memory_size_is_stopped(lambdas: LocalLambdas) -> None:
    within, failed_within = invoke(lambdas, "hungry", {"mb": 8})
    assert not failed_within
    assert within == 8 * 1024 * 1024

    error, failed = invoke(lambdas, "hungry", {"mb": 256})

    assert failed
    assert error["errorType"] == "Runtime.OutOfMemory"
    assert "128 MB" in error["errorMessage"]


def test_a_snapstart_version_runs_its_runtime_hooks_before_serving(lambdas: LocalLambdas) -> None:
    # GIVEN a function with SnapStart on published versions, whose code registers both runtime hooks
    # WHEN a published version is invoked
    payload, failed, _ = lambdas.invoke("snapstart", {}, version="1")

    # THEN its instance ran init, the before-snapshot hooks, then the after-restore hooks, as Lambda does around a
    # snapshot, before serving
    assert not failed
    assert json.loads(payload) == {
        "phases": ["init", "before snapshot", "after restore"],
        "initialization": "snap-start",
    }
    # AND $LATEST, which is never snapshotted, initializes on demand
    latest, _ = invoke(lambdas, "snapstart")
    assert latest == {"phases": ["init"], "initialization": "on-demand"}


def test_a_failing_after_restore_hook_fails_the_instance_start(lambdas: LocalLambdas) -> None:
    spec = lambdas.functions["snapstart"]
    spec.environment["FAIL_RESTORE"] = "1"

    payload, failed, _ = lambdas.invoke("snapstart", {}, version="1")

    error = json.loads(payload)
    assert failed
    assert error["errorType"] == "SnapStartException"
    assert "after restore failed: RuntimeError: the connection pool did not come back" in error["errorMessage"]
