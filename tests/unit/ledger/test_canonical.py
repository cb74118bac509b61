from __future__ import annotations

import json
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from functions.runtime.canonical import (
    CanonicalizationError,
    canonical_bytes,
    canonical_json,
    from_dynamodb_image,
    plain_json,
    sha256_hex,
)

pytestmark = pytest.mark.unit

JCS_VECTORS = (Path(__file__).resolve().parents[3] / ".." / "shared" / "testdata" / "rfc8785").resolve()


def vector_names() -> list[str]:
    return sorted(path.stem for path in (JCS_VECTORS / "input").glob("*.json")) or ["(no vectors)"]


@pytest.mark.parametrize("name", vector_names())
def test_rfc8785_vector_canonicalises_to_the_expected_bytes(name: str) -> None:
    if not JCS_VECTORS.is_dir():
        pytest.skip(f"shared testdata not beside the checkout: {JCS_VECTORS}")
    # GIVEN an RFC 8785 input vector and the bytes it must canonicalise to
    value = json.loads((JCS_VECTORS / "input" / f"{name}.json").read_bytes())
    expected = (JCS_VECTORS / "output" / f"{name}.json").read_bytes()

    # WHEN it is canonicalised
    actual = canonical_bytes(value)

    # THEN the bytes are exactly the expected ones
    assert actual == expected


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    # GIVEN keys whose UTF-16 order differs from their code point order (U+1F600 is D83D DE00 in UTF-16)
    value = {"b": 1, "a": 2, "\ufb01": 3, "\U0001f600": 4, "A": 5, "": 6}

    # WHEN canonicalised
    data = canonical_bytes(value)

    # THEN the surrogate pair sorts before U+FB01, and ASCII upper case before lower case
    assert data == '{"":6,"A":5,"a":2,"b":1,"\U0001f600":4,"\ufb01":3}'.encode()


def test_strings_escape_only_what_json_requires() -> None:
    # GIVEN control characters, quotes, backslashes, non-ASCII text and line/paragraph separators
    value = ["\u0000\u001f\b\t\n\f\r", '"\\/', "café ☕ 😂", "\u2028\u2029\u007f"]

    # WHEN canonicalised
    data = canonical_bytes(value)

    # THEN controls use the short escapes or lower-case \u00XX, and everything else is raw UTF-8
    assert data == '["\\u0000\\u001f\\b\\t\\n\\f\\r","\\"\\\\/","café ☕ 😂","\u2028\u2029\u007f"]'.encode()


@pytest.mark.parametrize("big", [2**53, 2**60 + 1, -(2**64) - 7, 10**38 - 1])
def test_integers_beyond_2_53_keep_every_digit(big: int) -> None:
    # GIVEN an integer beyond RFC 8785's double range, as an int and as a DynamoDB Decimal
    # WHEN canonicalised, also nested beside ordinary values
    as_int = canonical_bytes({"n": big})
    as_decimal = canonical_bytes({"n": Decimal(big)})
    nested = canonical_bytes({"z": [1.5, {"n": Decimal(big)}], "a": "x"})

    # THEN all the digits are written, never rounded through a double
    assert as_int == as_decimal == f'{{"n":{big}}}'.encode()
    assert nested == f'{{"a":"x","z":[1.5,{{"n":{big}}}]}}'.encode()


def test_neighbouring_big_integers_do_not_share_a_hash() -> None:
    # GIVEN two integers that round to the same double
    first, second = Decimal(2**60), Decimal(2**60 + 1)

    # WHEN each is canonicalised and hashed
    # THEN the hashes differ (rounding would have let one record pass for the other)
    assert sha256_hex(canonical_bytes(first)) != sha256_hex(canonical_bytes(second))


def test_largest_safe_integer_is_plain_rfc8785() -> None:
    # GIVEN the largest integers a double holds exactly
    # WHEN canonicalised
    # THEN they are written as RFC 8785 writes them
    assert canonical_bytes([2**53 - 1, -(2**53 - 1)]) == b"[9007199254740991,-9007199254740991]"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (Decimal("1.50"), b"1.5"),
        (Decimal("1.5"), b"1.5"),
        (Decimal("1E+2"), b"100"),
        (Decimal("100.000"), b"100"),
        (Decimal("-0"), b"0"),
        (Decimal("0.1"), b"0.1"),
        (Decimal("1E-7"), b"1e-7"),
        (Decimal("123456.789"), b"123456.789"),
        (1.0, b"1"),
        (1e21, b"1e+21"),
    ],
)
def test_numbers_take_their_shortest_exact_form(number: Any, expected: bytes) -> None:
    # GIVEN a number as DynamoDB (Decimal) or Python (float) holds it
    # WHEN canonicalised
    # THEN its text is RFC 8785's: equal numbers give equal bytes however they were written
    assert canonical_bytes(number) == expected


def test_decimal_1_50_and_1_5_are_canonically_equal() -> None:
    # GIVEN one price written two ways
    # WHEN canonicalised
    # THEN the bytes are the same
    assert canonical_bytes({"price": Decimal("1.50")}) == canonical_bytes({"price": Decimal("1.5")})


def test_decimal_without_an_exact_double_is_refused_by_name() -> None:
    # GIVEN a DynamoDB number with more precision than a double carries
    value = {"order": {"amount": Decimal("0.1000000000000000000000001")}}

    # WHEN canonicalised
    # THEN it is refused, naming the value and where it is, instead of being rounded
    with pytest.raises(CanonicalizationError, match=r"/order/amount: Decimal\('0\.1000000000000000000000001'\)"):
        canonical_bytes(value)


class Colour(str, Enum):  # noqa: UP042 -- str() of this kind of enum is "Colour.RED", not its value
    RED = "red"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ((1, 2), "tuple"),
        ({1, 2}, "set"),
        ({"a": frozenset()}, "/a: frozenset"),
        ({1: "x"}, "key 1 is not a string"),
        (float("nan"), "not a JSON number"),
        (float("inf"), "not a JSON number"),
        (Decimal("NaN"), "not a JSON number"),
        (Decimal("Infinity"), "not a JSON number"),
        ([b"bytes"], "/0: bytes"),
        ("\ud800", "UTF-8"),
    ],
)
def test_values_json_cannot_carry_are_refused(value: Any, message: str) -> None:
    # GIVEN a value with no exact JSON form
    # WHEN canonicalised
    # THEN it is refused, saying what and where
    with pytest.raises(CanonicalizationError, match=message):
        canonical_bytes(value)


def test_str_enums_are_written_as_their_text() -> None:
    # GIVEN a str enum (whose str() is "Colour.RED")
    # WHEN canonicalised
    # THEN its value is written, the same as the plain string
    assert canonical_bytes({"c": Colour.RED}) == b'{"c":"red"}'
    assert type(plain_json(Colour.RED)) is str


def test_plain_json_normalises_decimals_and_keeps_structure() -> None:
    # GIVEN a record as boto3 returns it
    record = {"n": Decimal("3"), "f": Decimal("2.25"), "l": [Decimal("1E+1"), True, None], "m": {"s": "x"}}

    # WHEN normalised
    plain = plain_json(record)

    # THEN numbers are ints and floats, bools stay bools, the rest is unchanged
    assert plain == {"n": 3, "f": 2.25, "l": [10, True, None], "m": {"s": "x"}}
    assert [type(v) for v in plain["l"]] == [int, bool, type(None)]


def test_sha256_hex_is_lower_case_hex() -> None:
    # GIVEN the FIPS 180-2 test message "abc"
    # WHEN hashed
    # THEN the digest is the published one, in lower-case hex
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_dynamodb_image_becomes_plain_json() -> None:
    # GIVEN a stream record's NewImage with every attribute type
    image = {
        "s": {"S": "café"},
        "n_int": {"N": "42"},
        "n_dec": {"N": "12.50"},
        "n_big": {"N": "123456789012345678901234567890"},
        "yes": {"BOOL": True},
        "nothing": {"NULL": True},
        "m": {"M": {"inner": {"L": [{"N": "1"}, {"S": "two"}, {"M": {}}]}}},
        "ss": {"SS": ["b", "a", "c"]},
        "ns": {"NS": ["10", "9.5", "-1"]},
        "bs": {"BS": ["Yg==", "YQ=="]},
        "b": {"B": "AAE="},
        "raw_b": {"B": b"\x00\x01"},
    }

    # WHEN converted
    plain = from_dynamodb_image(image)

    # THEN it is plain JSON: numbers normalised, sets sorted into lists, binary as base64 text
    assert plain == {
        "s": "café",
        "n_int": 42,
        "n_dec": 12.5,
        "n_big": 123456789012345678901234567890,
        "yes": True,
        "nothing": None,
        "m": {"inner": [1, "two", {}]},
        "ss": ["a", "b", "c"],
        "ns": [-1, 9.5, 10],
        "bs": ["YQ==", "Yg=="],
        "b": "AAE=",
        "raw_b": "AAE=",
    }
    assert canonical_bytes(plain).startswith(b'{"b":"AAE=","bs":["YQ==","Yg=="],"m":{"inner":[1,"two",{}]}')


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ({"x": {"N": "0.1000000000000000000000001"}}, r"/x: Decimal"),
        ({"x": {"N": "twelve"}}, "not a DynamoDB number"),
        ({"x": {"M": {"y": {"Q": "?"}}}}, "/x/y: unknown DynamoDB type 'Q'"),
        ({"x": {"S": "a", "N": "1"}}, "not a DynamoDB attribute value"),
        ({"x": "bare"}, "not a DynamoDB attribute value"),
    ],
)
def test_dynamodb_image_that_json_cannot_carry_is_refused(image: dict[str, Any], message: str) -> None:
    # GIVEN a stream image with a value JSON cannot carry, or that is not DynamoDB's shape
    # WHEN converted
    # THEN it is refused, naming the attribute
    with pytest.raises(CanonicalizationError, match=message):
        from_dynamodb_image(image)


def test_canonical_json_is_the_canonical_bytes_as_text() -> None:
    # GIVEN a decision's payload with unsorted keys, an integral float and non-ASCII text
    payload = {"score": 1.0, "claim": "Zürich", "ids": [2, 1]}

    # WHEN written as a decision record writes it
    text = canonical_json(payload)

    # THEN it is the RFC 8785 form, so its digest is the digest of the canonical bytes
    assert text == '{"claim":"Zürich","ids":[2,1],"score":1}'
    assert sha256_hex(text.encode()) == sha256_hex(canonical_bytes(payload))
