"""Content credentials (C2PA): a provider's signed image stays signed on every save path.

The fixtures are signed here, at run time, with c2pa-python and a throwaway
certificate chain made with `cryptography` (no private key lives in the repo), served
by the OpenAI fake, and every file written is checked with c2pa-python's Reader.
"""

from __future__ import annotations

import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from imagegen_cli.files.metadata import credentials
from imagegen_cli.files.metadata.write import embed
from tests.conftest import run_cli
from tests.fakes.openai_fake import OpenAIFake

c2pa = pytest.importorskip(
    "c2pa", reason="c2pa-python is not installed (pip install -e '.[dev]' installs it)")
pytest.importorskip("cryptography", reason="cryptography makes the test certificates")

MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


@cache
def _signer_pems() -> tuple[bytes, bytes]:
    """A root CA and an ES256 signing certificate it issued: (chain PEM, key PEM)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imagegen tests")])

    # c2pa-python checks validity against the real clock; scripts/calendar-check moves
    # Python's: valid across both.
    import time

    seen = (datetime.datetime.now(datetime.UTC),
            datetime.datetime.fromtimestamp(time.time(), datetime.UTC))
    life = (min(seen) - datetime.timedelta(days=1), max(seen) + datetime.timedelta(days=30))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test root")).issuer_name(name("test root"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(life[0]).not_valid_after(life[1])
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("test signer")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(life[0]).not_valid_after(life[1])
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    chain = cert.public_bytes(pem) + ca.public_bytes(pem)
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return chain, private


@cache
def signed(fmt: str, size: tuple[int, int] = (64, 64)) -> bytes:
    """A FMT image signed as OpenAI signs its answers: created by a trained model."""
    from PIL import Image

    chain, private = _signer_pems()
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain,
                                                       private, None))
    manifest = {"claim_generator_info": [{"name": "OpenAI-API", "version": "1.0"}],
                "title": "image",
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.created", "digitalSourceType": TRAINED}]}}]}
    raw = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(raw, format=fmt.upper())
    out = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, MIME[fmt], io.BytesIO(raw.getvalue()), out)
    return out.getvalue()


def validation(data: bytes, fmt: str) -> tuple[str, list[str]]:
    """c2pa-python's verdict on DATA: (state, failure codes other than the test
    certificate being on no trust list)."""
    with c2pa.Reader(MIME[fmt], io.BytesIO(data)) as reader:
        state = reader.get_validation_state()
        results = reader.get_validation_results() or {}
    failed = results.get("activeManifest", {}).get("failure", [])
    return state, [f["code"] for f in failed if f["code"] != credentials.UNTRUSTED]


def assert_valid(data: bytes, fmt: str) -> None:
    assert validation(data, fmt) == ("Valid", [])


@pytest.fixture
def signing(fake: OpenAIFake) -> OpenAIFake:
    fake.fixed_image = signed("png")
    return fake


def sidecar(path: str) -> dict[str, Any]:
    return dict(json.loads(Path(path).with_suffix(".json").read_text()))


# ------------------------------------------------------------ reading, pure Python


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_manifest_found_and_read_without_the_library(fmt: str) -> None:
    data = signed(fmt)
    assert credentials.present(data, fmt)
    got = credentials.summary(data, fmt)
    assert got["present"] and not got.get("damaged")
    assert got["claim_generator"] == "OpenAI-API 1.0"
    assert got["actions"] == ["c2pa.created"]
    assert got["digital_source_type"] == TRAINED and got["ai_generated"] is True
    unsigned = credentials.summary(_plain(fmt), fmt)
    assert unsigned == {"present": False}


def _plain(fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format=fmt.upper())
    return buf.getvalue()


def test_damaged_store_is_reported_never_raised() -> None:
    data = bytearray(signed("png"))
    at = bytes(data).index(b"caBX") + 4
    data[at + 40 : at + 400] = b"\xff" * 360  # inside the store; the chunk stays whole
    got = credentials.summary(bytes(data), "png")
    assert got["present"] is True


def test_validate_says_why_a_broken_manifest_fails() -> None:
    tampered, _ = embed(signed("png"), "png", {"prompt": "x", "generator": "imagegen"})
    check = credentials.validate(tampered, "png")
    assert check is not None and check["valid"] is False
    assert any(f.startswith("assertion.dataHash.mismatch") for f in check["failures"])
    good = credentials.validate(signed("png"), "png")
    assert good is not None and good["valid"] is True and good["trusted"] is False


# ------------------------------------------------------------ every save path


@pytest.mark.parametrize("fmt,ext", [("png", "png"), ("jpeg", "jpg"), ("webp", "webp")])
def test_file_written_as_received_with_sidecar(fake: OpenAIFake, fmt: str, ext: str) -> None:
    fake.fixed_image = signed(fmt)
    r = run_cli(["generate", "a red square", "-f", fmt, "-o", f"out.{ext}"])
    assert r.code == 0, r.err
    data = Path(f"out.{ext}").read_bytes()
    assert data == signed(fmt)
    assert_valid(data, fmt)
    side = sidecar(f"out.{ext}")
    assert side["prompt"] == "a red square" and side["content_credentials"]
    assert r.err.count("content credentials") == 1 and "sidecar" in r.err


def test_stdout_gets_the_signed_bytes(signing: OpenAIFake) -> None:
    r = run_cli(["generate", "a red square", "-o", "-"])
    assert r.code == 0, r.err
    assert r.out == signed("png")
    assert_valid(r.out, "png")
    assert "stdout has no sidecar" in r.err


def test_url_download_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.conftest import write_config

    gateway = OpenAIFake(mode="yescale", keys=("ys-key",)).start()  # answers with URLs
    try:
        gateway.fixed_image = signed("png")
        write_config(f'[providers.yescale]\nbase_url = "{gateway.url}"\n', monkeypatch,
                     tmp_path)
        monkeypatch.setenv("YESCALE_API_KEY", "ys-key")
        r = run_cli(["generate", "a red square", "-p", "yescale", "-o", "url.png"])
        assert r.code == 0, r.err
        assert gateway.files, "the image came by URL"
    finally:
        gateway.stop()
    assert_valid(Path("url.png").read_bytes(), "png")
    assert sidecar("url.png")["provider"] == "yescale"


def test_batch_every_image_kept_said_once(signing: OpenAIFake) -> None:
    Path("p.txt").write_text("a red square\na red circle\na red line\n")
    r = run_cli(["batch", "p.txt", "-o", "out/"])
    assert r.code == 0, r.err
    files = sorted(Path("out").glob("*.png"))
    assert len(files) == 3
    for path in files:
        assert path.read_bytes() == signed("png")
        assert_valid(path.read_bytes(), "png")
        assert path.with_suffix(".json").exists()
    assert r.err.count("content credentials") == 1


def test_edit_kept(signing: OpenAIFake) -> None:
    from PIL import Image

    Image.new("RGB", (64, 64), "blue").save("in.png")
    r = run_cli(["edit", "make it red", "-i", "in.png", "-o", "e.png"])
    assert r.code == 0, r.err
    assert_valid(Path("e.png").read_bytes(), "png")
    assert sidecar("e.png")["prompt"] == "make it red"


def test_no_metadata_keeps_the_file_whole_and_says_so(signing: OpenAIFake) -> None:
    r = run_cli(["generate", "a red square", "--no-metadata", "-o", "bare.png"])
    assert r.code == 0, r.err
    assert Path("bare.png").read_bytes() == signed("png")
    assert_valid(Path("bare.png").read_bytes(), "png")
    assert not Path("bare.json").exists()
    assert "--no-metadata keeps the file as received" in r.err


def test_conversion_warns_that_credentials_are_lost(signing: OpenAIFake) -> None:
    r = run_cli(["generate", "a red square", "-o", "out.webp"])
    assert r.code == 0, r.err
    assert "warning:" in r.err and "they are lost" in r.err
    data = Path("out.webp").read_bytes()
    assert not credentials.present(data, "webp")  # no broken manifest left behind
    info = json.loads(run_cli(["info", "out.webp", "--json"]).out)[0]
    assert info["metadata"]["prompt"] == "a red square"  # ours, embedded as usual
    assert info["content_credentials"] == {"present": False}


# ------------------------------------------------------------ info and --from


def test_info_reports_content_credentials(signing: OpenAIFake) -> None:
    assert run_cli(["generate", "a red square", "-o", "s.png"]).code == 0
    r = run_cli(["info", "s.png", "--json"])
    assert r.code == 0, r.err
    report = json.loads(r.out)[0]
    cred = report["content_credentials"]
    assert cred["present"] and cred["claim_generator"] == "OpenAI-API 1.0"
    assert cred["actions"] == ["c2pa.created"] and cred["digital_source_type"] == TRAINED
    assert cred["validation"]["valid"] is True
    assert report["ai_generated"] is True
    assert report["source"] == "sidecar" and report["metadata"]["prompt"] == "a red square"
    human = run_cli(["info", "s.png"]).stdout
    assert "claim generator: OpenAI-API 1.0" in human
    assert "signature: valid (certificate not on a trust list)" in human


def test_info_says_why_a_manifest_does_not_validate(tmp_path: Path) -> None:
    tampered, _ = embed(signed("jpeg"), "jpeg", {"prompt": "x", "generator": "imagegen"})
    Path("t.jpg").write_bytes(tampered)
    human = run_cli(["info", "t.jpg"]).stdout
    assert "signature: INVALID" in human and "assertion.dataHash.mismatch" in human


def test_info_without_c2pa_python(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    Path("s.webp").write_bytes(signed("webp"))
    monkeypatch.setitem(sys.modules, "c2pa", None)  # as if the extra were not installed
    r = run_cli(["info", "s.webp", "--json"])
    cred = json.loads(r.out)[0]["content_credentials"]
    assert cred["present"] and cred["validation"] is None
    assert json.loads(r.out)[0]["ai_generated"] is True
    assert "install imagegen-cli[c2pa]" in run_cli(["info", "s.webp"]).stdout


def test_generate_from_a_signed_image_reads_the_sidecar(signing: OpenAIFake) -> None:
    assert run_cli(["generate", "a red square", "-m", "dall-e-2",
                    "--size", "256x256", "-o", "s.png"]).code == 0
    r = run_cli(["generate", "--from", "s.png", "-o", "again.png"])
    assert r.code == 0, r.err
    body = json.loads(signing.server.calls("/images/generations")[-1].body)
    assert body["prompt"] == "a red square" and body["model"] == "dall-e-2"


def test_job_get_kept(distribute: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes import distribute_fake

    monkeypatch.setattr(distribute_fake, "png", lambda w, h, color: signed("png"))
    r = run_cli(["generate", "forever fox", "-p", "distribute", "--seed", "5", "--timeout", "3",
                 "-o", "out/fox.png"])
    assert r.code == 6
    (job_id,) = distribute.jobs
    distribute.jobs[job_id]["body"]["prompt"] = "now done"  # the fake finishes it
    r = run_cli(["job", "get", "distribute", job_id])
    assert r.code == 0, r.err
    assert_valid(Path("out/fox.png").read_bytes(), "png")
    assert sidecar("out/fox.png")["prompt"] == "forever fox"
    assert "sidecar" in r.err
