"""OpenAI's Batch API and the Files API it reads from: the wire half of
`imagegen batch --batch-api`.

Owns `BatchClient` (upload a JSONL file with purpose `batch`, create, look up,
list, cancel a batch, stream a file's content to disk), reading one line of an
output or error file (`read_line`), and the images of one answered line
(`images_of`). What to submit and how it is journaled is engine/batchapi.py's.

Sources (read 2026-12-05):
- openai-python at e43b422412a9e96c9cc5192c61fffbe2d7e04836 (2026-08-21):
  src/openai/types/batch_create_params.py (`completion_window: Literal["24h"]`;
  `endpoint` includes "/v1/images/generations" and "/v1/images/edits"; the input
  file "must be uploaded with the purpose `batch`", "up to 50,000 requests, and
  can be up to 200 MB in size"; `metadata`: 16 pairs, keys <= 64 chars, values
  <= 512), types/batch.py (statuses validating, failed, in_progress, finalizing,
  completed, expired, cancelling, cancelled; output_file_id, error_file_id,
  errors.data, request_counts), types/batch_request_counts.py (completed, failed,
  total), types/batch_error.py (code, line, message, param),
  types/file_create_params.py (file, purpose, expires_after; batch files expire
  after 30 days), types/file_object.py (id, bytes, filename, purpose, status),
  types/batch_list_params.py (after, limit 1..100), resources/batches.py (cancel:
  "cancelling for up to 10 minutes, before changing to cancelled, where it will
  have partial results (if any) available in the output file"), resources/files.py
  (GET /files?purpose=..., GET /files/{id}/content).
- The per-line shapes (the OpenAPI spec's BatchRequestInput and BatchRequestOutput,
  as generated clients carry them): in, {custom_id, method: "POST", url, body};
  out, {id, custom_id, response: {status_code, request_id, body} | null,
  error: {code, message} | null}. Output lines come in any order: match by
  custom_id only.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from imagegen_cli.providers import (
    CallInfo,
    GeneratedImage,
    HttpCall,
    ImageRequest,
    RefusedError,
    UnavailableError,
    UsageError,
)
from imagegen_cli.providers.openai_answers import parse_images
from imagegen_cli.transport.classify import body_errors

if TYPE_CHECKING:
    from imagegen_cli.providers import Transport
    from imagegen_cli.providers.openai import OpenAIProvider

GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"
# The purpose of an input image referenced by `file_id` in a batched JSON edit. Not
# settled by what we could read (file_create_params.py lists assistants, batch,
# fine-tune, vision, user_data, evals; third-party tools upload edit inputs as
# `vision`): see docs/providers/openai-batch.md, "Unconfirmed".
INPUT_PURPOSE = "vision"
COMPLETION_WINDOW = "24h"  # batch_create_params.py: "Currently only `24h` is supported."
MAX_LINES = 50_000  # batch_create_params.py, input_file_id
MAX_BYTES = 200 * 1024 * 1024  # the same: "up to 200 MB in size"
ENDED = ("completed", "failed", "expired", "cancelled")  # batch.py: no way on from these
# The metadata key that names a batch's part of an imagegen run: a run killed between
# `POST /batches` and journaling the answer finds its batch by it (never creates two).
TOKEN_KEY = "imagegen_part"
_CUSTOM_ID = re.compile(rb'"custom_id"\s*:\s*"([^"\\]*)"')


def new_token() -> str:
    return uuid.uuid4().hex


class BatchClient:
    """The Files and Batches endpoints of PROVIDER (an openai-type provider whose
    service offers the Batch API), over TRANSPORT (retries, deadlines, redaction);
    uploads and file contents (up to 200 MB in, gigabytes of images out) over BULK,
    a transport with a deadline to match (default: TRANSPORT)."""

    def __init__(self, provider: OpenAIProvider, key: str | None, transport: Transport,
                 bulk: Transport | None = None) -> None:
        self.provider = provider
        self.key = key
        self.tr = transport
        self.bulk = bulk or transport

    def _call(self, method: str, route: str, body: Any = None) -> HttpCall:
        return HttpCall(method, self.provider.url(route), self.provider.headers(self.key),
                        json=body)

    def _json(self, call: HttpCall) -> dict[str, Any]:
        payload, _ = self.tr.json(call)
        if not isinstance(payload, dict):
            raise UnavailableError(f"{self.provider.name} answered {call.method} "
                                   f"{urlsplit(call.url).path} with something not an object")
        return payload

    # -- files ----------------------------------------------------------------
    def upload(self, filename: str, data: bytes, *, purpose: str = "batch",
               content_type: str = "application/jsonl") -> str:
        """POST /files, multipart: `file` and `purpose` (file_create_params.py)."""
        headers = self.provider.headers(self.key)
        del headers["content-type"]  # httpx sets multipart/form-data with its boundary
        call = HttpCall("POST", self.provider.url("/files"), headers, data={"purpose": purpose},
                        files=[("file", (filename, data, content_type))])
        payload, _ = self.bulk.json(call)
        if not isinstance(payload, dict):
            raise UnavailableError(f"{self.provider.name} answered an upload with something "
                                   "not an object")
        return _id_of(payload, "file", self.provider.name)

    def find_file(self, filename: str) -> str | None:
        """The newest file of purpose `batch` named FILENAME (an upload whose answer a
        killed run never journaled), or None."""
        after = None
        for _ in range(10):  # newest first: a killed run's upload is among the first
            route = "/files?purpose=batch&order=desc&limit=100" + (
                f"&after={quote(after, safe='')}" if after else "")
            page = self._json(self._call("GET", route))
            data = page.get("data")
            items: list[Any] = data if isinstance(data, list) else []
            for item in items:
                if isinstance(item, dict) and item.get("filename") == filename \
                        and isinstance(item.get("id"), str):
                    return str(item["id"])
            if not page.get("has_more") or not items:
                return None
            after = str(items[-1].get("id"))
        return None

    def download(self, file_id: str, dest: IO[bytes]) -> int:
        """GET /files/{id}/content into DEST as it arrives (an output file of images can
        be gigabytes of base64: never held whole); the bytes written."""
        call = HttpCall("GET", self.provider.url(f"/files/{quote(file_id, safe='')}/content"),
                        {k: v for k, v in self.provider.headers(self.key).items()
                         if k != "content-type"})
        resp = self.bulk.send(call, stream=True)
        total = 0
        try:
            with body_errors(self.provider.name, None, self.bulk.timeout):
                for chunk in resp.iter_bytes(1 << 20):
                    dest.write(chunk)
                    total += len(chunk)
        finally:
            resp.close()
        return total

    # -- batches --------------------------------------------------------------
    def create(self, file_id: str, endpoint: str, metadata: dict[str, str]) -> dict[str, Any]:
        """POST /batches (batch_create_params.py)."""
        body = {"input_file_id": file_id, "endpoint": endpoint,
                "completion_window": COMPLETION_WINDOW, "metadata": metadata}
        batch = self._json(self._call("POST", "/batches", body))
        _id_of(batch, "batch", self.provider.name)
        return batch

    def get(self, batch_id: str) -> dict[str, Any]:
        batch = self._json(self._call("GET", f"/batches/{quote(batch_id, safe='')}"))
        _id_of(batch, "batch", self.provider.name)
        return batch

    def cancel(self, batch_id: str) -> dict[str, Any]:
        return self._json(self._call("POST", f"/batches/{quote(batch_id, safe='')}/cancel"))

    def find_batch(self, token: str) -> dict[str, Any] | None:
        """The batch whose metadata names TOKEN (created by a run killed before it could
        journal the answer), or None. Newest first, as GET /batches lists them."""
        after = None
        for _ in range(20):
            route = "/batches?limit=100" + (f"&after={quote(after, safe='')}" if after else "")
            page = self._json(self._call("GET", route))
            data = page.get("data")
            items: list[Any] = data if isinstance(data, list) else []
            for item in items:
                meta = item.get("metadata") if isinstance(item, dict) else None
                if isinstance(meta, dict) and meta.get(TOKEN_KEY) == token:
                    return dict(item)
            if not page.get("has_more") or not items:
                return None
            after = str(items[-1].get("id"))
        return None


def _id_of(obj: dict[str, Any], kind: str, who: str) -> str:
    value = obj.get("id")
    if not isinstance(value, str) or not value:
        raise UnavailableError(f"{who} answered without the {kind}'s id")
    return value


def custom_id_of(raw: bytes) -> str | None:
    """The custom_id of one output or error line, read without parsing the line (its
    base64 can be megabytes). An unescaped `"custom_id":` is a key; inside a string
    its quotes would be escaped."""
    m = _CUSTOM_ID.search(raw)
    if m is not None:
        return m.group(1).decode("utf-8", "replace")
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    cid = obj.get("custom_id") if isinstance(obj, dict) else None
    return cid if isinstance(cid, str) else None


def read_line(raw: bytes, who: str) -> tuple[int | None, Any, str | None, str | None]:
    """(status_code, body, request_id, error text) of one BatchRequestOutput line:
    a line with an `error`, or a non-200 status, is that request's failure."""
    try:
        obj = json.loads(raw)
    except ValueError:
        raise UnavailableError(f"{who}'s batch output has a line that is not JSON") from None
    if not isinstance(obj, dict):
        raise UnavailableError(f"{who}'s batch output has a line that is not an object")
    got = obj.get("response")
    resp: dict[str, Any] = got if isinstance(got, dict) else {}
    status = resp.get("status_code")
    rid = resp.get("request_id") if isinstance(resp.get("request_id"), str) else None
    body = resp.get("body")
    err = obj.get("error")
    text = None
    if isinstance(err, dict) and (err.get("message") or err.get("code")):
        text = f"{err.get('message') or 'failed'}" + (f" ({err['code']})" if err.get("code")
                                                      else "")
    elif err:
        text = str(err)
    elif status != 200:
        inner = body.get("error") if isinstance(body, dict) else None
        msg = inner.get("message") if isinstance(inner, dict) else None
        code = inner.get("code") if isinstance(inner, dict) else None
        text = f"status {status}: {msg or 'no message'}" + (f" ({code})" if code else "")
    return (status if isinstance(status, int) else None), body, rid, text


def line_error(status: int | None, text: str, who: str, request_id: str | None) -> Exception:
    """A failed line as the live call's error would be: 429/5xx unavailable (exit 6),
    anything else refused (exit 5)."""
    if status is not None and (status == 429 or status >= 500):
        return UnavailableError(f"{who} (batch) is unavailable: {text}", status=status,
                                request_id=request_id)
    return RefusedError(f"{who} (batch) refused the request: {text}", status=status,
                        request_id=request_id)


def images_of(provider: OpenAIProvider, req: ImageRequest, body: Any, info: CallInfo
              ) -> Iterator[tuple[GeneratedImage, CallInfo]]:
    """The images of one answered line, read as the live answer is (parse_images), each
    of a deployment tagged with its real model as `OpenAIProvider.send` does."""
    real = provider.real(req.model)
    for image, got in parse_images(body, info, provider.name):
        if real != req.model:
            image.resolved = {**image.resolved, "base_model": real}
        yield image, got


def endpoint_of(req: ImageRequest) -> str:
    return EDITS if req.images or req.mask is not None else GENERATIONS


def check_batchable(provider: OpenAIProvider, req: ImageRequest) -> None:
    """Exit 2 for an edit the JSON edit body cannot carry: GPT image models only
    (EditImageBodyJsonParam: "DALL-E edits require multipart"), its narrower enums."""
    from imagegen_cli.providers.openai import json_edit_fits
    from imagegen_cli.providers.openai_models import family, is_gpt_image

    if endpoint_of(req) == EDITS:
        if not is_gpt_image(family(provider.real(req.model))):
            raise UsageError(f"--batch-api: an edit with {req.model} goes as multipart "
                             "only, which a batch cannot carry: use a GPT image model, or "
                             "run it without --batch-api")
        json_edit_fits(req)


def batch_body(provider: OpenAIProvider, req: ImageRequest,
               file_id_of: Callable[[bytes], str]) -> dict[str, Any]:
    """The `body` of REQ's batch line. A generation: the live request's JSON body,
    exactly (`prepare`). An edit: the JSON edit body (EditImageBodyJsonParam), the live
    body's fields with `images` as ImageRefParam, {"file_id"} for a local file
    (FILE_ID_OF uploads it) or {"image_url"} for a URL, and `mask` as {"file_id"} of
    the RGBA mask the live call sends."""
    from imagegen_cli.files.masks import openai_mask

    if endpoint_of(req) == GENERATIONS:
        (call,) = provider.prepare(req, None)
        assert isinstance(call.json, dict)
        return call.json
    check_batchable(provider, req)
    body = provider.body(req)
    body["images"] = [{"image_url": im.url} if im.url else {"file_id": file_id_of(im.data)}
                      for im in req.images]
    if req.mask is not None:
        body["mask"] = {"file_id": file_id_of(openai_mask(req.mask))}
    return body
