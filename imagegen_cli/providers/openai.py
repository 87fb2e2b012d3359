"""The OpenAI Images dialect: OpenAI itself, Azure OpenAI and the gateways that speak
it (TrueFoundry, YEScale, ...).

Owns `OpenAIProvider`: validating a request against the model's rules, building
its calls (generation, multipart or JSON edit), sending them and reading the
answer, streamed or whole. Per provider table: the header the key goes in
(`key_header`: Azure's `api-key`), Azure's deployment path (`api_version`) and the
user's own model names (`models`: a deployment -> the real model, whose rules,
lifecycle and prices apply). The model table lives in openai_models.py, edit inputs
in openai_edits.py, reading answers in openai_answers.py; their names are
re-exported here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from imagegen_cli import providers as api
from imagegen_cli.files.images import sniff
from imagegen_cli.files.masks import openai_mask
from imagegen_cli.providers import openai_lifecycle as lifecycle

# `NAME`: re-exported, callers have always found these here.
from imagegen_cli.providers.openai_answers import (
    add_usage,
    decode_b64,
    parse_images,
    resolved_fields,
)
from imagegen_cli.providers.openai_edits import (
    dalle2_edit_inputs,
    data_url,
    downloaded_inputs,
    form_value,
)
from imagegen_cli.providers.openai_models import (
    FAMILY_CAPS,
    GENERATION_ONLY_FORMATS,
    NEWEST,
    UNKNOWN,
    YESCALE_FLUX,
    family,
    is_gpt_image,
)
from imagegen_cli.transport.classify import body_errors
from imagegen_cli.transport.sse import iter_sse

# image_edit_params.py: each image "less than 50MB".
MAX_EDIT_IMAGE_BYTES = 50 * 1024 * 1024


class OpenAIProvider(api.Provider):
    type_name = "openai"
    lists_models_live = True

    def _is_yescale(self) -> bool:
        return self.cfg.name == "yescale" or "yescale" in (self.cfg.base_url or "")

    def real(self, model: str | None) -> str | None:
        """The real model behind MODEL (a deployment named in `models`), else MODEL."""
        return self.cfg.real_model(model)

    def _is_azure(self) -> bool:
        host = (urlsplit(self.cfg.base_url or "").hostname or "").lower()
        return self.cfg.name == "azure" or host.endswith((".openai.azure.com",
                                                          ".cognitiveservices.azure.com"))

    def offers_batch_api(self) -> bool:
        """OpenAI's own API (api.openai.com) offers the Batch API for images since
        2026-02-10 (openai-python b13d6fe9, batch_create_params.py); a gateway or a
        proxy in front of it says so with `batch_api = true` in its table, and
        `batch_api = false` turns it off. Azure's batches are another API."""
        if self.cfg.batch_api is not None:
            return self.cfg.batch_api and not self._is_azure()
        host = (urlsplit(self.cfg.base_url or "https://api.openai.com/v1").hostname or "")
        return host.lower() == "api.openai.com" and not self._is_azure()

    def capabilities(self, model: str | None) -> api.Capabilities:
        caps = FAMILY_CAPS.get(family(self.real(model)))
        if caps is not None:
            return caps
        if self._is_yescale():
            return YESCALE_FLUX
        return UNKNOWN

    def known_models(self) -> list[str]:
        if self.cfg.models:
            return list(self.cfg.models)  # the user's deployments
        if self._is_azure():
            return [self.cfg.model] if self.cfg.model else []
        if self._is_yescale():
            return ["flux-pro", "dall-e-3"]
        if self.cfg.name == "truefoundry":
            return [self.cfg.model] if self.cfg.model else []

        # What one can still call: shut-down models are left out.
        return lifecycle.current()

    def model_status(self, model: str) -> str | None:

        entry = lifecycle.lookup(self.real(model))
        return entry.describe() if entry else None

    def model_lifecycle(self, model: str) -> dict[str, Any] | None:

        entry = lifecycle.lookup(self.real(model))
        return entry.as_json() if entry else None

    def model_table_read(self) -> str | None:

        return lifecycle.read_on()

    def base(self) -> str:
        if not self.cfg.base_url and self._is_azure():
            raise api.ConfigError(
                f"Provider {self.name} needs your resource's endpoint: set "
                "AZURE_OPENAI_ENDPOINT=https://RESOURCE.openai.azure.com (or run `imagegen "
                f"config set providers.{self.name}.base_url "
                "https://RESOURCE.openai.azure.com/openai/v1`)")
        return api.check_base_url(self.cfg.base_url or "https://api.openai.com/v1", self.name)

    def url(self, route: str, deployment: str | None = None) -> str:
        """ROUTE ('/images/generations') under the base URL. With `api_version`, Azure's
        deployment path as openai-python's lib/azure.py builds it:
        {endpoint}/openai/deployments/{deployment}{route}?api-version=V (a base ending in
        /openai/v1 loses its /v1); 'preview' and 'latest' are the v1 API's own opt-ins
        (Microsoft Learn, API version lifecycle), sent on the v1 path."""
        base, version = self.base(), self.cfg.api_version
        if not version:
            return base + route
        query = f"?api-version={quote(version, safe='')}"
        if version in ("preview", "latest"):
            return base + route + query
        root = base[:-3] if base.endswith("/openai/v1") else base
        if deployment and "/deployments/" not in root:
            root += f"/deployments/{quote(deployment, safe='')}"
        return root + route + query

    def headers(self, key: str | None, *, stream: bool = False) -> dict[str, str]:
        # A server that negotiates on Accept answers a stream request with JSON unless
        # the client says it reads events.
        h = {"content-type": "application/json",
             "accept": "text/event-stream" if stream else "application/json"}
        if key:
            # Azure takes the key itself in `api-key` (lib/azure.py `_auth_headers`);
            # Authorization carries it as a Bearer token.
            header = self.cfg.key_header or "authorization"
            h[header] = f"Bearer {key}" if header == "authorization" else key
        return h

    def base_notes(self) -> tuple[list[str], list[str]]:
        """(notices, warnings) about where requests go: a base URL taken from the
        environment is named; a key sent over plain http off this machine is warned of."""
        notices, warnings = [], []
        base = self.base()
        if self.cfg.base_url_env:
            notices.append(f"{self.name}: using {self.cfg.base_url_env} (requests go to "
                           f"{base})")
        parts = urlsplit(base)
        if parts.scheme == "http" and not _loopback(parts.hostname or ""):
            warnings.append(f"{self.name}: {base} is plain http: the key and prompts travel "
                            "unencrypted; use https unless that network is yours")
        return notices, warnings

    def body(self, req: api.ImageRequest) -> dict[str, Any]:
        fam = family(self.real(req.model))
        body: dict[str, Any] = {"model": req.model, "prompt": req.prompt, "n": req.n}
        for field in ("size", "quality", "style", "background", "moderation", "user",
                      "output_compression", "complexity"):
            value = getattr(req, field)
            if value is not None:
                body[field] = value
        if req.input_fidelity is not None and req.images:
            body["input_fidelity"] = req.input_fidelity
        if is_gpt_image(fam):
            if req.output_format:
                body["output_format"] = req.output_format
            if req.stream:
                body["stream"] = True
                if req.partial_images is not None:
                    body["partial_images"] = req.partial_images
        elif fam in ("dall-e-2", "dall-e-3"):
            # dall-e URLs expire within the hour: ask for the bytes themselves.
            body["response_format"] = "b64_json"
        return api.param_merge(body, req.params)

    def validate(self, req: api.ImageRequest, *, inpaint: bool = False) -> api.ImageRequest:

        if "stream" in req.params:
            # The answer would be events parsed as JSON: --stream reads them.
            raise api.UsageError("--param stream=... is not allowed: pass --stream instead")
        req = self.resolve_model(req, inpaint=inpaint)
        real = self.real(req.model)
        # Exit 2 if shut down on OpenAI; on Azure too, and wherever the user has said
        # which real model a deployment is (its lifecycle is that model's).
        warning = lifecycle.check(real, self.base(), provider=self.name,
                                  first_party=self._is_azure() or real != req.model)
        notices, warnings = self.base_notes()
        for text in [warning, *warnings]:
            if text and text not in req.warnings:
                req = req.with_(warnings=[*req.warnings, text])
        req = req.with_(notices=[*req.notices, *(n for n in notices if n not in req.notices)])
        fam = family(real)
        if fam == "gpt-image-next":
            req = req.with_(notices=[*req.notices, (
                f"{req.model} is not in imagegen's model table: using {NEWEST}'s rules "
                "(the API has the last word)")])
        req = super().validate(req, inpaint=inpaint)
        fmt = req.output_format or "png"
        where = f"{req.model}"
        edits = bool(req.images)
        if req.background == "transparent" and fmt == "jpeg":
            raise api.UsageError("--background transparent needs an output format with alpha: "
                             "pass -f png or -f webp (jpeg has none)")
        if req.output_compression is not None and fmt not in ("jpeg", "webp"):
            raise api.UsageError("--output-compression applies to jpeg and webp output only: "
                             "add -f jpeg or -f webp (or drop it)")
        if not edits and (req.input_fidelity is not None or "input_fidelity" in req.params):
            raise api.UsageError("--input-fidelity applies to edits of input images only: drop "
                             "it, or use `imagegen edit PROMPT -i IMAGE`")
        if edits and fmt in GENERATION_ONLY_FORMATS:
            raise api.UsageError(f"-f {fmt} is produced by {where} for generations only, not "
                             "edits: pass -f png, jpeg or webp")
        if is_gpt_image(fam):
            for im in req.images:
                if len(im.data) >= MAX_EDIT_IMAGE_BYTES:
                    raise api.UsageError(f"{im.path} is {len(im.data) // (1024 * 1024)} MB; "
                                     f"{where} takes input images under 50 MB: shrink it")
        if inpaint and fam == "dall-e-2":
            req = dalle2_edit_inputs(req)
        if any(im.url for im in req.images) and req.edit_body != "multipart":
            if not self.capabilities(req.model).image_urls:
                raise api.UsageError(f"{where} cannot take image URLs: download the image "
                                     "first")
            json_edit_fits(req)
        return req

    def prepare(self, req: api.ImageRequest, key: str | None) -> list[api.HttpCall]:
        if req.images and any(im.url for im in req.images) and req.edit_body != "multipart":
            return [self._edit_json_call(req, key)]
        if req.images:
            return [self._edit_call(req, key)]
        return [api.HttpCall("POST", self.url("/images/generations", req.model),
                         self.headers(key, stream=req.stream), json=self.body(req))]

    def _edit_call(self, req: api.ImageRequest, key: str | None) -> api.HttpCall:
        """POST /images/edits as multipart: image(s), an RGBA mask (alpha 0 = repaint)
        and the other fields as text parts."""

        headers = self.headers(key, stream=req.stream)
        del headers["content-type"]  # httpx sets multipart/form-data with its boundary
        name = "image[]" if len(req.images) > 1 else "image"
        files: list[tuple[str, tuple[str, bytes, str]]] = []
        for im in req.images:
            if im.url and not im.data:  # --dry-run of --edit-body multipart: not fetched
                files.append((name, (f"{im.path.name} (downloaded from {im.url} when sent)",
                                     b"", "image/*")))
                continue
            fmt = sniff(im.data) or "png"
            ext = "jpg" if fmt == "jpeg" else fmt
            files.append((name, (f"{im.path.stem}.{ext}", im.data, f"image/{fmt}")))
        if req.mask is not None:
            files.append(("mask", ("mask.png", openai_mask(req.mask), "image/png")))
        fields = {k: form_value(v) for k, v in self.body(req).items() if v is not None}
        return api.HttpCall("POST", self.url("/images/edits", req.model), headers, data=fields,
                        files=files)

    def _edit_json_call(self, req: api.ImageRequest, key: str | None) -> api.HttpCall:
        """POST /images/edits as JSON (the spec's EditImageBodyJsonParam): `images` is a
        list of {"image_url": ...}, URLs as given and local files as data URLs. Used when
        any input is a URL; GPT image models only (dall-e-2 edits stay multipart)."""

        body = self.body(req)
        body["images"] = [{"image_url": im.url or data_url(im.data)} for im in req.images]
        if req.mask is not None:
            body["mask"] = {"image_url": data_url(openai_mask(req.mask))}
        return api.HttpCall("POST", self.url("/images/edits", req.model),
                        self.headers(key, stream=req.stream), json=body)

    def run(
        self, req: api.ImageRequest, key: str | None, transport: api.Transport,
        reporter: api.Reporter,
    ) -> Iterator[tuple[api.GeneratedImage, api.CallInfo]]:
        (call,) = self.prepare(req, key)
        if call.json is None or not req.images or req.edit_body == "json":
            yield from self.send(call, req, transport, reporter)
            return
        # The JSON edit body (an image URL): a gateway that takes only multipart refuses
        # it with a 400. Then, once, the images are downloaded and sent as multipart.
        items = self.send(call, req, transport, reporter)
        try:
            first = next(items, None)
        except api.RefusedError as exc:
            if exc.status != 400 or exc.code in REFUSALS_OF_CONTENT:
                raise
            reporter.note(f"{self.name} refused the JSON edit body ({exc.message}); "
                          "downloading the image and sending it as multipart instead "
                          "(--edit-body multipart does so from the start)")
            req = downloaded_inputs(req, transport)
            yield from self.send(self._edit_call(req, key), req, transport, reporter)
            return
        if first is not None:
            yield first
            yield from items

    def send(
        self, call: api.HttpCall, req: api.ImageRequest, transport: api.Transport,
        reporter: api.Reporter,
    ) -> Iterator[tuple[api.GeneratedImage, api.CallInfo]]:
        try:
            yield from self._tagged(self._send(call, req, transport, reporter), req)
        except api.RefusedError as exc:
            if exc.status == 404 and exc.code != "model_not_found" and not self.cfg.api_version:
                exc.message += self.not_found_hint()
            raise

    def not_found_hint(self) -> str:
        """A 404 on the images path is most often a base URL without its /v1."""
        base = self.url("")
        path = urlsplit(base).path.rstrip("/")
        if path.endswith("/v1"):
            return f" (check base_url {base}: the images path was not found there)"
        return (f" (check base_url {base}: OpenAI-compatible URLs usually end in /v1, "
                f"e.g. {base.rstrip('/')}/v1)")

    def _send(
        self, call: api.HttpCall, req: api.ImageRequest, transport: api.Transport,
        reporter: api.Reporter,
    ) -> Iterator[tuple[api.GeneratedImage, api.CallInfo]]:
        if req.stream:
            yield from self._stream(call, req, transport, reporter)
            return
        reporter.status(f"waiting for {self.name}")
        payload, resp = transport.json_spooled(call)
        info = self.call_info(resp, req)
        tfy = resp.headers.get("x-tfy-resolved-model")
        if tfy:
            info.extra["resolved_model"] = tfy
        yield from parse_images(payload, info, self.name)

    def _tagged(
        self, items: Iterator[tuple[api.GeneratedImage, api.CallInfo]], req: api.ImageRequest
    ) -> Iterator[tuple[api.GeneratedImage, api.CallInfo]]:
        """Each image of a deployment records the real model it ran (metadata, sidecar)."""
        real = self.real(req.model)
        for image, info in items:
            if real != req.model:
                image = dataclasses.replace(image, resolved={**image.resolved,
                                                             "base_model": real})
            yield image, info

    def call_info(self, resp: Any, req: api.ImageRequest) -> api.CallInfo:
        info = api.CallInfo(request_id=api.request_id_of(resp))
        real = self.real(req.model)
        if real != req.model:
            # The wire carried the deployment; its rules and price were the real model's.
            info.extra["deployment"] = req.model
            info.extra["base_model"] = real
        return info

    def _stream(
        self, call: api.HttpCall, req: api.ImageRequest, transport: api.Transport,
        reporter: api.Reporter,
    ) -> Iterator[tuple[api.GeneratedImage, api.CallInfo]]:
        reporter.status(f"waiting for {self.name} (streaming)")
        resp = transport.send(call, stream=True)
        info = self.call_info(resp, req)
        done = 0
        try:
            with body_errors(self.name, info.request_id):
                for item in self._events(resp, info, reporter):
                    done += item[0].partial is None
                    yield item
        finally:
            resp.close()
        if not done:
            raise api.UnavailableError(f"{self.name}'s stream ended before the image was complete",
                                   request_id=info.request_id)

    def _events(
        self, resp: Any, info: api.CallInfo, reporter: api.Reporter
    ) -> Iterator[tuple[api.GeneratedImage, api.CallInfo]]:
        done = 0
        ctype = resp.headers.get("content-type", "")
        if "event-stream" not in ctype:
            # Some gateways ignore `stream` and answer in one piece.
            resp.read()
            try:
                payload = json.loads(resp.content)
            except ValueError:
                raise api.UnavailableError(f"{self.name} answered a stream request with "
                                       "neither events nor JSON") from None
            yield from parse_images(payload, info, self.name)
            return
        for event, data in iter_sse(resp):
            if data.strip() == "[DONE]":
                break
            try:
                frame = json.loads(data)
            except (ValueError, RecursionError):
                frame = None
            if not isinstance(frame, dict):
                raise api.UnavailableError(
                    f"{self.name} sent a malformed stream event",
                    request_id=info.request_id) from None
            if "error" in frame and frame["error"]:
                err = frame["error"] if isinstance(frame["error"], dict) else {}
                raise api.RefusedError(
                    f"{self.name} stopped the stream: "
                    f"{err.get('message') or frame['error']}",
                    code=err.get("code"), request_id=info.request_id)
            kind = str(frame.get("type") or event)
            if kind.endswith(".partial_image"):
                pk = frame.get("partial_image_index")
                k = (pk if isinstance(pk, int) and not isinstance(pk, bool) else 0) + 1
                reporter.status(f"partial image {k} received")
                image = decode_b64(frame.get("b64_json"), self.name)
                yield api.GeneratedImage(index=done, data=image, partial=k,
                                         resolved=resolved_fields(frame)), info
            elif kind.endswith(".completed"):
                # One completed event per image, with that image's usage: each image
                # gets a CallInfo of its own, so its cost is its own usage, not the
                # running total of the stream (which overstated n=3 by 2x).
                mine = dataclasses.replace(
                    info, extra=dict(info.extra), images=1,
                    usage=add_usage(None, frame["usage"])
                    if isinstance(frame.get("usage"), dict) else None)
                image = decode_b64(frame.get("b64_json"), self.name)
                yield api.GeneratedImage(index=done, data=image,
                                         resolved=resolved_fields(frame)), mine
                done += 1

    def check(self, key: str | None, transport: api.Transport) -> str:
        call = api.HttpCall("GET", self.url("/models"), self.headers(key))
        try:
            payload, _ = transport.json(call)
        except api.RefusedError as exc:
            if exc.status not in (404, 405):
                raise
            # A gateway without a model list: ask for an image with no prompt. It is
            # refused before any work (nothing billed); 401/403 would mean the key.
            probe = api.HttpCall("POST", self.url("/images/generations", self.cfg.model),
                                 self.headers(key), json={})
            try:
                transport.json(probe)
            except api.RefusedError as refused:
                if refused.status in (400, 422):
                    return ("key accepted (no model list at GET /models; an empty "
                            "POST /images/generations was refused as expected)")
                raise
            return "key accepted"
        n = len(payload.get("data") or []) if isinstance(payload, dict) else 0
        return f"key accepted, {n} models listed"

    def list_models(self, key: str | None, transport: api.Transport) -> list[str]:
        call = api.HttpCall("GET", self.url("/models"), self.headers(key))
        payload, _ = transport.json(call)
        items = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            raise api.UnavailableError(f"{self.name} answered GET /models without a model list")
        ids = [str(m.get("id")) for m in items if isinstance(m, dict) and m.get("id")]
        image = [i for i in ids if family(i) != "other" or "image" in i or "flux" in i]
        return sorted(image or ids)


# A 400 for what the prompt or image holds: sending it another way would not help.
REFUSALS_OF_CONTENT = ("content_policy_violation", "moderation_blocked")


# The JSON edit body (the spec's EditImageBodyJsonParam, what an edit with -i URL
# sends) has narrower enums than multipart: no free sizes, no xhigh/max, no complexity.
JSON_EDIT_SIZES = ("auto", "1024x1024", "1536x1024", "1024x1536")
JSON_EDIT_QUALITY = ("low", "medium", "high", "auto")


def json_edit_fits(req: api.ImageRequest) -> None:
    """Refuse (exit 2) what the JSON edit body cannot carry, naming both ways out."""
    way_out = ("or download the image and pass it as a file (-i FILE goes as multipart, "
               "which takes it)")
    if req.size is not None and req.size not in JSON_EDIT_SIZES:
        raise api.UsageError(f"{req.named('--size', req.size)}: an edit of an image URL goes "
                             "as OpenAI's JSON edit body, which takes sizes "
                             f"{', '.join(JSON_EDIT_SIZES)}: pick one of those, {way_out}")
    if req.quality is not None and req.quality not in JSON_EDIT_QUALITY:
        raise api.UsageError(f"{req.named('--quality', req.quality)}: an edit of an image "
                             "URL goes as OpenAI's JSON edit body, which takes quality "
                             f"{', '.join(JSON_EDIT_QUALITY)}: pick one of those, {way_out}")
    if req.complexity is not None:
        raise api.UsageError(f"{req.named('--complexity', req.complexity)}: an edit of an "
                             "image URL goes as OpenAI's JSON edit body, which has no "
                             f"complexity: drop --complexity, {way_out}")


def _loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
