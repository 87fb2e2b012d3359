"""A strict fake of Nebula Block's serverless image API (seed 001)."""

from __future__ import annotations

import base64
import binascii
import io
import itertools
from typing import Any

from tests.fakes.server import Dialect, Request, Response, color_for, png

SDXL = "stabilityai/stable-diffusion-xl-base-1.0"
SCHNELL = "black-forest-labs/FLUX.1-schnell"
FILL = "black-forest-labs/FLUX.1-Fill-dev"
COMMON = {"model", "prompt", "num_steps", "guidance_scale", "width", "height"}
FIELDS = {SDXL: COMMON | {"negative_prompt"}, SCHNELL: COMMON | {"seed"},
          FILL: COMMON | {"image", "mask", "seed"}}


def fail(message: str, status: int = 400) -> Response:
    return Response.json({"status": "failed", "message": message, "data": None}, status)


class NebulaFake(Dialect):
    path_prefix = "/api/v1"
    def __init__(self, key: str = "neb-key-7") -> None:
        self.key = key
        super().__init__()
        self.ids = itertools.count(1)
        self.last_inpaint: dict[str, Any] = {}


    def handle(self, req: Request) -> Response:
        path = req.path.split("?")[0]
        if req.headers.get("authorization") != f"Bearer {self.key}":
            return Response.json({"detail": "Invalid token"}, 401)
        if path == "/api/v1/serverless/models" and req.method == "GET":
            models = [{"model_name": m, "model_alias": m.split("/")[1], "model_type": "image",
                       "price": 0.01} for m in FIELDS]
            models.append({"model_name": "meta-llama/Llama-3.3-70B", "model_alias": "llama",
                           "model_type": "text", "price": 0.1})
            return Response.json({"data": {"models": models}, "status": "success",
                                  "message": ""})
        if path != "/api/v1/images/generation":
            return Response.json({"detail": "Not Found"}, 404)
        if req.method != "POST":
            return Response.json({"detail": "Method Not Allowed"}, 405)
        try:
            body = req.json()
        except ValueError:
            return fail("invalid JSON", 422)
        model = body.get("model")
        if model not in FIELDS:
            return fail(f"model {model} not found", 404)
        for k in body:
            if k not in FIELDS[model]:
                return fail(f"unexpected field {k} for {model}", 422)
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            return fail("prompt is required", 422)
        w, h = body.get("width", 1024), body.get("height", 1024)
        if not all(isinstance(v, int) and 64 <= v <= 2048 for v in (w, h)):
            return fail("width/height out of range", 422)
        if model != SDXL and (w % 16 or h % 16):
            return fail("width and height must be multiples of 16", 422)
        if model == FILL:
            err = self.check_inpaint(body, w, h)
            if err:
                return err
        if "nsfw" in body["prompt"]:
            return Response.json({"status": "failed", "message": "Prompt flagged by safety "
                                  "checker", "data": []}, 200)
        data = png(w, h, color_for(body["prompt"], next(self.ids)))
        return Response.json({"model": model, "object": "list", "data": [
            {"timings": {"inference": 1.234567}, "index": 0,
             "b64_json": base64.b64encode(data).decode()}],
            "message": "Image generated successfully", "status": "success"})

    def check_inpaint(self, body: dict[str, Any], w: int, h: int) -> Response | None:
        from PIL import Image

        sizes = {}
        for name in ("image", "mask"):
            if name not in body:
                return fail(f"{name} is required for {FILL}", 422)
            try:
                raw = base64.b64decode(body[name], validate=True)
                with Image.open(io.BytesIO(raw)) as im:
                    im.load()
                    sizes[name] = im.size
                    self.last_inpaint[name] = im.copy()
            except (binascii.Error, OSError, ValueError):
                return fail(f"{name} is not a base64 image", 422)
        if sizes["image"] != sizes["mask"] or sizes["image"] != (w, h):
            return fail(f"image {sizes['image']}, mask {sizes['mask']} and {w}x{h} differ", 422)
        return None
