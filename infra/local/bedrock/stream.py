"""ConverseStream: a Converse answer sent as Bedrock streams it, events in the AWS event stream encoding.

The answer is produced whole (local models are not incremental), then sent as the events a streaming model sends:
``messageStart``, per content block ``contentBlockStart`` (tool calls), ``contentBlockDelta`` (text in pieces of
a few words; a tool's input as pieces of its JSON), ``contentBlockStop``, then ``messageStop`` and ``metadata``
(usage, metrics). Errors found before the answer are HTTP errors, as Bedrock answers them before it streams.
"""

from __future__ import annotations

import binascii
import json
import re
import struct
from collections.abc import Iterator
from typing import Any

CONTENT_TYPE = "application/vnd.amazon.eventstream"
TEXT_PIECE = re.compile(r"\S+\s*|\s+")
WORDS_PER_DELTA = 4
JSON_PIECE = 40  # characters of a tool input per delta


def events(response: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The stream's events for a Converse answer, each as boto3 yields them: ``{event type: payload}``."""
    yield {"messageStart": {"role": "assistant"}}
    for index, block in enumerate(response["output"]["message"]["content"]):
        if "toolUse" in block:
            use = block["toolUse"]
            yield {
                "contentBlockStart": {
                    "contentBlockIndex": index,
                    "start": {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}},
                }
            }
            document = json.dumps(use["input"])
            for at in range(0, len(document), JSON_PIECE):
                yield {
                    "contentBlockDelta": {
                        "contentBlockIndex": index,
                        "delta": {"toolUse": {"input": document[at : at + JSON_PIECE]}},
                    }
                }
        elif "text" in block:
            words = TEXT_PIECE.findall(block["text"])
            for at in range(0, len(words), WORDS_PER_DELTA):
                text = "".join(words[at : at + WORDS_PER_DELTA])
                yield {"contentBlockDelta": {"contentBlockIndex": index, "delta": {"text": text}}}
        yield {"contentBlockStop": {"contentBlockIndex": index}}
    stop: dict[str, Any] = {"stopReason": response["stopReason"]}
    if "additionalModelResponseFields" in response:
        stop["additionalModelResponseFields"] = response["additionalModelResponseFields"]
    yield {"messageStop": stop}
    yield {"metadata": {"usage": response["usage"], "metrics": response["metrics"]}}


def _header(name: str, value: str) -> bytes:
    encoded_name, encoded_value = name.encode(), value.encode()
    return (
        struct.pack("!B", len(encoded_name)) + encoded_name + struct.pack("!BH", 7, len(encoded_value)) + encoded_value
    )


def encode(event: dict[str, Any]) -> bytes:
    """One event as an event-stream message: prelude, its CRC, headers, JSON payload, the message's CRC."""
    ((event_type, payload),) = event.items()
    headers = (
        _header(":event-type", event_type)
        + _header(":content-type", "application/json")
        + _header(":message-type", "event")
    )
    body = json.dumps(payload).encode()
    prelude = struct.pack("!II", 16 + len(headers) + len(body), len(headers))
    message = prelude + struct.pack("!I", binascii.crc32(prelude)) + headers + body
    return message + struct.pack("!I", binascii.crc32(message))
