"""A job: one settled request plus where its images go, the providers to try in
turn (its fallback chain, each with its own settled request and key), and its
stable key.

`generate` is a batch of one job; `batch` makes one job per input record.
The key hashes everything that decides a job's output, so a journal can
tell a finished job from a changed one, and `--shard I/N` can split the jobs
the same way on every machine and every run.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imagegen_cli.engine.save import SaveOptions, batches, splits
from imagegen_cli.errors import UsageError
from imagegen_cli.files.naming import canonical_template
from imagegen_cli.pricing.costs import SHOWN_REQUESTS
from imagegen_cli.types import Batches

if TYPE_CHECKING:
    from imagegen_cli.files.naming import OutputPlan
    from imagegen_cli.pricing.lookup import Pricing
    from imagegen_cli.providers.base import Provider
    from imagegen_cli.settings.provider import ProviderConfig
    from imagegen_cli.types import CallInfo, ImageRequest

# 2: the output template's folder as its real path (1: as typed, so `out/` and
# `./out/` were two outputs). Journals keyed by 1 are still read (`legacy_key`).
KEY_VERSION = 2


@dataclass
class Member:
    """One provider of a job's fallback chain, with the request as that provider
    settled and validated it, its key and its prices."""

    provider: Provider
    pcfg: ProviderConfig
    request: ImageRequest
    pricing: Pricing
    key: str | None = field(default=None, repr=False)


@dataclass
class Job:
    request: ImageRequest
    provider: Provider
    pcfg: ProviderConfig
    plan: OutputPlan
    files: SaveOptions = field(default_factory=SaveOptions)
    timeout: float = 300.0
    retries: int = 2
    inpaint: bool = False
    # Where the job came from: the record's id (else its line number) and line.
    id: str = "1"
    line: int | None = None
    key: str = ""
    # What --shard splits on: the key without the output template, so shards that
    # write into folders of their own (-o out-$CI_NODE_INDEX/) still partition.
    shard_key: str = ""
    # The key imagegen gave this job before KEY_VERSION 2, so an older journal resumes.
    legacy_key: str = ""
    # The providers the scheduler tries in turn, each only when the one before is
    # unavailable: the first is this job's own (provider, pcfg, request); settle
    # puts it there, fallback.settle_chain adds the others.
    members: list[Member] = field(default_factory=list)
    # The cost of one image written (call info, width, height).
    cost_of: Callable[[CallInfo | None, int, int], tuple[float | None, str | None]] | None \
        = None

    @property
    def n(self) -> int:
        return self.request.n

    @property
    def api_key(self) -> str | None:
        """The key of the job's own provider (each member holds its own)."""
        return self.members[0].key if self.members else None

    def describe(self, shown_key: str | None) -> dict[str, Any]:
        """The exact calls this job would make (for --dry-run; secrets as SHOWN_KEY)."""

        calls: list[dict[str, Any]] = []
        req = self.request
        max_n = self.provider.capabilities(req.model).max_n
        for sub in splits(req, max_n):
            if len(calls) >= SHOWN_REQUESTS:  # the rest: as many again, each like these
                break
            calls.extend(c.describe() for c in self.provider.prepare(sub, shown_key))
        out: dict[str, Any] = {"provider": self.provider.name, "model": req.model,
                               "requests": calls}
        total = len(batches(req.n, max_n))
        if total > SHOWN_REQUESTS:
            out["requests_total"] = total  # requests: the first SHOWN_REQUESTS calls
        return out

    def fingerprint(self, output: bool = True, version: int = KEY_VERSION,
                    canon: dict[str, str] | None = None) -> str:
        """sha256 of everything that decides this job's output (without OUTPUT: all
        but where its files go). CANON: templates' real folders already looked up."""
        import json

        req = self.request
        template = self.plan.template
        if output and version != 1:
            real = canon.get(template) if canon is not None else None
            if real is None:
                real = canonical_template(template)
                if canon is not None:
                    canon[template] = real
            template = real
        fields: dict[str, Any] = {
            "v": version, "provider": self.provider.name, "type": self.pcfg.type,
            "base_url": self.pcfg.base_url,
            **({"template": template} if output else {}),
            # The same keys as before SaveOptions: a journal's keys must not change.
            "fmt": self.files.format, "metadata": self.files.metadata,
            "sidecar": self.files.sidecar,
        }
        for f in ("prompt", "model", "n", "size", "quality", "style", "background",
                  "moderation", "seed", "steps", "guidance", "negative_prompt",
                  "output_format", "stream", "partial_images", "params", "device", "dtype",
                  "output_compression", "complexity", "input_fidelity", "user", "strength",
                  "edit"):
            fields[f] = getattr(req, f)
        for f in ("resolution", "aspect_ratio", "fast_vae", "lora"):  # newer fields: keys
            if getattr(req, f) not in (None, False, ()):  # of old jobs hold
                fields[f] = getattr(req, f)
        fields["images"] = [i.url or hashlib.sha256(i.data).hexdigest() for i in req.images]
        fields["mask"] = hashlib.sha256(req.mask.data).hexdigest() if req.mask else None
        text = json.dumps(fields, sort_keys=True, default=str, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()


class Seen:
    """How often each 64-bit number came before, in about 8 bytes a number: a sorted
    array, a small set of recent ones merged into it now and then, and counts only
    for the numbers seen more than once."""

    MERGE = 1 << 15

    def __init__(self) -> None:
        self.sorted = array("Q")
        self.recent: set[int] = set()
        self.more: dict[int, int] = {}

    def count(self, x: int) -> int:
        """Times X was counted before this call; counts it once more."""
        k = self.more.get(x)
        if k is not None:
            self.more[x] = k + 1
            return k
        if x in self.recent or self._in_sorted(x):
            self.more[x] = 2
            return 1
        self.recent.add(x)
        if len(self.recent) >= self.MERGE:
            self.sorted = array("Q", heapq.merge(self.sorted, sorted(self.recent)))
            self.recent = set()
        return 0

    def _in_sorted(self, x: int) -> bool:
        i = bisect.bisect_left(self.sorted, x)
        return i < len(self.sorted) and self.sorted[i] == x


def assign_keys(jobs: list[Job], explicit_ids: set[int]) -> None:
    """Key JOBS in order (EXPLICIT_IDS: the positions of records that named an id)."""
    maker = KeyMaker()
    for pos, job in enumerate(jobs):
        maker.assign(job, pos in explicit_ids)


class KeyMaker:
    """Each job's key, shard key and legacy key as `jobs.assign_keys` has always made
    them (the fingerprint, the record's id where it named one, an occurrence number for
    identical records), one job at a time."""

    def __init__(self) -> None:
        self.seen = (Seen(), Seen(), Seen())
        self.canon: dict[str, str] = {}  # template -> its folder's real path, this run

    def assign(self, job: Job, explicit_id: bool) -> None:
        keys = []
        for seen, (output, version) in zip(self.seen, ((True, KEY_VERSION), (False, 1),
                                                       (True, 1)), strict=True):
            base = job.fingerprint(output, version, self.canon)
            if explicit_id:
                base = hashlib.sha256(f"{base}/id={job.id}".encode()).hexdigest()
            k = seen.count(int(base[:16], 16))
            keys.append(base[:32] if k == 0
                        else hashlib.sha256(f"{base}#{k}".encode()).hexdigest()[:32])
        job.key, job.shard_key, job.legacy_key = keys


class Spans:
    """The calls (offset, count) that make the images of 1..N not in HAVE, at most MAX_N
    each: a job a killed run left half-written asks only for what it lacks. Worked out
    as the calls are taken: counted at once and walked gap by gap (between the images
    HAVE holds), so a job of -n 100000000000 starts sending at once instead of listing
    ten billion calls first."""

    def __init__(self, n: int, have: set[int], max_n: int) -> None:
        self.max_n = max(1, max_n)
        self.gaps: list[tuple[int, int]] = []  # (first index, last index), 1-based
        start = 1
        for index in sorted(i for i in have if 1 <= i <= n):
            if index > start:
                self.gaps.append((start, index - 1))
            start = index + 1
        if start <= n:
            self.gaps.append((start, n))

    def __len__(self) -> int:
        return sum(len(Batches(last - first + 1, self.max_n)) for first, last in self.gaps)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for first, last in self.gaps:
            offset = first - 1
            for count in Batches(last - first + 1, self.max_n):
                yield offset, count
                offset += count


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int
    source: str = "--shard"

    def holds(self, key: str) -> bool:
        return int(key[:16], 16) % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    i, sep, n = text.partition("/")
    if sep and i.strip().isdigit() and n.strip().isdigit():
        shard = Shard(int(i), int(n))
        if shard.count >= 1 and 1 <= shard.index <= shard.count:
            return shard
    raise UsageError(f"--shard '{text}' is not I/N with 1 <= I <= N (e.g. --shard 2/4)")


def shard_from_env(env: dict[str, str] | Any, count: int | None) -> Shard | None:
    """The shard a known job runner assigned, or None.

    Kubernetes Indexed Job: JOB_COMPLETION_INDEX (0-based), N from --shard-count or
    IMAGEGEN_SHARD_COUNT. Slurm array: SLURM_ARRAY_TASK_ID, _COUNT, _MIN. GitLab
    `parallel:`: CI_NODE_INDEX (1-based), CI_NODE_TOTAL.
    """
    def num(name: str) -> int:
        value = env.get(name, "")
        if not value.strip().lstrip("-").isdigit():
            raise UsageError(f"{name}={value!r} is not a whole number: fix the job "
                             "runner's setting or pass --shard I/N")
        return int(value)

    def made(index: int, total: int, source: str) -> Shard:
        if total < 1 or not 1 <= index <= total:
            raise UsageError(f"{source} gives shard {index}/{total}, which is out of range: "
                             "pass --shard I/N")
        return Shard(index, total, source)

    if env.get("JOB_COMPLETION_INDEX"):
        if count is None and env.get("IMAGEGEN_SHARD_COUNT"):
            count = num("IMAGEGEN_SHARD_COUNT")
        if count is None:
            raise UsageError("JOB_COMPLETION_INDEX is set (Kubernetes Indexed Job) but the "
                             "shard count is not: pass --shard-count N or set "
                             "IMAGEGEN_SHARD_COUNT to the Job's completions")
        return made(num("JOB_COMPLETION_INDEX") + 1, count,
                    "JOB_COMPLETION_INDEX (Kubernetes Indexed Job)")
    if env.get("SLURM_ARRAY_TASK_ID") and env.get("SLURM_ARRAY_TASK_COUNT"):
        low = num("SLURM_ARRAY_TASK_MIN") if env.get("SLURM_ARRAY_TASK_MIN") else 0
        return made(num("SLURM_ARRAY_TASK_ID") - low + 1, num("SLURM_ARRAY_TASK_COUNT"),
                    "SLURM_ARRAY_TASK_ID (Slurm job array)")
    if env.get("CI_NODE_INDEX") and env.get("CI_NODE_TOTAL"):
        return made(num("CI_NODE_INDEX"), num("CI_NODE_TOTAL"),
                    "CI_NODE_INDEX (GitLab CI parallel)")
    return None
