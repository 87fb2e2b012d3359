"""A strict fake of the Gemini API's native image generation (generateContent),
written from ai.google.dev (image-generation guide, API reference, troubleshooting)
and googleapis/python-genai's types.py, read 2026-12-05.

It refuses what Google refuses, in Google's error shape
{"error": {"code", "message", "status"}}: no key (403 PERMISSION_DENIED), a key it does
not know (400 INVALID_ARGUMENT, reason API_KEY_INVALID), a Bearer header (401
UNAUTHENTICATED: Google takes it for an OAuth token), unknown fields at the top level,
in generationConfig or imageConfig, a ratio or imageSize the model does not take, a
shut-down or unknown model (404 NOT_FOUND), image data that is not base64 or does not
match its mimeType. Images are drawn at 1/16 of the documented size (fast).

`mode` makes it answer otherwise: "text+image" (a text part beside the image),
"thoughts" (thought parts, an interim image among them, before the final image),
"text_only", "block" (promptFeedback.blockReason), or a finishReason such as
"IMAGE_SAFETY" (a candidate without image). `server.script` queues raw answers.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
from typing import Any

from tests.fakes.server import Dialect, Request, Response, color_for, png

RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
WIDE = ("1:4", "4:1", "1:8", "8:1")
# (ratios, imageSize values) per model that generateContent serves.
MODELS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "gemini-nano-banana-2.1": (RATIOS + WIDE, ("1K", "2K", "4K")),
    "gemini-3-pro-image": (RATIOS, ("1K", "2K", "4K")),
    "gemini-3.1-flash-lite-image": (RATIOS, ("1K",)),
}
# The image-generation guide's 1K column; 2K and 4K are twice and four times it.
ONE_K = {"1:1": (1024, 1024), "2:3": (848, 1264), "3:2": (1264, 848), "3:4": (896, 1200),
         "4:3": (1200, 896), "4:5": (928, 1152), "5:4": (1152, 928), "9:16": (768, 1376),
         "16:9": (1376, 768), "21:9": (1584, 672)}
TOP = {"contents", "generationConfig", "safetySettings", "systemInstruction", "tools",
       "toolConfig", "cachedContent"}
# GenerationConfig (types.py), as the REST API spells it.
CONFIG = {"stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema",
          "responseModalities", "candidateCount", "maxOutputTokens", "temperature", "topP",
          "topK", "seed", "presencePenalty", "frequencyPenalty", "responseLogprobs",
          "logprobs", "enableEnhancedCivicAnswers", "speechConfig", "thinkingConfig",
          "imageConfig", "mediaResolution"}
IMAGE_CONFIG = {"aspectRatio", "imageSize", "personGeneration"}
MIME = {"image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8", "image/webp": b"RIFF"}


def error(code: int, status: str, message: str, reason: str | None = None) -> Response:
    err: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                           "reason": reason, "domain": "googleapis.com"}]
    return Response.json({"error": err}, code)


def bad(message: str) -> Response:
    return error(400, "INVALID_ARGUMENT", message)


class GeminiFake(Dialect):
    def __init__(self, key: str = "AIza-test-key-5") -> None:
        self.key = key
        super().__init__()
        self.mode = "image"
        self.ids = itertools.count(1)

    # -- routing ---------------------------------------------------------
    def handle(self, req: Request) -> Response:
        if req.headers.get("authorization", "").lower().startswith("bearer"):
            return error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                         "credentials. Expected OAuth 2 access token, login cookie or other "
                         "valid authentication credential.")
        key = req.headers.get("x-goog-api-key")
        if not key:
            return error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered "
                         "callers (callers without established identity). Please use API Key "
                         "or other form of API consumer identity to call this API.")
        if key != self.key:
            return error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid "
                         "API key.", reason="API_KEY_INVALID")
        path, _, query = req.path.partition("?")
        if not path.startswith("/v1beta/models"):
            return error(404, "NOT_FOUND", "Not found")
        if path == "/v1beta/models" and req.method == "GET":
            return self.listing(query)
        name, _, method = path.removeprefix("/v1beta/models/").partition(":")
        if not method and req.method == "GET":
            if name not in MODELS:
                return error(404, "NOT_FOUND", f"models/{name} is not found for API version "
                             "v1beta")
            return Response.json(self.model_info(name))
        if method != "generateContent" or req.method != "POST":
            return error(404, "NOT_FOUND", "Not found")
        if name not in MODELS:
            return error(404, "NOT_FOUND", f"models/{name} is not found for API version "
                         "v1beta, or is not supported for generateContent. Call ListModels "
                         "to see the list of available models and their supported methods.")
        try:
            body = req.json()
        except ValueError:
            return bad("Invalid JSON payload received.")
        return self.generate(name, body)

    def model_info(self, name: str) -> dict[str, Any]:
        return {"name": f"models/{name}", "displayName": name, "version": "001",
                "supportedGenerationMethods": ["generateContent", "countTokens"]}

    def listing(self, query: str) -> Response:
        models = [self.model_info(n) for n in MODELS]
        models.append({"name": "models/gemini-3.8-flash", "displayName": "Gemini 3.8 Flash",
                       "supportedGenerationMethods": ["generateContent", "countTokens"]})
        models.append({"name": "models/gemini-embedding-2",
                       "supportedGenerationMethods": ["embedContent"]})
        if "pageToken=p2" in query:
            return Response.json({"models": models[2:]})
        return Response.json({"models": models[:2], "nextPageToken": "p2"})

    # -- generateContent -------------------------------------------------
    def generate(self, name: str, body: Any) -> Response:
        if not isinstance(body, dict):
            return bad("Invalid JSON payload received.")
        for k in body:
            if k not in TOP:
                return bad(f'Invalid JSON payload received. Unknown name "{k}": Cannot find '
                           "field.")
        ratios, tiers = MODELS[name]
        config = body.get("generationConfig") or {}
        for k in config:
            if k not in CONFIG:
                return bad(f'Invalid JSON payload received. Unknown name "{k}" at '
                           "'generation_config': Cannot find field.")
        image = config.get("imageConfig") or {}
        for k in image:
            if k not in IMAGE_CONFIG:
                return bad(f'Invalid JSON payload received. Unknown name "{k}" at '
                           "'generation_config.image_config': Cannot find field.")
        ratio = image.get("aspectRatio", "1:1")
        if ratio not in ratios:
            return bad(f"Unsupported aspect ratio: {ratio} for model {name}.")
        tier = image.get("imageSize", "1K")
        if tier not in tiers:
            return bad(f"Unsupported image size: {tier} for model {name}.")
        modalities = config.get("responseModalities", ["TEXT", "IMAGE"])
        if not set(modalities) <= {"TEXT", "IMAGE"}:
            return bad("Unsupported response modality.")
        if "seed" in config and not isinstance(config["seed"], int):
            return bad("Invalid value at 'generation_config.seed' (TYPE_INT32)")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return bad("* GenerateContentRequest.contents: contents is not specified")
        prompt = ""
        images = 0
        for ci, content in enumerate(contents):
            for pi, part in enumerate(content.get("parts") or []):
                if "text" in part:
                    prompt += part["text"]
                    continue
                inline = part.get("inlineData")
                if not isinstance(inline, dict) or set(inline) != {"mimeType", "data"}:
                    return bad(f"Invalid value at 'contents[{ci}].parts[{pi}]'")
                try:
                    data = base64.b64decode(inline["data"], validate=True)
                except (binascii.Error, ValueError):
                    return bad(f"Invalid value at 'contents[{ci}].parts[{pi}].inline_data.data'"
                               " (TYPE_BYTES), Base64 decoding failed")
                magic = MIME.get(inline["mimeType"])
                if magic is None or not data.startswith(magic):
                    return bad(f"Unable to process input image: {inline['mimeType']} does "
                               "not match the data.")
                images += 1
        if images > 14:
            return bad("Too many input images: at most 14.")
        if not prompt.strip():
            return bad("* GenerateContentRequest.contents[0].parts: text is empty")
        return Response.json(self.answer(name, prompt, ratio, tier, modalities))

    def answer(self, name: str, prompt: str, ratio: str, tier: str,
               modalities: list[str]) -> dict[str, Any]:
        usage = {"promptTokenCount": 12, "candidatesTokenCount": 1290,
                 "totalTokenCount": 1302,
                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}],
                 "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290}]}
        if self.mode == "block":
            return {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                    "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12}}
        parts: list[dict[str, Any]] = []
        if self.mode in ("text_only",) or "IMAGE" not in modalities:
            parts.append({"text": "I can describe it, but here is no picture."})
            return self._done(name, parts, "STOP", usage)
        if self.mode not in ("image", "text+image", "thoughts"):
            return self._done(name, [], self.mode, usage)  # a finishReason, no image
        if self.mode == "thoughts":
            parts.append({"text": "Planning the composition...", "thought": True})
            parts.append({"inlineData": {"mimeType": "image/png", "data": self._b64(
                ratio, tier, prompt, 99)}, "thought": True})
        if self.mode == "text+image":
            parts.append({"text": f"Here is {prompt}."})
        parts.append({"inlineData": {"mimeType": "image/png",
                                     "data": self._b64(ratio, tier, prompt, next(self.ids))}})
        return self._done(name, parts, "STOP", usage)

    def _done(self, name: str, parts: list[dict[str, Any]], finish: str,
              usage: dict[str, Any]) -> dict[str, Any]:
        cand: dict[str, Any] = {"finishReason": finish, "index": 0}
        if parts:
            cand["content"] = {"role": "model", "parts": parts}
        return {"candidates": [cand], "usageMetadata": usage, "modelVersion": name,
                "responseId": f"resp-{next(self.ids)}"}

    def _b64(self, ratio: str, tier: str, prompt: str, i: int) -> str:
        w, h = size_of(ratio, tier)
        return base64.b64encode(png(w // 16, h // 16, color_for(prompt, i))).decode()


def size_of(ratio: str, tier: str) -> tuple[int, int]:
    scale = {"1K": 1, "2K": 2, "4K": 4}[tier]
    if ratio in ONE_K:
        w, h = ONE_K[ratio]
    else:  # 1:4 ... 8:1: about a megapixel at 1K
        a, b = (int(x) for x in ratio.split(":"))
        h = int(math.sqrt(1024 * 1024 * b / a)) // 16 * 16
        w = int(h * a / b) // 16 * 16
    return w * scale, h * scale
