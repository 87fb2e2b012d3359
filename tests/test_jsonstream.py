"""The incremental b64_json extractor: same answer as json.loads, any chunking."""

from __future__ import annotations

import base64
import json

import pytest

from imagegen_cli.transport import jsonstream


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_every_chunk_size_gives_the_same_document() -> None:
    imgs = [bytes(range(256)) * 3, b"\xff\xd8" + b"x" * 101]
    doc = {"created": 1, "data": [
        {"b64_json": base64.b64encode(imgs[0]).decode(), "revised_prompt": "r"},
        {"revised_prompt": None, "b64_json": base64.b64encode(imgs[1]).decode()},
        {"b64_json": None, "url": "https://x/y.png"},
    ], "usage": {"total_tokens": 5}}
    # Some servers escape '/' in JSON strings.
    body = json.dumps(doc).replace("/", "\\/").encode()
    for size in range(1, 40):
        out = jsonstream.load(chunked(body, size))
        assert out["data"][0]["b64_json"].read() == imgs[0]
        assert out["data"][1]["b64_json"].read() == imgs[1]
        assert out["data"][2] == {"b64_json": None, "url": "https://x/y.png"}
        assert out["usage"] == {"total_tokens": 5}
        assert out["data"][0]["revised_prompt"] == "r"


@pytest.mark.parametrize("body", [
    b'{"data": [{"b64_json": "abcd',
    b'{"data": [}',
    b'{"data": [{"b64_json": "ab\\qcd"}]}',
])
def test_malformed_raises_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        jsonstream.load([body])


@pytest.mark.parametrize("text", ["abc$", "abcde", "QQ==QQ==", "=QUJ"])
def test_bad_base64_is_found_when_the_image_is_read(text: str) -> None:
    # Spooled as received (no per-chunk decoding in the reading thread), decoded
    # strictly, whole, when read.
    doc = jsonstream.load([b'{"data": [{"b64_json": "', text.encode(), b'"}]}'])
    with pytest.raises(jsonstream.BadBase64):
        doc["data"][0]["b64_json"].read()
