"""The public surface for writing a provider dialect (README: Writing a provider).

A dialect, built in or a plugin registered through the ``imagegen.providers``
entry-point group, imports what it needs from here and nowhere else in
imagegen_cli; the built-in dialects do too. Each name lives in its own module;
this is the one place that re-exports them. Importing it stays light (no dialect,
no httpx, no Pillow): `imagegen --help` and the registry depend on that.
"""

from imagegen_cli.errors import (
    AuthError,
    ConfigError,
    ProviderError,
    RefusedError,
    UnavailableError,
    UsageError,
)
from imagegen_cli.providers.base import Capabilities, Provider, SizeRule, opt, param_merge
from imagegen_cli.providers.jobs import JobProvider, JobState, Submitted
from imagegen_cli.providers.lifecycle import Entry, Lifecycle
from imagegen_cli.registry import register
from imagegen_cli.settings.provider import ProviderConfig
from imagegen_cli.settings.rules import check_base_url
from imagegen_cli.transport.call import HttpCall
from imagegen_cli.transport.classify import request_id_of
from imagegen_cli.transport.client import Transport
from imagegen_cli.types import CallInfo, GeneratedImage, ImageRequest, InputImage, Reporter

__all__ = [
    # The interface: subclass Provider, declare what it accepts.
    "Provider",
    "Capabilities",
    "SizeRule",
    "opt",
    "param_merge",
    # A model table: active, deprecated, shut down, by date (data/NAME_models.json).
    "Lifecycle",
    "Entry",
    # A provider whose images come from jobs: submit once, poll, fetch (jobs.py).
    "JobProvider",
    "JobState",
    "Submitted",
    # What it is handed and what it yields.
    "ImageRequest",
    "InputImage",
    "GeneratedImage",
    "CallInfo",
    "Reporter",
    # Its HTTP: calls as data, sent by the engine's Transport.
    "HttpCall",
    "Transport",
    "request_id_of",
    # Its [providers.NAME] table.
    "ProviderConfig",
    "check_base_url",
    # The errors it raises, each with its exit code.
    "UsageError",
    "ConfigError",
    "ProviderError",
    "AuthError",
    "RefusedError",
    "UnavailableError",
    # Registering from code; a package uses the entry point instead.
    "register",
]
