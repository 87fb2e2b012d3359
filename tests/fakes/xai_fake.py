"""A strict fake of xAI's Images API (docs/providers/xai.md has the sources, read
2026-12-05).

- `POST /v1/images/generations`, JSON only, Bearer key: prompt (required), model, n
  (1-10), aspect_ratio (the documented names or auto), resolution (1k, 2k),
  response_format (url, b64_json), user. `size`, `quality` and `style` are refused
  as xAI refuses them ("Argument not supported: size"), as is any unknown field.
- `POST /v1/images/edits`, JSON only (a multipart body is refused, as xAI refuses
  OpenAI SDK's images.edit): `image: {url}` or `images: [{url}, ...]` (not both, at
  most 3), each a public http(s) URL or a base64 data URL of an image.
- Answers `{"data": [{"url", "mime_type", "revised_prompt"}], "usage":
  {"cost_in_usd_ticks"}}`; URLs point at a second server (`images`) that refuses a
  request carrying any key. The image's pixel size follows the ratio and resolution
  (1k: 32 px on the short side, 2k: 64), small for speed.
- Errors in xAI's shape: `{"code": "...", "error": "..."}`.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

from tests.fakes.openai_fake import image_url_ok
from tests.fakes.server import Dialect, FakeServer, Request, Response, color_for, png

KEY = "xai-test-key-456"
MODELS = ("grok-imagine-image", "grok-imagine-image-quality", "grok-imagine-image-pro")
RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9", "2:3", "3:2", "9:19.5", "19.5:9", "9:20",
          "20:9", "1:2", "2:1", "auto")
GEN_FIELDS = {"prompt", "model", "n", "aspect_ratio", "resolution", "response_format", "user"}
EDIT_FIELDS = GEN_FIELDS | {"image", "images", "mask"}
INVALID = "Client specified an invalid argument"


def error(status: int, message: str, code: str = INVALID) -> Response:
    return Response.json({"code": code, "error": message}, status)


class XAIFake(Dialect):
    path_prefix = "/v1"

    def __init__(self, key: str = KEY) -> None:
        self.key = key
        self.ids = itertools.count(1)
        self.files: dict[str, bytes] = {}
        self.images = FakeServer(self.serve_image)  # the image host (imgen.x.ai)
        super().__init__()

    def start(self) -> XAIFake:
        self.images.start()
        return super().start()

    def stop(self) -> None:
        self.images.stop()
        super().stop()

    # ------------------------------------------------------------------
    def serve_image(self, req: Request) -> Response:
        if any(h in req.headers for h in ("authorization", "api-key", "x-api-key")):
            return Response(403, b"image host got a key", {"content-type": "text/plain"})
        data = self.files.get(req.path.lstrip("/"))
        if data is None:
            return Response(404, b"not found", {"content-type": "text/plain"})
        return Response(200, data, {"content-type": "image/png"})

    def handle(self, req: Request) -> Response:
        resp = self._route(req)
        resp.headers.setdefault("x-request-id", f"xreq-{next(self.ids):05d}")
        return resp

    def _route(self, req: Request) -> Response:
        path = req.path.split("?")[0]
        if req.headers.get("authorization") != f"Bearer {self.key}":
            # (xAI's status for a wrong key is not documented: 401 as OpenAI's.)
            return error(401, "Incorrect API key provided: xa***. You can obtain an API key "
                         "from https://console.x.ai.", "Incorrect API key provided")
        if path == "/v1/models" and req.method == "GET":
            return Response.json({"object": "list", "data": [
                {"id": m, "object": "model", "owned_by": "xai"}
                for m in (*MODELS, "grok-4")]})
        if path not in ("/v1/images/generations", "/v1/images/edits") or \
                req.method != "POST":
            return error(404, f"No route for {req.method} {path}", "Not found")
        if not req.headers.get("content-type", "").startswith("application/json"):
            return error(415, "Unsupported content type: the images API takes "
                         "application/json", "Unsupported media type")
        try:
            body = req.json()
        except ValueError:
            return error(400, "Failed to deserialize the JSON body")
        if not isinstance(body, dict):
            return error(422, "Failed to deserialize the JSON body into the target type")
        edit = path.endswith("/edits")
        bad = self.check(body, EDIT_FIELDS if edit else GEN_FIELDS)
        if bad is None and edit:
            bad = self.check_edit(body)
        if bad is not None:
            return bad
        if "blocked" in body["prompt"]:
            return Response.json({"data": [], "block_reason": "prohibited_content",
                                  "usage": {"cost_in_usd_ticks": 0}})
        return self.answer(body)

    def check(self, body: dict[str, Any], fields: set[str]) -> Response | None:
        for k in body:
            if k in ("size", "quality", "style"):
                return error(400, f"Argument not supported: {k}")
            if k not in fields:
                return error(422, f"Failed to deserialize the JSON body into the target "
                             f"type: unknown field `{k}`")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return error(422, "missing field `prompt`")
        model = body.get("model", "grok-imagine-image")
        if model not in MODELS:
            return error(404, f"The model {model} does not exist or your team does not "
                         "have access to it.", "Some requested entity was not found")
        n = body.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
            return error(400, f"n must be between 1 and 10, got {n}")
        if body.get("aspect_ratio", "auto") not in RATIOS:
            return error(400, f"Invalid aspect_ratio: {body['aspect_ratio']}")
        if body.get("resolution", "1k") not in ("1k", "2k"):
            return error(400, f"Invalid resolution: {body['resolution']}")
        if body.get("response_format", "url") not in ("url", "b64_json"):
            return error(400, "Invalid response_format")
        return None

    def check_edit(self, body: dict[str, Any]) -> Response | None:
        if ("image" in body) == ("images" in body):
            return error(400, "Provide exactly one of `image` or `images`")
        refs = [body["image"]] if "image" in body else body["images"]
        if not isinstance(refs, list) or not 1 <= len(refs) <= 3:
            return error(400, "images takes 1 to 3 images")
        for ref in refs + ([body["mask"]] if "mask" in body else []):
            if not isinstance(ref, dict) or set(ref) - {"url", "type"} or \
                    ref.get("type", "image_url") != "image_url" or \
                    not _url_ok(ref.get("url")):
                return error(400, "Each image is {url: a public URL or a base64 data URI}")
        self.last_edit_refs = [r["url"] for r in refs]
        return None

    def answer(self, body: dict[str, Any]) -> Response:
        n = body.get("n", 1)
        ratio = body.get("aspect_ratio", "auto")
        w, h = (float(x) for x in (ratio if ratio != "auto" else "1:1").split(":"))
        short = 64 if body.get("resolution") == "2k" else 32
        size = (round(short * w / h), short) if w >= h else (short, round(short * h / w))
        items = []
        for i in range(n):
            data = png(*size, color_for(body["prompt"], next(self.ids)))
            if body.get("response_format") == "b64_json":
                items.append({"b64_json": base64.b64encode(data).decode(),
                              "mime_type": "image/png", "revised_prompt": ""})
                continue
            name = f"xai-tmp-imgen-{next(self.ids)}-{i}.png"
            self.files[name] = data
            items.append({"url": f"{self.images.url}/{name}", "mime_type": "image/png",
                          "revised_prompt": ""})
        return Response.json({"data": items, "block_reason": None,
                              "usage": {"cost_in_usd_ticks": 200_000_000 * n}})


def _url_ok(url: Any) -> bool:
    """As OpenAI's fake: an http(s) URL or a base64 data URL of a PNG, JPEG or WebP."""
    return image_url_ok(url)
