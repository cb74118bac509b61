"""The names the split layout relies on: logical ids kept when a construct wraps the plane, export names for nag."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.components.nag import ref, unique_id

pytestmark = pytest.mark.infra


@pytest.mark.parametrize("path", [["Queue"], ["Data", "Decisions"], ["Api", "RestApi", "Default", "v1", "Resource"]])
def test_unique_id_is_cdks_logical_id(path: list[str]) -> None:
    stack = cdk.Stack(cdk.App(), "Ids")
    scope: Construct = stack
    for part in path[:-1]:
        scope = Construct(scope, part)
    bucket = s3.CfnBucket(scope, path[-1])
    assert stack.resolve(bucket.logical_id) == unique_id(path)


def test_ref_names_the_export_a_project_stack_imports() -> None:
    app = cdk.App()
    plane = cdk.Stack(app, "plane")
    bucket = s3.Bucket(plane, "Documents")
    project = cdk.Stack(app, "plane-team")
    role = iam.Role(project, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects("docs/*")]))

    assembly = app.synth()

    imported = json.dumps(assembly.get_stack_by_name("plane-team").template)
    assert f'"Fn::ImportValue": "{ref(role, bucket)}"' in imported
    assert ref(bucket, bucket) == f"<{plane.resolve(bucket.node.default_child.logical_id)}.Arn>"  # type: ignore[union-attr]
