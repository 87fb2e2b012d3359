"""imagegen_cli.transport.b64: the fast decoder and the stdlib fallback accept and refuse alike."""

from __future__ import annotations

import base64
import binascii
import importlib
import sys

import pytest

from imagegen_cli.transport import b64

CASES = [b"", b"QUJD", b"QUI=", b"QQ==", b"AAAA" * 1000]
BAD = [b"QUJ", b"QU=D", b"=QUJ", b"QQ==QQ==", b"QUJ\n", b"QU J", b"QUJ*"]


def _fallback(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setitem(sys.modules, "pybase64", None)  # import fails
    return importlib.reload(b64)


@pytest.mark.parametrize("fast", [True, False])
def test_decode_is_strict_base64_either_way(fast: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    mod = b64 if fast else _fallback(monkeypatch)
    try:
        for ok in CASES:
            assert mod.decode(ok) == base64.b64decode(ok, validate=True)  # type: ignore[attr-defined]
            assert mod.decode(ok.decode()) == base64.b64decode(ok)  # type: ignore[attr-defined]
        for bad in BAD:
            with pytest.raises((binascii.Error, ValueError)):
                mod.decode(bad)  # type: ignore[attr-defined]
        data = bytes(range(256)) * 3
        assert mod.encode(data) == base64.b64encode(data).decode()  # type: ignore[attr-defined]
    finally:
        monkeypatch.undo()
        importlib.reload(b64)


def test_the_fast_decoder_is_in_use() -> None:
    # pybase64 is a dependency: a batch's workers decode megabytes per image with it.
    assert b64.decode.__module__ == "imagegen_cli.transport.b64"
    assert "pybase64" in sys.modules
