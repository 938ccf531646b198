"""A trunk's engines on one machine: each one's fidelity and speed, and the choice they make.

Measured once per trunk and machine key (indexer.engines.machine) by indexer.engines.measure, and kept
as JSON beside the trunk's exports. ``choose`` is the whole decision: the fastest engine that is
faithful, by throughput for bulk work and by the time a new process takes to start it and embed one
photo for a one-off query.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cbir.config import cache_dir
from index_store.atomic import atomic_write_text
from indexer.engines.machine import machine_key

PROFILE_FORMAT = 1


@dataclass
class Verdict:
    """One engine on this machine: ``check`` holds its fidelity figures, ``error`` why it could not run."""

    engine: str
    faithful: bool
    check: dict | None = None
    bar: dict | None = None
    photos: str | None = None
    images_per_s: float | None = None  # bulk: a fixed batch of photos, warm
    cold_s: float | None = None  # a one-off query: a new process loads it and embeds one photo
    error: str | None = None

    def why_not(self) -> str:
        if self.error:
            return f"cannot run here ({self.error})"
        if self.check is None:
            return "not checked"
        figures = f"min cosine {self.check['min_cosine']:.4f}"
        if self.check.get("top1_agreement"):
            figures += f", same category on {100 * self.check['top1_agreement'][-1]:.1f}%"
        return f"not faithful ({figures}; the bar is {self.bar})"


@dataclass
class Choice:
    engine: str
    reason: str


def _speed(verdict: Verdict, bulk: bool) -> float | None:
    """Higher is better: images/s for bulk work, minus the seconds to a first result for a query."""
    if bulk:
        return verdict.images_per_s
    return -verdict.cold_s if verdict.cold_s is not None else None


def _said(verdict: Verdict, bulk: bool) -> str:
    return (f"{verdict.images_per_s:.1f} images/s" if bulk
            else f"{verdict.cold_s:.2f} s to start and embed one photo")


def choose(verdicts: list[Verdict], bulk: bool) -> Choice | None:
    """The fastest faithful engine, and why (naming the faster engines that are not faithful)."""
    speeds = {v.engine: s for v in verdicts if (s := _speed(v, bulk)) is not None}
    ranked = sorted((v for v in verdicts if v.engine in speeds), key=lambda v: speeds[v.engine], reverse=True)
    faithful = [v for v in ranked if v.faithful and not v.error]
    if not faithful:
        return None
    best = faithful[0]
    job = "for bulk work" if bulk else "for a one-off query"
    reason = f"the fastest faithful engine {job} here: {_said(best, bulk)}"
    if len(faithful) > 1:
        reason += f" (next: {faithful[1].engine}, {_said(faithful[1], bulk)})"
    for v in ranked[:ranked.index(best)]:
        if not v.faithful:
            reason += f"; {v.engine} is faster ({_said(v, bulk)}) but {v.why_not()}"
    return Choice(best.engine, reason)


@dataclass
class Profile:
    trunk_key: str
    machine_key: str
    trunk_id: str
    built_for: str
    machine: dict
    threads: int
    measured_at: float
    complete: bool  # every candidate checked and timed (else only engines asked for by name were checked)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    seconds: float = 0.0
    bulk: Choice | None = None
    query: Choice | None = None
    format: int = PROFILE_FORMAT

    def decide(self) -> None:
        self.bulk = choose(list(self.verdicts.values()), bulk=True) if self.complete else None
        self.query = choose(list(self.verdicts.values()), bulk=False) if self.complete else None

    def choice(self, bulk: bool) -> Choice | None:
        return self.bulk if bulk else self.query

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Profile:
        data = dict(data)
        data["verdicts"] = {k: Verdict(**v) for k, v in data.get("verdicts", {}).items()}
        data["bulk"] = Choice(**data["bulk"]) if data.get("bulk") else None
        data["query"] = Choice(**data["query"]) if data.get("query") else None
        return cls(**data)


def read_profile(path: Path, trunk_key: str | None = None, machine_key: str | None = None) -> Profile | None:
    """The profile at ``path`` when it is readable, of this format and (when given) of these keys."""
    try:
        data = json.loads(path.read_text())
        profile = Profile.from_dict(data)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if profile.format != PROFILE_FORMAT or (trunk_key and profile.trunk_key != trunk_key) \
            or (machine_key and profile.machine_key != machine_key):
        return None
    return profile


def find_profile(trunk_id: str, model_dir: Path | None = None) -> Profile | None:
    """The complete profile of a trunk (by id, as an index records it) on this machine, from cbir's cache or
    the model folder's ``runtime/`` alone; never imports NumPy, so `cbir status` stays quick."""

    key = machine_key()
    folders = [cache_dir() / "runtime", *([model_dir / "runtime"] if model_dir is not None else [])]
    paths = [path for folder in folders if folder.is_dir() for path in folder.glob(f"*-engines-*-{key}.json")]
    found = [p for p in (read_profile(path, machine_key=key) for path in paths)
             if p is not None and p.trunk_id == trunk_id and p.complete]
    return max(found, key=lambda p: p.measured_at, default=None)


def write_profile(path: Path, profile: Profile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(profile.as_dict(), indent=2) + "\n")
