"""A strict fake of the OpenAI Images API (and of the gateways that speak it).

Modes:
- "openai": OpenAI's own rules per model, as of 2026-11-23 (PROVIDERS.md, openai-python's
  image_generate_params.py / image_edit_params.py / images_response.py, OpenAI's model
  and deprecations pages). Shut-down models answer 404 unless keep_retired (a gateway
  that keeps them alive).
- "truefoundry": model ids must be ACCOUNT/MODEL; rules of the underlying model;
  answers carry x-tfy-resolved-model.
- "yescale": Flux in dall-e-3 format: only prompt/model/n/size accepted, the
  documented sizes, answers are urls with explicit nulls.
- "azure": Azure OpenAI (Microsoft Learn: API version lifecycle, read 2026-12-05 at
  MicrosoftDocs/azure-ai-docs 00f98cc; How to use image generation models, 094ebed;
  openai-python lib/azure.py at e43b422). The key in `api-key`; a request carrying
  `Authorization` is refused (this fake knows no Entra tokens). The v1 path
  /openai/v1/... (an `api-version` query, if any, only `preview` or `latest`) with the
  deployment in `model`, and the deployment path
  /openai/deployments/{deployment}/...?api-version=YYYY-MM-DD[-preview] (required).
  `deployments` maps each deployment name to its real model, whose rules then apply.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import time
from datetime import date
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from imagegen_cli import clock
from tests.fakes.server import Dialect, Request, Response, color_for, png, reencode

GEN_FIELDS = {"prompt", "model", "n", "size", "quality", "style", "response_format",
              "output_format", "output_compression", "background", "moderation", "stream",
              "partial_images", "user", "complexity"}
EDIT_FIELDS = {"prompt", "model", "n", "size", "quality", "response_format", "output_format",
               "background", "input_fidelity", "stream", "partial_images", "user",
               "output_compression", "complexity"}
# The JSON edit body (OpenAPI EditImageBodyJsonParam): images/mask are references.
JSON_EDIT_FIELDS = (EDIT_FIELDS - {"response_format", "complexity"}) | {"images", "mask",
                                                                       "moderation"}
# EditImageBodyJsonParam's own enums: narrower than multipart's (no free sizes, no
# xhigh/max).
JSON_EDIT_SIZES = ("auto", "1024x1024", "1536x1024", "1024x1536")
JSON_EDIT_QUALITY = ("low", "medium", "high", "auto")
MAX_IMAGES = 16
SIZES = {
    "dall-e-2": {"256x256", "512x512", "1024x1024"},
    "dall-e-3": {"1024x1024", "1792x1024", "1024x1792"},
    "gpt-image": {"1024x1024", "1536x1024", "1024x1536", "auto"},
}
PROMPT_MAX = {"dall-e-2": 1000, "dall-e-3": 4000}
YESCALE_SIZES = {"1024x1024", "1024x576", "1024x768", "1024x512", "512x1024", "512x768",
                 "1280x960", "960x1280", "768x1366", "768x512", "1366x768", "1344x576"}
MODELS = ["dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5",
          "gpt-image-1.5-2025-12-16", "chatgpt-image-latest", "gpt-image-2",
          "gpt-image-2-2026-04-21", "gpt-image-2.5-flare", "gpt-image-2.5-sunburst",
          "gpt-image-2.6-flare", "gpt-image-2.6-sunburst"]
# Shutdown dates (OpenAI's deprecations page, read 2026-11-23).
SHUTDOWN = {"dall-e-2": "2026-05-12", "dall-e-3": "2026-05-12", "gpt-image-1": "2026-10-23",
            "gpt-image-1-mini": "2026-12-01", "gpt-image-1.5": "2026-12-01",
            "gpt-image-1.5-2025-12-16": "2026-12-01", "chatgpt-image-latest": "2026-12-01"}
QUALITY = {"dall-e-2": {"standard"}, "dall-e-3": {"standard", "hd"},
           "gpt-image": {"low", "medium", "high", "auto"},
           "gpt-image-2": {"low", "medium", "high", "auto"},
           "gpt-image-2.5": {"low", "medium", "high", "xhigh", "max", "auto"},
           "gpt-image-2.6": {"low", "medium", "high", "xhigh", "max", "auto"}}


def error(status: int, message: str, code: str | None = None, param: str | None = None,
          etype: str = "invalid_request_error") -> Response:
    return Response.json({"error": {"message": message, "type": etype, "param": param,
                                    "code": code}}, status)


def json_object(req: Request) -> dict[str, Any] | Response:
    """REQ's body as the JSON object OpenAI requires, else the 400 it answers."""
    try:
        body = req.json()
    except ValueError:
        return error(400, "We could not parse the JSON body of your request.")
    if not isinstance(body, dict):
        return error(400, "Body must be a JSON object")
    return body


def family(model: str) -> str:
    for fam in ("gpt-image-2.6", "gpt-image-2.5", "gpt-image-2"):
        if model.startswith(fam):
            return fam
    if model.startswith(("gpt-image", "chatgpt-image")):
        return "gpt-image"
    return model


class OpenAIFake(Dialect):
    def __init__(self, mode: str = "openai", keys: tuple[str, ...] = ("sk-test-key-123",),
                 image_size: tuple[int, int] | None = None, keep_retired: bool = False,
                 today: date | None = None,
                 deployments: dict[str, str] | None = None) -> None:
        self.mode = mode
        self.deployments = deployments or {}
        # (path kind, deployment, api-version) of each Azure image call
        self.azure_routes: list[tuple[str, str, str | None]] = []
        self.keep_retired = keep_retired
        self.today = today
        self.keys = keys
        self.image_size = image_size  # override the answered pixel size (small & fast)
        self.fixed_image: bytes | None = None  # answer these bytes for every image (bench)
        self.list_models = True  # False: a gateway without GET /models (404)
        self.ids = itertools.count(1)
        self.files: dict[str, bytes] = {}
        super().__init__()

    # ------------------------------------------------------------------
    @property
    def url(self) -> str:
        base = self.server.url
        if self.mode == "azure":
            return base + "/openai/v1"
        return base + ("/api/llm" if self.mode == "truefoundry" else "/v1")

    def _headers(self) -> dict[str, str]:
        return {"x-request-id": f"req_{next(self.ids):06d}"}

    def handle(self, req: Request) -> Response:
        resp = self._route(req)
        if not req.path.startswith("/files/"):
            resp.headers.setdefault("x-request-id", f"req_{next(self.ids):06d}")
        return resp

    def _route(self, req: Request) -> Response:
        path = req.path.split("?")[0]
        if path.startswith("/files/"):
            if req.headers.get("authorization"):
                return Response(400, b"image host got an Authorization header")
            data = self.files.get(path[len("/files/"):])
            if data is None:
                return Response(404, b"<html><title>404 Not Found</title></html>",
                                {"content-type": "text/html"})
            return Response(200, data, {"content-type": "image/png"})
        if self.mode == "azure":
            return self._azure(req, path)
        prefix = "/api/llm" if self.mode == "truefoundry" else "/v1"
        if not path.startswith(prefix + "/"):
            return error(404, f"Invalid URL ({req.method} {path})")
        route = path[len(prefix):]
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.keys:
            return error(401, "Incorrect API key provided.", "invalid_api_key")
        if route == "/models" and req.method == "GET" and self.list_models:
            return Response.json({"object": "list", "data": [
                {"id": m, "object": "model"} for m in MODELS + ["gpt-4o", "whisper-1"]]},
                **self._headers())
        if route == "/images/generations" and req.method == "POST":
            if not req.headers.get("content-type", "").startswith("application/json"):
                return error(400, "Content-Type must be application/json")
            body = json_object(req)
            if isinstance(body, Response):
                return body
            return self.generate(body, req.headers.get("accept", ""))
        if route == "/images/edits" and req.method == "POST":
            if req.headers.get("content-type", "").startswith("application/json"):
                return self.edit_json(req)
            return self.edit(req)
        return error(404, f"Invalid URL ({req.method} {path})")

    # ------------------------------------------------------------------
    def _azure(self, req: Request, path: str) -> Response:
        query = parse_qs(urlsplit(req.path).query)
        version = (query.get("api-version") or [None])[0]
        if "authorization" in req.headers:
            return error(401, "Azure OpenAI takes an API key in the api-key header; this "
                         "resource got an Authorization header", "401")
        if req.headers.get("api-key") not in self.keys:
            return error(401, "Access denied due to invalid subscription key or wrong API "
                         "endpoint. Make sure to provide a valid key for an active "
                         "subscription and use a correct regional API endpoint for your "
                         "resource.", "401")
        m = re.fullmatch(r"/openai/deployments/([^/]+)(/images/(?:generations|edits))", path)
        if m:
            if not version or not re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", version):
                return error(404, "Resource not found", "404")
            deployment: str | None = unquote(m.group(1))
            route, kind = m.group(2), "deployment"
        elif path.startswith("/openai/v1/"):
            if version not in (None, "preview", "latest"):
                return error(400, f"api-version {version} is not taken by the v1 API: "
                             "drop it, or pass preview or latest", "BadRequest")
            deployment, route, kind = None, path[len("/openai/v1"):], "v1"
        else:
            return error(404, "Resource not found", "404")
        if route == "/models" and req.method == "GET" and kind == "v1":
            return Response.json({"object": "list", "data": [
                {"id": m, "object": "model"} for m in MODELS]}, **self._headers())
        if route not in ("/images/generations", "/images/edits") or req.method != "POST":
            return error(404, "Resource not found", "404")
        ctype = req.headers.get("content-type", "")
        body: dict[str, Any] = {}
        if ctype.startswith("application/json"):
            got = json_object(req)
            if isinstance(got, Response):
                return got
            body = got
            deployment = deployment or body.get("model")
        else:
            fields = re.search(rb'name="model"\r\n\r\n([^\r]*)\r\n', req.body)
            deployment = deployment or (fields.group(1).decode() if fields else None)
        if not isinstance(deployment, str) or deployment not in self.deployments:
            return error(404, f"The API deployment {deployment} for this resource does not "
                         "exist. If you created the deployment within the last 5 minutes, "
                         "please wait a moment and try again.", "DeploymentNotFound")
        self.azure_routes.append((kind, deployment, version))
        real = self.deployments[deployment]
        # The deployment's real model answers, by its rules.
        if ctype.startswith("application/json"):
            body["model"] = real
            req = Request(req.method, req.path, req.headers, json.dumps(body).encode())
        else:
            req = Request(req.method, req.path, req.headers, re.sub(
                rb'(name="model"\r\n\r\n)[^\r]*(\r\n)',
                lambda mm: mm.group(1) + real.encode() + mm.group(2), req.body))
        if route == "/images/generations":
            if not ctype.startswith("application/json"):
                return error(400, "Content-Type must be application/json")
            return self.generate(body, req.headers.get("accept", ""))
        if ctype.startswith("application/json"):
            return self.edit_json(req)
        return self.edit(req)

    def _model(self, body: dict[str, Any]) -> tuple[str | None, Response | None]:
        model = body.get("model", "dall-e-2")
        if not isinstance(model, str):
            return None, error(400, "model must be a string", param="model")
        if self.mode == "truefoundry":
            if "/" not in model:
                return None, error(400, f"Model '{model}' must be ACCOUNT/MODEL", param="model")
            model = model.split("/", 1)[1]
        if self.mode == "yescale":
            if model not in ("flux-pro", "flux-dev", "dall-e-3"):
                return None, error(400, f"model {model} not available", "model_not_found")
        elif model not in MODELS:
            return None, error(404, f"The model '{model}' does not exist",
                               "model_not_found", "model")
        gone = SHUTDOWN.get(model)
        if (self.mode in ("openai", "azure") and gone and not self.keep_retired
                and (self.today or clock.today()) >= date.fromisoformat(gone)):
            return None, error(404, f"The model '{model}' was shut down on {gone}",
                               "model_not_found", "model")
        return model, None

    def check(self, body: dict[str, Any], fields: set[str], model: str) -> Response | None:
        fam = family(model)
        if self.mode == "yescale" and model != "dall-e-3":
            fields = {"prompt", "model", "n", "size"}
        for k in body:
            if k not in fields:
                return error(400, f"Unrecognized request argument supplied: {k}", param=k)
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return error(400, "Missing required parameter: 'prompt'.", param="prompt")
        if len(prompt) > PROMPT_MAX.get(fam, 32000):
            return error(400, f"'prompt' is too long: maximum {PROMPT_MAX.get(fam)}",
                         "string_above_max_length", "prompt")
        n = body.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
            return error(400, f"Invalid 'n': {n}", "invalid_value", "n")
        if fam == "dall-e-3" and n != 1:
            return error(400, "Invalid 'n': dall-e-3 only supports n=1.", "invalid_value", "n")
        size = body.get("size")
        if size is not None:
            if self.mode == "yescale" and model != "dall-e-3":
                ok = size in YESCALE_SIZES
            elif fam.startswith("gpt-image-2"):
                ok = size == "auto" or _free_size_ok(size)
            else:
                ok = size in SIZES.get(fam, set())
            if not ok:
                return error(400, f"Invalid value: '{size}'. Supported values are: "
                             f"{sorted(SIZES.get(fam, YESCALE_SIZES))}", "invalid_value", "size")
        gpt = fam.startswith("gpt-image")
        if gpt and "response_format" in body:
            return error(400, "Unknown parameter: 'response_format'.", "unknown_parameter",
                         "response_format")
        if not gpt:
            for k in ("output_format", "output_compression", "background", "moderation",
                      "stream", "partial_images", "input_fidelity"):
                if k in body:
                    return error(400, f"Unknown parameter: '{k}'.", "unknown_parameter", k)
        if "style" in body and fam != "dall-e-3":
            return error(400, "Unknown parameter: 'style'.", "unknown_parameter", "style")
        if "complexity" in body:
            if fam != "gpt-image-2.6":
                return error(400, "Unknown parameter: 'complexity'.", "unknown_parameter",
                             "complexity")
            if body["complexity"] not in ("low", "medium", "high"):
                return error(400, "Invalid value for 'complexity'", "invalid_value",
                             "complexity")
        allowed = QUALITY.get(fam, QUALITY["gpt-image"])
        if "quality" in body and body["quality"] not in allowed:
            return error(400, f"Invalid value for 'quality': {body['quality']}",
                         "invalid_value", "quality")
        if body.get("response_format", "url") not in ("url", "b64_json"):
            return error(400, "Invalid 'response_format'", "invalid_value", "response_format")
        fmt = body.get("output_format", "png")
        # SVG and animated GIF: gpt-image-2.6 generations only.
        vector = fam == "gpt-image-2.6" and fields is GEN_FIELDS
        if fmt not in ("png", "jpeg", "webp") + (("gif", "svg") if vector else ()):
            return error(400, f"Invalid 'output_format': {fmt}", "invalid_value",
                         "output_format")
        if "output_compression" in body:
            oc = body["output_compression"]
            if not isinstance(oc, int) or isinstance(oc, bool) or not 0 <= oc <= 100:
                return error(400, "Invalid 'output_compression': 0-100", "invalid_value",
                             "output_compression")
            if fmt not in ("jpeg", "webp"):
                return error(400, "'output_compression' is only supported for jpeg and webp",
                             "invalid_value", "output_compression")
        if body.get("background") == "transparent" and fmt not in ("png", "webp"):
            return error(400, "Transparent background requires png or webp output",
                         "invalid_value", "background")
        if "input_fidelity" in body:
            if body["input_fidelity"] not in ("high", "low"):
                return error(400, "Invalid 'input_fidelity'", "invalid_value", "input_fidelity")
            if model.startswith("gpt-image-1-mini"):
                return error(400, "input_fidelity is not supported for gpt-image-1-mini",
                             "unsupported_parameter", "input_fidelity")
        if "user" in body and not isinstance(body["user"], str):
            return error(400, "Invalid 'user'", "invalid_type", "user")
        if not 0 <= body.get("partial_images", 0) <= 3:
            return error(400, "Invalid 'partial_images'", "invalid_value", "partial_images")
        if "moderation_blocked" in prompt:
            return error(400, "Your request was rejected by the safety system.",
                         "moderation_blocked")
        return None

    def _image(self, body: dict[str, Any], index: int, fmt: str = "png") -> bytes:
        if self.fixed_image is not None:
            return self.fixed_image
        w, h = (int(x) for x in self._size(body).split("x"))
        if self.image_size:
            w, h = self.image_size
        color = color_for(f"{body.get('prompt')}/{next(self.ids)}", index)
        if fmt == "svg":
            return (f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/'
                    f'2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><rect '
                    f'width="{w}" height="{h}" fill="rgb{color}"/></svg>\n').encode()
        if fmt == "gif":
            return _animated_gif(w, h, color)
        data = png(w, h, color)
        return data if fmt == "png" else reencode(data, fmt)

    @staticmethod
    def _size(body: dict[str, Any]) -> str:
        size = body.get("size") or "auto"
        return "1024x1024" if size == "auto" else str(size)

    def _resolved(self, body: dict[str, Any], fmt: str) -> dict[str, Any]:
        """What the API reports it chose: `auto` resolved to a concrete value."""
        quality = body.get("quality") or "auto"
        background = body.get("background") or "auto"
        return {"background": "opaque" if background == "auto" else background,
                "output_format": fmt,
                "quality": "medium" if quality == "auto" else quality,
                "size": self._size(body)}

    def generate(self, body: dict[str, Any], accept: str = "") -> Response:
        model, bad = self._model(body)
        if bad:
            return bad
        assert model is not None
        bad = self.check(body, GEN_FIELDS, model)
        if bad:
            return bad
        return self.answer(body, model, "image_generation", accept)

    def answer(self, body: dict[str, Any], model: str, kind: str,
               accept: str = "text/event-stream") -> Response:
        fam = family(model)
        n = body.get("n", 1)
        fmt = body.get("output_format", "png")
        headers = self._headers()
        if self.mode == "truefoundry":
            headers["x-tfy-resolved-model"] = f"openai/{model}"
        # Negotiates on Accept: a stream goes only to a client that says it reads events.
        if body.get("stream") and "text/event-stream" in accept:
            return self.stream(body, model, n, fmt, kind, headers)
        items = []
        for i in range(n):
            data = self._image(body, i, fmt)
            as_url = (self.mode == "yescale" and model != "dall-e-3") or (
                not fam.startswith("gpt-image") and body.get("response_format", "url") == "url")
            if as_url:
                name = f"img{next(self.ids)}.png"
                self.files[name] = data
                item: dict[str, Any] = {"url": f"{self.server.url}/files/{name}"}
                if self.mode == "yescale":
                    item.update({"b64_json": None, "revised_prompt": None})
            else:
                item = {"b64_json": base64.b64encode(data).decode()}
            if fam == "dall-e-3":
                item["revised_prompt"] = "A revised " + body["prompt"]
            items.append(item)
        out: dict[str, Any] = {"created": int(time.time()), "data": items}
        if fam.startswith("gpt-image"):
            out.update(self._resolved(body, fmt))
            out["usage"] = {"total_tokens": 100 * n, "input_tokens": 10 * n,
                            "output_tokens": 90 * n,
                            "input_tokens_details": {"text_tokens": 10 * n, "image_tokens": 0}}
            if fam == "gpt-image-2.6":
                out["generation_id"] = f"gen_{next(self.ids):06d}"
                if fmt == "svg":
                    out["svg_usage"] = {"elements": n}
        return Response.json(out, **headers)

    def stream(self, body: dict[str, Any], model: str, n: int, fmt: str, kind: str,
               headers: dict[str, str]) -> Response:
        partials = body.get("partial_images", 0)
        resolved = self._resolved(body, fmt)

        def events() -> Any:
            for i in range(n):
                for k in range(partials):
                    frame = {"type": f"{kind}.partial_image", "partial_image_index": k,
                             "b64_json": base64.b64encode(self._image(body, 100 + k, fmt))
                             .decode(), "created_at": int(time.time()), **resolved}
                    yield f"event: {kind}.partial_image\ndata: {json.dumps(frame)}\n\n".encode()
                frame = {"type": f"{kind}.completed",
                         "b64_json": base64.b64encode(self._image(body, i, fmt)).decode(),
                         "created_at": int(time.time()), **resolved,
                         "usage": {"total_tokens": 100, "input_tokens": 10,
                                   "output_tokens": 90,
                                   "input_tokens_details": {"text_tokens": 10,
                                                            "image_tokens": 0}}}
                yield f"event: {kind}.completed\ndata: {json.dumps(frame)}\n\n".encode()

        return Response(200, events(), {"content-type": "text/event-stream", **headers})

    def edit_json(self, req: Request) -> Response:
        """The JSON edit body: `images` as [{"image_url"} | {"file_id"}], GPT image models
        only (dall-e-2 edits stay multipart)."""
        body = json_object(req)
        if isinstance(body, Response):
            return body
        model, bad = self._model(body)
        if bad:
            return bad
        assert model is not None
        if not family(model).startswith("gpt-image"):
            return error(400, "JSON edits support GPT image models only", "invalid_value",
                         "model")
        bad = self.check(body, JSON_EDIT_FIELDS, model)
        if bad:
            return bad
        if body.get("size", "auto") not in JSON_EDIT_SIZES:
            return error(400, f"Invalid value: '{body['size']}'. Supported values are: "
                         f"{list(JSON_EDIT_SIZES)}", "invalid_value", "size")
        if body.get("quality", "auto") not in JSON_EDIT_QUALITY:
            return error(400, f"Invalid value for 'quality': {body['quality']}",
                         "invalid_value", "quality")
        images = body.get("images")
        if not isinstance(images, list) or not images:
            return error(400, "Missing required parameter: 'images'.", param="images")
        if len(images) > MAX_IMAGES:
            return error(400, f"At most {MAX_IMAGES} images", "invalid_value", "images")
        refs = images + ([body["mask"]] if "mask" in body else [])
        for ref in refs:
            if not isinstance(ref, dict) or set(ref) - {"image_url", "file_id"} or \
                    len(ref) != 1:
                return error(400, "Each image must be {image_url} or {file_id}",
                             "invalid_value", "images")
            url = ref.get("image_url")
            if url is not None and not image_url_ok(url):
                return error(400, f"Invalid image_url: {str(url)[:40]}", "invalid_value",
                             "images")
        self.last_json_images = [r.get("image_url") or r.get("file_id") for r in images]
        return self.answer(body, model, "image_edit", req.headers.get("accept", ""))

    def edit(self, req: Request) -> Response:
        from tests.fakes.multipart import parse_multipart

        ctype = req.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            return error(400, "Edits need multipart/form-data", "invalid_request")
        try:
            fields, files = parse_multipart(req.body, ctype)
        except ValueError as exc:
            return error(400, f"Bad multipart body: {exc}")
        body: dict[str, Any] = {}
        for k, v in fields.items():
            body[k] = int(v) if k in ("n", "partial_images", "output_compression") else v
        if "stream" in body:
            body["stream"] = body["stream"] == "true"
        model, bad = self._model(body)
        if bad:
            return bad
        assert model is not None
        bad = self.check(body, EDIT_FIELDS, model)
        if bad:
            return bad
        return self.check_edit_files(files, model) or self.answer(
            body, model, "image_edit", req.headers.get("accept", ""))

    def check_edit_files(self, files: dict[str, list[tuple[str, str, bytes]]],
                         model: str) -> Response | None:
        import io

        from PIL import Image

        fam = family(model)
        images = files.get("image", []) + files.get("image[]", [])
        if not images:
            return error(400, "Missing required parameter: 'image'.", param="image")
        if len(images) > MAX_IMAGES:
            return error(400, f"At most {MAX_IMAGES} images", "invalid_value", "image")
        if len(images) > 1 and not fam.startswith("gpt-image"):
            return error(400, "Only one image is accepted for this model", param="image")
        sizes = []
        for _name, ctype, data in images:
            if ctype not in ("image/png", "image/jpeg", "image/webp"):
                return error(400, f"Invalid image content type {ctype}", param="image")
            with Image.open(io.BytesIO(data)) as im:
                sizes.append(im.size)
                bad = ctype != "image/png" or im.size[0] != im.size[1] or len(data) >= 4 << 20
                if fam == "dall-e-2" and bad:
                    return error(400, "dall-e-2 needs one square PNG under 4 MB", param="image")
        masks = files.get("mask", [])
        if masks:
            _, mtype, mdata = masks[0]
            if mtype != "image/png":
                return error(400, "mask must be a PNG", param="mask")
            with Image.open(io.BytesIO(mdata)) as m:
                if m.mode != "RGBA":
                    return error(400, "Invalid mask: it must have an alpha channel",
                                 param="mask")
                if m.size != sizes[0]:
                    return error(400, "Invalid mask: it must be the same size as the image",
                                 param="mask")
                self.last_mask_alpha = m.getchannel("A").tobytes()
        return None


def _free_size_ok(size: str) -> bool:
    try:
        w, h = (int(x) for x in size.split("x"))
    except ValueError:
        return False
    return (w % 16 == 0 and h % 16 == 0 and max(w, h) <= 3840 and w * h <= 3840 * 2160
            and max(w, h) / min(w, h) <= 3)


def image_url_ok(url: Any) -> bool:
    """A fully qualified http(s) URL, or a base64 data URL of an image."""
    if not isinstance(url, str):
        return False
    if url.startswith(("https://", "http://")):
        return True
    m = re.fullmatch(r"data:image/(png|jpeg|webp);base64,([A-Za-z0-9+/=]+)", url)
    if not m:
        return False
    try:
        data = base64.b64decode(m.group(2), validate=True)
    except ValueError:
        return False
    return data[:8] == b"\x89PNG\r\n\x1a\n" or data[:3] == b"\xff\xd8\xff" or \
        data[8:12] == b"WEBP"


def _animated_gif(w: int, h: int, color: tuple[int, int, int]) -> bytes:
    import io

    from PIL import Image

    frames = [Image.new("RGB", (w, h), color), Image.new("RGB", (w, h), color[::-1])]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100,
                   loop=0)
    return buf.getvalue()
