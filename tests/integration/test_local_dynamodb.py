"""The local plane's lean transaction snapshots roll back exactly what moto's full copies would."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from infra.local.dynamodb import LeanTransactions, PartitionQueries

pytestmark = pytest.mark.integration


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    for key, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    }.items():
        monkeypatch.setenv(key, value)
    lean = LeanTransactions()
    with mock_aws():
        lean.install()
        try:
            dynamodb = boto3.client("dynamodb")
            dynamodb.create_table(
                TableName="t",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "N"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
            dynamodb.put_item(TableName="t", Item={"pk": {"S": "head"}, "sk": {"N": "0"}, "n": {"N": "1"}})
            dynamodb.put_item(TableName="t", Item={"pk": {"S": "entry"}, "sk": {"N": "1"}, "v": {"S": "first"}})
            yield dynamodb
        finally:
            lean.uninstall()


def test_a_failed_transaction_leaves_every_item_as_it_was(client: object) -> None:
    dynamodb = client
    # WHEN a transaction updates one item in place, inserts another, then fails its last condition
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):  # type: ignore[attr-defined]
        dynamodb.transact_write_items(  # type: ignore[attr-defined]
            TransactItems=[
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "marker"}, "sk": {"N": "0"}}}},
                {
                    "Update": {
                        "TableName": "t",
                        "Key": {"pk": {"S": "head"}, "sk": {"N": "0"}},
                        "UpdateExpression": "SET n = :n",
                        "ExpressionAttributeValues": {":n": {"N": "2"}},
                    }
                },
                {
                    "Put": {
                        "TableName": "t",
                        "Item": {"pk": {"S": "entry"}, "sk": {"N": "1"}, "v": {"S": "second"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )

    # THEN nothing changed: no marker, the head untouched, the entry as first written
    items = dynamodb.scan(TableName="t")["Items"]  # type: ignore[attr-defined]
    assert sorted((i["pk"]["S"], i.get("n", i.get("v"))) for i in items) == [
        ("entry", {"S": "first"}),
        ("head", {"N": "1"}),
    ]


def test_a_successful_transaction_applies_every_change(client: object) -> None:
    dynamodb = client
    dynamodb.transact_write_items(  # type: ignore[attr-defined]
        TransactItems=[
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "marker"}, "sk": {"N": "0"}}}},
            {
                "Update": {
                    "TableName": "t",
                    "Key": {"pk": {"S": "head"}, "sk": {"N": "0"}},
                    "UpdateExpression": "SET n = :n",
                    "ExpressionAttributeValues": {":n": {"N": "2"}},
                }
            },
        ]
    )
    head = dynamodb.get_item(TableName="t", Key={"pk": {"S": "head"}, "sk": {"N": "0"}})["Item"]  # type: ignore[attr-defined]
    assert head["n"] == {"N": "2"}
    assert len(dynamodb.scan(TableName="t")["Items"]) == 3  # type: ignore[attr-defined]


def test_partition_queries_answer_as_moto_does_across_pages_orders_and_indexes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    }.items():
        monkeypatch.setenv(key, value)
    queries: list[dict[str, object]] = [
        {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "run-3"}}},
        {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "none"}}},
        {
            "KeyConditionExpression": "pk = :p AND sk > :s",
            "ExpressionAttributeValues": {":p": {"S": "run-2"}, ":s": {"N": "4"}},
            "ScanIndexForward": False,
        },
        {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "run-1"}}, "Limit": 3},
        {
            "IndexName": "by-kind",
            "KeyConditionExpression": "kind = :k",
            "ExpressionAttributeValues": {":k": {"S": "odd"}},
        },
    ]

    def answers(patched: bool) -> list[list[dict[str, object]]]:
        partitions = PartitionQueries()
        with mock_aws():
            if patched:
                partitions.install()
            try:
                dynamodb = boto3.client("dynamodb")
                dynamodb.create_table(
                    TableName="t",
                    KeySchema=[
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    AttributeDefinitions=[
                        {"AttributeName": "pk", "AttributeType": "S"},
                        {"AttributeName": "sk", "AttributeType": "N"},
                        {"AttributeName": "kind", "AttributeType": "S"},
                    ],
                    GlobalSecondaryIndexes=[
                        {
                            "IndexName": "by-kind",
                            "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                            "Projection": {"ProjectionType": "ALL"},
                        }
                    ],
                    BillingMode="PAY_PER_REQUEST",
                )
                for run in range(1, 5):
                    for step in range(10):
                        item = {"pk": {"S": f"run-{run}"}, "sk": {"N": str(step)}}
                        dynamodb.put_item(TableName="t", Item={**item, "kind": {"S": "odd" if step % 2 else "even"}})
                found = []
                for query in queries:
                    pages = []
                    page = dynamodb.query(TableName="t", **query)
                    pages.append(page["Items"])
                    while "LastEvaluatedKey" in page and "Limit" in query:
                        page = dynamodb.query(TableName="t", ExclusiveStartKey=page["LastEvaluatedKey"], **query)
                        pages.append(page["Items"])
                    found.append([{"pages": len(pages)}, *[item for items in pages for item in items]])
                return found
            finally:
                partitions.uninstall()

    # GIVEN a table of several partitions with a GSI; WHEN the same queries run with and without partition views
    # THEN every answer (items, order, pagination) is what moto gives, and the queries did find items
    patched, plain = answers(True), answers(False)
    assert patched == plain
    assert [len(found) - 1 for found in patched] == [10, 0, 5, 10, 20]


def test_a_failed_transaction_rolls_back_in_place_without_copying_the_table(client: object) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    dynamodb = client
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    dynamodb.create_table(  # type: ignore[attr-defined]
        TableName="h",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="h", Item={"pk": {"S": "kept"}, "v": {"S": "1"}})  # type: ignore[attr-defined]
    tables = {name: backend.tables[name] for name in ("t", "h")}

    # WHEN one transaction adds a partition to each table, changes an item of each, then fails a condition
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):  # type: ignore[attr-defined]
        dynamodb.transact_write_items(  # type: ignore[attr-defined]
            TransactItems=[
                {"Put": {"TableName": "h", "Item": {"pk": {"S": "new"}}}},
                {"Put": {"TableName": "h", "Item": {"pk": {"S": "kept"}, "v": {"S": "2"}}}},
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "new"}, "sk": {"N": "5"}}}},
                {
                    "Update": {
                        "TableName": "t",
                        "Key": {"pk": {"S": "head"}, "sk": {"N": "0"}},
                        "UpdateExpression": "SET n = :n",
                        "ExpressionAttributeValues": {":n": {"N": "9"}},
                        "ConditionExpression": "n = :n",
                    }
                },
            ]
        )

    # THEN the same table objects hold exactly what they held: no new partition, the changed items restored
    assert {name: backend.tables[name] for name in ("t", "h")} == tables
    assert all(backend.tables[name] is table for name, table in tables.items())
    assert [i["pk"]["S"] for i in dynamodb.scan(TableName="h")["Items"]] == ["kept"]  # type: ignore[attr-defined]
    kept = dynamodb.get_item(TableName="h", Key={"pk": {"S": "kept"}})["Item"]  # type: ignore[attr-defined]
    assert kept["v"] == {"S": "1"}
    assert sorted(i["pk"]["S"] for i in dynamodb.scan(TableName="t")["Items"]) == ["entry", "head"]  # type: ignore[attr-defined]
    assert "new" not in {key.value for key in backend.tables["t"].items}
