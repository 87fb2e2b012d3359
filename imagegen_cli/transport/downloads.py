"""Fetching an image URL a provider answered with, into a temporary file.

Owns the download rules: http(s) only, redirects followed by hand (each hop
checked, never more than MAX_REDIRECTS), no header of ours (so never the
provider's key), a size cap, each attempt within --timeout, retries with the
Transport's backoff. `Transport.download_spooled` calls `download_spooled` here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from imagegen_cli.errors import UnavailableError
from imagegen_cli.transport.classify import body_errors, classify, host_of, reason, secs
from imagegen_cli.transport.jsonstream import Spool

if TYPE_CHECKING:
    from imagegen_cli.transport.client import Transport

DOWNLOAD_CAP = 64 * 1024 * 1024
MAX_REDIRECTS = 5


def download_spooled(tr: Transport, url: str, *, cap: int | None = None,
                     on_bytes: Callable[[int, int], None] | None = None) -> Spool:
    """Fetch an image URL into a temporary file (read it once with .read()): http(s)
    only (redirects too), size-capped, never with the provider's key, each attempt
    within --timeout."""
    import httpx

    from imagegen_cli.transport import deadline  # httpcore's: when a request is made

    cap = cap or DOWNLOAD_CAP
    _check_scheme(url, f"{tr.who} returned an image URL")
    attempt = 0
    while True:
        deadline.start(tr.timeout)
        try:
            return _download_once(tr, url, cap, on_bytes)
        except httpx.TimeoutException:
            err = UnavailableError(f"Downloading the image from {host_of(url)} took longer "
                                   f"than {tr.timeout:g} s (raise --timeout)")
        except httpx.TransportError as exc:
            err = UnavailableError(f"Cannot download from {host_of(url)}: {reason(exc)}")
        except UnavailableError as exc:
            if exc.status is None:  # over the cap, bad redirect: retrying cannot help
                raise
            err = exc
        if attempt >= tr.retries:
            raise err from None
        wait = tr.backoff(attempt)
        if tr.on_retry:
            tr.on_retry(f"download from {host_of(url)} failed, retrying in {secs(wait)} s "
                        f"(attempt {attempt + 2} of {tr.retries + 1})")
        tr.pause(wait)
        attempt += 1


def _download_once(tr: Transport, url: str, cap: int,
                   on_bytes: Callable[[int, int], None] | None) -> Spool:

    # Redirects are followed by hand: each hop must be http(s), and no header of
    # ours (there is no key on a download) is ever added.
    for _hop in range(MAX_REDIRECTS + 1):
        with tr.client.stream("GET", url) as resp:
            if resp.is_redirect:
                target = str(resp.url.join(resp.headers.get("location", "")))
                _check_scheme(target, f"The image URL at {host_of(url)} redirects")
                url = target
                continue
            if resp.status_code >= 400:
                with body_errors(f"The image host {host_of(url)}"):
                    resp.read()
                raise classify(resp, f"The image host {host_of(url)}")
            try:
                total = int(resp.headers.get("content-length") or 0)
            except ValueError:
                total = 0
            if total > cap:
                raise UnavailableError(f"Image at {host_of(url)} is {total} bytes, over the "
                                       f"{cap} byte limit")
            spool = Spool()
            got = 0
            try:
                for chunk in resp.iter_bytes():
                    got += len(chunk)
                    if got > cap:
                        raise UnavailableError(
                            f"Image at {host_of(url)} is over the {cap} byte limit")
                    spool.file.write(chunk)
                    if on_bytes:
                        on_bytes(got, total)
            except BaseException:
                spool.file.close()
                raise
            spool.size = got
            return spool
    raise UnavailableError(f"The image URL at {host_of(url)} redirects more than "
                           f"{MAX_REDIRECTS} times")


def _check_scheme(url: str, what: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise UnavailableError(f"{what} with scheme '{scheme or 'none'}'; only http and "
                               "https are fetched")
