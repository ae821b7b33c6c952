"""What each Hypercorn fix was written against, and the check that it still is.

Every fix in this package replaces or wraps a function of Hypercorn 0.18.0.
A fix is only right for the code it was written against: a Hypercorn
release that changes that function may already fix the bug (the patch is
then dead weight), or may change what the patch relies on (the patch then
breaks the server in ways no test of ours names). So each fix records the
Hypercorn version and the exact functions it was written for, with a
sha256 of their source, and :func:`problems` compares them with what is
installed. The comparison is a pure function of a version string and source
texts, so the tests can feed it a changed source or version directly.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import attrs

#: Where :func:`replace` marks a replacement it put in place, with the fix's name.
MARK = "_tts_trio_fix"


class FixMismatch(Exception):
    """A fix does not match the installed Hypercorn; the message is one line naming the fix and what changed."""


@attrs.frozen
class Target:
    """One function of Hypercorn's, by module and qualified name, with the sha256 of its source."""

    module: str
    qualname: str
    sha256: str

    @property
    def name(self) -> str:
        return f"{self.module}.{self.qualname}"

    def resolve(self) -> Any:
        """The object as it is now (a replacement of ours, once a fix is applied)."""
        found: Any = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            found = getattr(found, part)
        return found

    def original_source(self) -> str:
        """Hypercorn's own source of the target, also after a fix replaced it (through ``__wrapped__``)."""
        return inspect.getsource(inspect.unwrap(self.resolve()))


@attrs.frozen
class Fix:
    """One patch of Hypercorn, with what it was written against."""

    #: The module's short name, used in messages and in docs/hypercorn.md.
    name: str
    #: The upstream report (``hypercorn#225 ...``), or why there is none.
    issue: str
    #: The Hypercorn release the fix was written and tested for.
    written_for: str
    #: The functions the fix replaces or wraps.
    replaces: tuple[Target, ...]
    #: Puts the fix in place; must be idempotent (see :func:`replace`).
    apply: Callable[[], None]
    #: Functions the fix does not touch but depends on behaving as they do in ``written_for``.
    relies_on: tuple[Target, ...] = ()

    @property
    def targets(self) -> tuple[Target, ...]:
        return self.replaces + self.relies_on


def fingerprint(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def problems(fix: Fix, found_version: str, sources: Mapping[str, str | None]) -> list[str]:
    """Why ``fix`` does not fit a Hypercorn of ``found_version`` whose targets have ``sources``.

    ``sources`` maps each target's :attr:`Target.name` to its source text,
    or ``None`` where the target no longer exists. An empty list means the
    fix fits.
    """
    found: list[str] = []
    if found_version != fix.written_for:
        found.append(f"written for hypercorn {fix.written_for}, found {found_version}")
    for target in fix.targets:
        source = sources.get(target.name)
        if source is None:
            found.append(f"{target.name} is gone")
        elif (actual := fingerprint(source)) != target.sha256:
            found.append(f"{target.name} changed (source sha256 {actual[:12]}, expected {target.sha256[:12]})")
    return found


def installed_version() -> str:
    try:
        return version("hypercorn")
    except PackageNotFoundError:
        return "unknown"


def installed_sources(fix: Fix) -> dict[str, str | None]:
    """The installed source of each of ``fix``'s targets (``None`` for one that cannot be found)."""
    sources: dict[str, str | None] = {}
    for target in fix.targets:
        try:
            sources[target.name] = target.original_source()
        except (ImportError, AttributeError, OSError, TypeError):
            sources[target.name] = None
    return sources


def check(fix: Fix) -> list[str]:
    """:func:`problems` for the Hypercorn installed in this process."""
    return problems(fix, installed_version(), installed_sources(fix))


def describe(fix: Fix, found: list[str]) -> str:
    """One line for the log or for stderr: the fix, its issue, and what does not match."""
    return f"hypercorn fix {fix.name!r} ({fix.issue}) does not match: {'; '.join(found)}"


def replace(owner: Any, attribute: str, replacement: Callable[..., Any], fix: str) -> None:
    """Put ``replacement`` in ``owner.attribute`` once; a second call for the same fix does nothing.

    The replacement keeps Hypercorn's function as ``__wrapped__``, so the
    check still reads Hypercorn's source after the fix is in place (and
    :func:`install <tts_trio.server.hypercorn_fixes.install>` stays idempotent).
    """
    current = getattr(owner, attribute)
    if getattr(current, MARK, None) == fix:
        return
    replacement.__wrapped__ = current  # type: ignore[attr-defined]
    setattr(replacement, MARK, fix)
    setattr(owner, attribute, replacement)


def is_applied(fix: Fix) -> bool:
    return all(getattr(target.resolve(), MARK, None) == fix.name for target in fix.replaces)
