"""The ledger's AWS adapters: KMS for signing digests, S3 (Object Lock) for keeping them."""

from __future__ import annotations

from functools import cached_property

from cryptography.hazmat.primitives import serialization

from functions.runtime.aws import client
from functions.runtime.ledger import SignedDigest
from functions.runtime.ledger_store import DigestExistsError

KMS_RAW_MESSAGE_LIMIT = 4096  # bytes KMS Sign accepts as a RAW message


class KmsSigner:
    """ECDSA P-256 with SHA-256 on an asymmetric KMS key; the private key never leaves KMS."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id

    def sign(self, message: bytes) -> bytes:
        if len(message) > KMS_RAW_MESSAGE_LIMIT:
            raise ValueError(f"digest body is {len(message)} bytes; KMS signs at most {KMS_RAW_MESSAGE_LIMIT} raw")
        signature: bytes = client("kms").sign(
            KeyId=self.key_id, Message=message, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
        )["Signature"]
        return signature

    @cached_property
    def _public_pem(self) -> str:
        der = client("kms").get_public_key(KeyId=self.key_id)["PublicKey"]
        key = serialization.load_der_public_key(der)
        return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def public_key_pem(self) -> str:
        return self._public_pem


def digest_key(seq: int) -> str:
    return f"digests/{seq:012d}.json"


class S3DigestArchive:
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def put(self, digest: SignedDigest) -> None:
        # IfNoneMatch: a digest is written once; Object Lock keeps it from being deleted or overwritten.
        s3 = client("s3")
        try:
            s3.put_object(
                Bucket=self.bucket,
                Key=digest_key(digest.body.seq),
                Body=digest.model_dump_json().encode(),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except s3.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise DigestExistsError(f"digest {digest.body.seq} exists") from None
            raise

    def get(self, seq: int) -> SignedDigest:
        body = client("s3").get_object(Bucket=self.bucket, Key=digest_key(seq))["Body"].read()
        return SignedDigest.model_validate_json(body)

    def all(self) -> list[SignedDigest]:
        keys: list[str] = []
        paginator = client("s3").get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix="digests/"):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return [self.get(int(key.removeprefix("digests/").removesuffix(".json"))) for key in sorted(keys)]
