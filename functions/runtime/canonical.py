"""Canonical JSON (RFC 8785, JCS) and SHA-256 for everything the plane hashes, and DynamoDB stream images turned
into plain JSON values.

Decision records, idempotency digests, approval subjects and ledger entries are canonicalised here, once, when
written; verifiers hash the stored bytes. The bytes must therefore be a function of the value alone, and two
different values must never share them: numbers are normalised first, and a number that JSON cannot carry exactly
is refused rather than rounded.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import rfc8785


class CanonicalizationError(ValueError):
    """A value has no exact, canonical JSON form (RFC 8785), so it cannot be hashed."""


# RFC 8785 numbers are IEEE 754 doubles: integers beyond this magnitude have no exact double.
MAX_SAFE_INTEGER = 2**53 - 1
# Python refuses to print integers with more digits than this (sys.int_info.default_max_str_digits).
_MAX_DIGITS = 4300


class _Unrepresentable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


class _Normaliser:
    """One pass over a value; remembers whether an integer outside the double range was seen."""

    def __init__(self) -> None:
        self.big_integers = False

    def value(self, value: Any) -> Any:
        if value is None or value is True or value is False:
            return value
        if isinstance(value, str):
            return str.__str__(value)  # a str subclass (an enum) as its plain text
        if isinstance(value, int):
            return self._integer(int(value))
        if isinstance(value, float):
            return self._float(value)
        if isinstance(value, Decimal):
            return self._decimal(value)
        if isinstance(value, Mapping):
            return self._object(value)
        if isinstance(value, list):
            return self._array(value)
        if isinstance(value, tuple | set | frozenset):
            raise _Unrepresentable(f"{type(value).__name__} {value!r} is not JSON: use a list")
        raise _Unrepresentable(f"{type(value).__name__} {value!r} is not JSON")

    def _integer(self, number: int) -> int:
        if not -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
            self.big_integers = True
        return number

    def _float(self, number: float) -> float | int:
        if not math.isfinite(number):
            raise _Unrepresentable(f"{number!r} is not a JSON number")
        if number.is_integer() and -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
            return int(number)  # JCS writes 1.0 as 1; keeping an int makes the parsed text equal the value
        return number

    def _decimal(self, number: Decimal) -> float | int:
        if not number.is_finite():
            raise _Unrepresentable(f"Decimal({str(number)!r}) is not a JSON number")
        if number == number.to_integral_value():
            if number.adjusted() >= _MAX_DIGITS:
                raise _Unrepresentable(f"Decimal({str(number)!r}) has too many digits")
            return self._integer(int(number))
        as_float = float(number)
        if Decimal(repr(as_float)) != number:
            raise _Unrepresentable(
                f"Decimal({str(number)!r}) has no exact IEEE 754 double (nearest {as_float!r}): store it as a string"
            )
        return self._float(as_float)

    def _object(self, value: Mapping[Any, Any]) -> dict[str, Any]:
        plain: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Unrepresentable(f"object key {key!r} is not a string")
            try:
                plain[str.__str__(key)] = self.value(item)
            except _Unrepresentable as problem:
                problem.path.insert(0, key)
                raise
        return plain

    def _array(self, value: list[Any]) -> list[Any]:
        plain: list[Any] = []
        for index, item in enumerate(value):
            try:
                plain.append(self.value(item))
            except _Unrepresentable as problem:
                problem.path.insert(0, str(index))
                raise
        return plain


def _error(problem: _Unrepresentable) -> CanonicalizationError:
    where = "/" + "/".join(problem.path) if problem.path else "value"
    return CanonicalizationError(f"{where}: {problem.reason}")


def plain_json(value: Any) -> Any:
    """``value`` as plain JSON values: Decimals (DynamoDB numbers) become int or float, exactly or not at all.

    Integral Decimals become ints of any size; other Decimals become floats only when the float's shortest
    text is the same number (``Decimal("1.50")`` gives 1.5; ``Decimal("0.1000000000000000000001")`` is
    refused). Integral floats within ±(2**53 - 1) become ints. Tuples, sets, non-string keys, NaN and
    infinities raise :class:`CanonicalizationError`.
    """
    try:
        return _Normaliser().value(value)
    except _Unrepresentable as problem:
        raise _error(problem) from None


def canonical_bytes(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``value`` (normalised as :func:`plain_json` does).

    RFC 8785 stops at ±(2**53 - 1); beyond it (DynamoDB holds 38 digits) an integer is written with all its
    digits, as a big-integer JCS would. Rounding it instead would give two different records one hash.
    """
    normaliser = _Normaliser()
    try:
        plain = normaliser.value(value)
    except _Unrepresentable as problem:
        raise _error(problem) from None
    try:
        if not normaliser.big_integers:
            return rfc8785.dumps(plain)
        out: list[bytes] = []
        _dump_with_big_integers(plain, out)
        return b"".join(out)
    except rfc8785.CanonicalizationError as problem:
        raise CanonicalizationError(str(problem)) from None


def _dump_with_big_integers(value: Any, out: list[bytes]) -> None:
    # The structure is walked here; every scalar except a big integer is still written by rfc8785.
    if isinstance(value, dict):
        out.append(b"{")
        for position, (key, item) in enumerate(sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))):
            if position:
                out.append(b",")
            out.append(rfc8785.dumps(key))
            out.append(b":")
            _dump_with_big_integers(item, out)
        out.append(b"}")
    elif isinstance(value, list):
        out.append(b"[")
        for position, item in enumerate(value):
            if position:
                out.append(b",")
            _dump_with_big_integers(item, out)
        out.append(b"]")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        out.append(str(value).encode("ascii"))
    else:
        out.append(rfc8785.dumps(value))


def canonical_json(value: Any) -> str:
    """:func:`canonical_bytes` as text: what a decision record stores and hashes."""
    return canonical_bytes(value).decode("utf-8")


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def from_dynamodb_image(image: Mapping[str, Any]) -> dict[str, Any]:
    """A stream record's ``NewImage`` (typed attribute values) as plain JSON values.

    ``N`` goes through :class:`~decimal.Decimal` and :func:`plain_json`'s rules; sets (``SS``, ``NS``, ``BS``)
    become sorted lists (a set has no order, a list must have one); binary stays base64 text as the stream
    delivers it (``bytes`` are base64-encoded).
    """
    try:
        return {str(name): _attribute(attribute, [str(name)]) for name, attribute in image.items()}
    except _Unrepresentable as problem:
        raise _error(problem) from None


def _decimal(text: Any, path: list[str]) -> Decimal:
    try:
        return Decimal(str(text))
    except ArithmeticError:
        raise _located(f"{text!r} is not a DynamoDB number", path) from None


def _number(number: Decimal, path: list[str]) -> Any:
    try:
        return _Normaliser().value(number)
    except _Unrepresentable as problem:
        problem.path = list(path)
        raise


def _binary(value: Any) -> str:
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes | bytearray) else str(value)


def _located(reason: str, path: list[str]) -> _Unrepresentable:
    problem = _Unrepresentable(reason)
    problem.path = list(path)
    return problem


def _attribute(attribute: Any, path: list[str]) -> Any:
    if not isinstance(attribute, Mapping) or len(attribute) != 1:
        raise _located(f"{attribute!r} is not a DynamoDB attribute value", path)
    ((tag, value),) = attribute.items()
    if tag == "S":
        return str(value)
    if tag == "N":
        return _number(_decimal(value, path), path)
    if tag == "BOOL":
        return bool(value)
    if tag == "NULL":
        return None
    if tag == "B":
        return _binary(value)
    if tag == "M":
        return {str(key): _attribute(item, [*path, str(key)]) for key, item in value.items()}
    if tag == "L":
        return [_attribute(item, [*path, str(index)]) for index, item in enumerate(value)]
    if tag == "SS":
        return sorted(str(item) for item in value)
    if tag == "NS":
        return [_number(number, path) for number in sorted(_decimal(item, path) for item in value)]
    if tag == "BS":
        return sorted(_binary(item) for item in value)
    raise _located(f"unknown DynamoDB type {tag!r}", path)
