"""A strict fake of OpenAI's Files and Batch endpoints, beside the Images API fake.

Rules (openai-python e43b422, types/batch_create_params.py, batch.py,
batch_request_counts.py, batch_error.py, file_create_params.py, file_object.py,
batch_list_params.py; the BatchRequestInput/Output line shapes; read 2026-12-05):
- POST /v1/files, multipart `file` + `purpose`; a batch input must be purpose `batch`.
- POST /v1/batches {input_file_id, endpoint, completion_window: "24h", metadata?}:
  nothing else; metadata at most 16 string pairs, keys <= 64 chars, values <= 512.
- The input is validated as the batch leaves `validating`: every line a JSON object
  of exactly custom_id (unique), method "POST", url equal to the batch's endpoint,
  body; at most 50,000 lines and 200 MB; one model per file. A bad file fails the
  batch, `errors.data` naming each bad line (1-based).
- Each line's body is answered by the Images fake's own validation (`generate`):
  200s go to the output file, anything else (and lines never run: an expired or
  cancelled batch's) to the error file; output lines are shuffled.
- Status: validating -> in_progress -> finalizing -> completed, one step per GET
  (`steps`), or `end_as` expired/failed; cancel: cancelling, then cancelled.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.multipart import parse_multipart
from tests.fakes.openai_fake import OpenAIFake, error, json_object
from tests.fakes.server import Request, Response

ENDPOINTS = ("/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions",
             "/v1/moderations", "/v1/images/generations", "/v1/images/edits", "/v1/videos")
CREATE_KEYS = {"input_file_id", "endpoint", "completion_window", "metadata",
               "output_expires_after"}
FLOW = ("validating", "in_progress", "finalizing", "completed")


class OpenAIBatchFake(OpenAIFake):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.uploaded: dict[str, dict[str, Any]] = {}  # file id -> object + "content"
        self.batches: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []  # batch ids, oldest first
        self.creates = 0
        self.uploads = 0
        self.end_as = "completed"  # or "expired": only `answer_first` lines answered
        self.answer_first: int | None = None
        self.steps = 1  # status steps per GET (3: completed on the first GET)
        self.shuffle = random.Random(7)
        self.seq = itertools.count(1)
        self.image_refs: list[str] = []  # file ids that batched edits referenced
        # Called with the route name ("upload", "create", "poll", "content") after the fake has
        # done the work and before it answers: a test kills the client there.
        self.after: dict[str, Callable[[], None]] = {}

    # ------------------------------------------------------------------ routing
    def _route(self, req: Request) -> Response:
        path = req.path.split("?")[0]
        if not (path.startswith("/v1/files") or path.startswith("/v1/batches")):
            return super()._route(req)
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.keys:
            return error(401, "Incorrect API key provided.", "invalid_api_key")
        query = parse_qs(urlsplit(req.path).query)
        parts = path.strip("/").split("/")[1:]  # after "v1"
        if parts == ["files"] and req.method == "POST":
            return self._hooked("upload", self.upload(req))
        if parts == ["files"] and req.method == "GET":
            purpose = (query.get("purpose") or [None])[0]
            files = [self._file_obj(f) for f in reversed(self.uploaded.values())
                     if purpose in (None, f["purpose"])]
            return Response.json({"object": "list", "data": files, "has_more": False})
        if len(parts) == 3 and parts[0] == "files" and parts[2] == "content" \
                and req.method == "GET":
            f = self.uploaded.get(parts[1])
            if f is None:
                return error(404, f"No such File object: {parts[1]}", param="id")
            return self._hooked("content", Response(200, f["content"], {
                "content-type": "application/octet-stream"}))
        if parts == ["batches"] and req.method == "POST":
            return self._hooked("create", self.create(req))
        if parts == ["batches"] and req.method == "GET":
            limit = int((query.get("limit") or ["20"])[0])
            if not 1 <= limit <= 100:
                return error(400, "limit must be 1..100", "invalid_value", "limit")
            data = [self._public(self.batches[b]) for b in reversed(self.order)]
            return Response.json({"object": "list", "data": data[:limit],
                                  "has_more": len(data) > limit})
        if len(parts) == 2 and parts[0] == "batches" and req.method == "GET":
            b = self.batches.get(parts[1])
            if b is None:
                return error(404, f"No batch found with id '{parts[1]}'.")
            self._advance(b)
            return self._hooked("poll", Response.json(self._public(b)))
        if len(parts) == 3 and parts[0] == "batches" and parts[2] == "cancel" \
                and req.method == "POST":
            b = self.batches.get(parts[1])
            if b is None:
                return error(404, f"No batch found with id '{parts[1]}'.")
            if b["status"] not in ("validating", "in_progress", "finalizing"):
                return error(409, f"Cannot cancel a batch with status {b['status']}.")
            b["status"] = "cancelling"
            return Response.json(self._public(b))
        return error(404, f"Invalid URL ({req.method} {path})")

    def _hooked(self, name: str, resp: Response) -> Response:
        hook = self.after.get(name)
        if hook is not None and resp.status < 400:
            hook()
        return resp

    # ------------------------------------------------------------------ files
    def upload(self, req: Request) -> Response:
        ctype = req.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            return error(400, "Uploads need multipart/form-data")
        try:
            fields, files = parse_multipart(req.body, ctype)
        except ValueError as exc:
            return error(400, f"Bad multipart body: {exc}")
        if set(fields) - {"purpose", "expires_after[anchor]", "expires_after[seconds]"}:
            return error(400, f"Unrecognized fields: {sorted(fields)}")
        if fields.get("purpose") not in ("assistants", "batch", "fine-tune", "vision",
                                         "user_data", "evals"):
            return error(400, f"Invalid purpose: {fields.get('purpose')}", param="purpose")
        if list(files) != ["file"] or len(files["file"]) != 1:
            return error(400, "Missing required parameter: 'file'.", param="file")
        name, _, data = files["file"][0]
        self.uploads += 1
        fid = f"file-{next(self.seq):06d}"
        self.uploaded[fid] = {"id": fid, "filename": name, "purpose": fields["purpose"],
                              "content": data}
        return Response.json(self._file_obj(self.uploaded[fid]))

    @staticmethod
    def _file_obj(f: dict[str, Any]) -> dict[str, Any]:
        return {"id": f["id"], "object": "file", "bytes": len(f["content"]),
                "created_at": 1764000000, "filename": f["filename"], "purpose": f["purpose"],
                "status": "processed"}

    def _output_file(self, name: str, lines: list[bytes]) -> str | None:
        if not lines:
            return None
        fid = f"file-{next(self.seq):06d}"
        self.uploaded[fid] = {"id": fid, "filename": name, "purpose": "batch_output",
                              "content": b"".join(lines)}
        return fid

    # ------------------------------------------------------------------ batches
    def create(self, req: Request) -> Response:
        body = json_object(req)
        if isinstance(body, Response):
            return body
        for k in body:
            if k not in CREATE_KEYS:
                return error(400, f"Unrecognized request argument supplied: {k}", param=k)
        for k in ("input_file_id", "endpoint", "completion_window"):
            if k not in body:
                return error(400, f"Missing required parameter: '{k}'.", param=k)
        if body["completion_window"] != "24h":
            return error(400, "completion_window must be 24h", "invalid_value",
                         "completion_window")
        if body["endpoint"] not in ENDPOINTS:
            return error(400, f"Invalid endpoint {body['endpoint']}", "invalid_value",
                         "endpoint")
        meta = body.get("metadata")
        if meta is not None and (not isinstance(meta, dict) or len(meta) > 16 or any(
                not isinstance(k, str) or not isinstance(v, str) or len(k) > 64
                or len(v) > 512 for k, v in meta.items())):
            return error(400, "Invalid metadata", "invalid_value", "metadata")
        f = self.uploaded.get(body["input_file_id"])
        if f is None:
            return error(404, f"No such File object: {body['input_file_id']}")
        if f["purpose"] != "batch":
            return error(400, "The input file must be uploaded with purpose 'batch'",
                         "invalid_value", "input_file_id")
        self.creates += 1
        bid = f"batch_{next(self.seq):06d}"
        lines = f["content"].count(b"\n")
        self.batches[bid] = {"id": bid, "object": "batch", "endpoint": body["endpoint"],
                             "input_file_id": f["id"], "completion_window": "24h",
                             "status": "validating", "created_at": 1764000000,
                             "metadata": meta, "output_file_id": None,
                             "error_file_id": None, "errors": None,
                             "request_counts": {"total": lines, "completed": 0, "failed": 0}}
        self.order.append(bid)
        return Response.json(self._public(self.batches[bid]))

    @staticmethod
    def _public(b: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in b.items() if not k.startswith("_")}

    def _advance(self, b: dict[str, Any]) -> None:
        for _ in range(self.steps):
            status = b["status"]
            if status == "validating":
                errors = self.validate(b)
                if errors:
                    b.update(status="failed", failed_at=1764000100,
                             errors={"object": "list", "data": errors})
                    return
                b["status"] = "in_progress"
            elif status == "in_progress":
                if self.end_as == "expired":
                    self.finish(b, "expired")
                    return
                b["status"] = "finalizing"
            elif status == "finalizing":
                self.finish(b, "completed")
                return
            elif status == "cancelling":
                self.finish(b, "cancelled")
                return
            else:
                return

    def validate(self, b: dict[str, Any]) -> list[dict[str, Any]]:
        data = self.uploaded[b["input_file_id"]]["content"]
        errors: list[dict[str, Any]] = []
        if len(data) > 200 * 1024 * 1024:
            errors.append({"code": "file_too_large", "line": None,
                           "message": "The input file is larger than 200 MB"})
        raw_lines = data.split(b"\n")
        if raw_lines and raw_lines[-1] == b"":
            raw_lines.pop()
        if len(raw_lines) > 50_000:
            errors.append({"code": "too_many_requests", "line": None,
                           "message": "at most 50,000 requests"})
        seen: set[str] = set()
        models: set[Any] = set()
        for i, raw in enumerate(raw_lines, 1):
            def bad(msg: str, code: str = "invalid_request", param: str | None = None,
                    i: int = i) -> None:
                errors.append({"code": code, "line": i, "message": msg, "param": param})
            try:
                line = json.loads(raw)
            except ValueError:
                bad("not valid JSON", "invalid_json_line")
                continue
            if not isinstance(line, dict) or set(line) != {"custom_id", "method", "url",
                                                           "body"}:
                bad("a line holds exactly custom_id, method, url, body")
                continue
            cid = line["custom_id"]
            if not isinstance(cid, str) or not cid:
                bad("custom_id must be a string", param="custom_id")
            elif cid in seen:
                bad(f"custom_id {cid} is used twice", "duplicate_custom_id", "custom_id")
            seen.add(cid if isinstance(cid, str) else "")
            if line["method"] != "POST":
                bad("method must be POST", param="method")
            if line["url"] != b["endpoint"]:
                bad(f"url {line['url']} is not the batch's endpoint {b['endpoint']}",
                    "mismatched_url", "url")
            if not isinstance(line["body"], dict):
                bad("body must be an object", param="body")
            else:
                models.add(line["body"].get("model"))
        if len(models) > 1:
            errors.append({"code": "mismatched_model", "line": None,
                           "message": "every request of a batch must use the same model"})
        return errors

    def _refs(self, body: Any) -> Response | None:
        """An edit's {file_id} references must name uploaded image files."""
        refs = list(body.get("images") or []) + ([body["mask"]] if "mask" in body else []) \
            if isinstance(body, dict) else []
        for ref in refs:
            fid = ref.get("file_id") if isinstance(ref, dict) else None
            if fid is None:
                continue
            f = self.uploaded.get(fid)
            if f is None or f["purpose"] not in ("vision", "user_data"):
                return error(400, f"Invalid file_id {fid}: no such image file",
                             "invalid_value", "images")
            self.image_refs.append(fid)
        return None

    def finish(self, b: dict[str, Any], status: str) -> None:
        """Answer the lines (all, or the first `answer_first` when the batch expired or
        was cancelled), each through the Images fake's own validation."""
        raw_lines = [x for x in self.uploaded[b["input_file_id"]]["content"].split(b"\n")
                     if x]
        run = len(raw_lines) if status == "completed" else (
            self.answer_first if self.answer_first is not None else len(raw_lines) // 2)
        out: list[bytes] = []
        errs: list[bytes] = []
        for k, raw in enumerate(raw_lines):
            line = json.loads(raw)
            rid = f"batch_req_{next(self.seq):06d}"
            if k >= run:
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                errs.append(json.dumps({"id": rid, "custom_id": line["custom_id"],
                                        "response": None, "error": {
                                            "code": code,
                                            "message": "This request could not be executed "
                                            "before the batch ended."}}).encode() + b"\n")
                continue
            resp = (self.generate(line["body"], "") if b["endpoint"].endswith("generations")
                    else self._refs(line["body"]) or self.edit_json(
                        Request("POST", "/v1/images/edits", {},
                                json.dumps(line["body"]).encode())))
            body = json.loads(resp.body) if isinstance(resp.body, bytes) else None
            rec = {"id": rid, "custom_id": line["custom_id"],
                   "response": {"status_code": resp.status,
                                "request_id": f"req_{next(self.seq):06d}", "body": body},
                   "error": None}
            (out if resp.status == 200 else errs).append(json.dumps(rec).encode() + b"\n")
        self.shuffle.shuffle(out)
        b["output_file_id"] = self._output_file("batch_output.jsonl", out)
        b["error_file_id"] = self._output_file("batch_errors.jsonl", errs)
        b["request_counts"] = {"total": len(raw_lines), "completed": len(out),
                               "failed": len(errs)}
        b["status"] = status
