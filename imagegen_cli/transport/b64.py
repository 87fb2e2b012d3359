"""Base64 for image payloads: pybase64 (SIMD, 30x faster than binascii on a megabyte
image, and it holds the GIL for microseconds, not milliseconds, so a batch's workers
do not queue behind each other's decoding); binascii where it is not installed."""

from __future__ import annotations

import binascii

Error = binascii.Error

try:
    import pybase64

    def decode(data: bytes | str) -> bytes:
        """Strict: only the base64 alphabet with correct padding, else binascii.Error
        (ValueError for a str that is not ASCII)."""
        return pybase64.b64decode(data, validate=True)

    def encode(data: bytes) -> str:
        return pybase64.b64encode_as_string(data)

except ImportError:  # pragma: no cover - a dependency; keep working without it

    def decode(data: bytes | str) -> bytes:
        return binascii.a2b_base64(data, strict_mode=True)

    def encode(data: bytes) -> str:
        return binascii.b2a_base64(data, newline=False).decode("ascii")
