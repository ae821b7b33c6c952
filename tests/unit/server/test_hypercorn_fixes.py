"""The Hypercorn fixes know what they were written against, and refuse anything else.

The fingerprints are checked against the Hypercorn installed here, so a
dependency bump that touches a patched function fails this file loudly
instead of changing the server quietly (docs/hypercorn.md says what to do
then). The refusal itself is a pure function of a version and source texts,
tested with changed ones directly.
"""

from __future__ import annotations

import inspect
import logging
from importlib.metadata import version

import attrs
import pytest

from tts_trio.server import hypercorn_fixes
from tts_trio.server.hypercorn_fixes import FIXES, FixMismatch, install, mode_from
from tts_trio.server.hypercorn_fixes.guard import (
    MARK,
    Fix,
    Target,
    describe,
    fingerprint,
    installed_sources,
    is_applied,
    problems,
)
from tts_trio.settings import ENV_VARS, Settings, SettingsError


def test_the_installed_hypercorn_is_the_one_the_fixes_were_written_for() -> None:
    assert {fix.written_for for fix in FIXES} == {version("hypercorn")} == {"0.18.0"}


@pytest.mark.parametrize("fix", FIXES, ids=lambda fix: fix.name)
def test_recorded_fingerprints_match_the_installed_hypercorn(fix: Fix) -> None:
    """Each target's Hypercorn source (read through our replacement once installed) hashes as recorded."""
    sources = installed_sources(fix)
    for target in fix.targets:
        source = sources[target.name]
        assert source is not None, f"{target.name} not found"
        assert fingerprint(source) == target.sha256, f"{fix.name}: {target.name} changed; see docs/hypercorn.md"
    assert problems(fix, version("hypercorn"), sources) == []


@pytest.mark.parametrize("fix", FIXES, ids=lambda fix: fix.name)
def test_every_fix_names_its_issue_and_replaces_something(fix: Fix) -> None:
    assert fix.issue.startswith(("hypercorn#", "none")), fix.issue
    assert fix.replaces
    assert all(target.module.startswith("hypercorn.") for target in fix.targets)


def test_every_fix_is_installed_in_this_process() -> None:
    """tests/conftest.py installs them as the entry points do; each target now is our replacement."""
    assert all(is_applied(fix) for fix in FIXES)
    for fix in FIXES:
        for target in fix.replaces:
            replacement = target.resolve()
            assert getattr(replacement, MARK) == fix.name
            assert not hasattr(replacement.__wrapped__, MARK)  # directly Hypercorn's function beneath


def _sources(fix: Fix) -> dict[str, str | None]:
    return {target.name: inspect.getsource(inspect.unwrap(target.resolve())) for target in fix.targets}


@pytest.mark.parametrize("fix", FIXES, ids=lambda fix: fix.name)
def test_a_changed_target_is_refused_by_name(fix: Fix) -> None:
    target = fix.targets[-1]
    sources = _sources(fix)
    original = sources[target.name]
    assert original is not None
    sources[target.name] = original.replace("\n", "\n    # a line a later release added\n", 1)
    [found] = problems(fix, fix.written_for, sources)
    assert found.startswith(f"{target.name} changed (source sha256 ")
    assert target.sha256[:12] in found


def test_a_target_that_is_gone_is_refused() -> None:
    fix = FIXES[0]
    assert problems(fix, fix.written_for, {}) == [f"{fix.targets[0].name} is gone"]


@pytest.mark.parametrize("found_version", ["0.19.0", "0.18.1", "unknown"])
def test_an_unknown_version_is_refused_even_with_the_same_source(found_version: str) -> None:
    fix = FIXES[0]
    assert problems(fix, found_version, _sources(fix)) == [f"written for hypercorn 0.18.0, found {found_version}"]


def test_the_refusal_is_one_line_naming_the_fix_and_its_issue() -> None:
    fix = FIXES[0]
    message = describe(fix, problems(fix, "0.19.0", {}))
    assert "\n" not in message
    assert message.startswith(f"hypercorn fix {fix.name!r} ({fix.issue}) does not match: written for")


# -- install(): all or nothing ---------------------------------------------------------


@attrs.define
class Recorded:
    """Fixes whose apply() only counts calls, around real Hypercorn targets (nothing is patched)."""

    applied: list[str] = attrs.Factory(list)

    def fix(self, name: str, *, matching: bool) -> Fix:
        target = Target("hypercorn.config", "Config.from_toml", "")
        sha = fingerprint(inspect.getsource(target.resolve())) if matching else "0" * 64
        return Fix(
            name=name,
            issue="none: a test",
            written_for=version("hypercorn"),
            replaces=(attrs.evolve(target, sha256=sha),),
            apply=lambda: self.applied.append(name),
        )


def test_install_refuses_before_applying_any_fix() -> None:
    recorded = Recorded()
    fixes = [recorded.fix("fits", matching=True), recorded.fix("stale", matching=False)]
    with pytest.raises(FixMismatch) as refused:
        install("verify", fixes=fixes)
    assert recorded.applied == []
    message = str(refused.value)
    assert "\n" not in message
    assert "hypercorn fix 'stale'" in message and "hypercorn.config.Config.from_toml changed" in message
    assert "'fits'" not in message
    assert "TTS_HYPERCORN_FIXES=unverified" in message


def test_install_unverified_applies_everything_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    recorded = Recorded()
    fixes = [recorded.fix("fits", matching=True), recorded.fix("stale", matching=False)]
    with caplog.at_level(logging.WARNING, logger=hypercorn_fixes.log.name):
        install("unverified", fixes=fixes)
    assert recorded.applied == ["fits", "stale"]
    [warning] = [record for record in caplog.records if record.name == hypercorn_fixes.log.name]
    assert "hypercorn fix 'stale'" in warning.getMessage() and "applied anyway" in warning.getMessage()


def test_install_off_applies_nothing() -> None:
    recorded = Recorded()
    install("off", fixes=[recorded.fix("fits", matching=True)])
    assert recorded.applied == []


def test_install_is_idempotent() -> None:
    """A second install (the ASGI entry and serve() both call it) leaves one layer of each replacement."""
    before = {target.name: target.resolve() for fix in FIXES for target in fix.replaces}
    install("verify")
    install("verify")
    for fix in FIXES:
        fix.apply()  # each fix on its own is idempotent too
    assert {target.name: target.resolve() for fix in FIXES for target in fix.replaces} == before


# -- the mode setting --------------------------------------------------------------------


def test_the_mode_defaults_to_verify_and_rejects_unknown_values() -> None:
    assert mode_from({}) == "verify"
    assert mode_from({"TTS_HYPERCORN_FIXES": "unverified"}) == "unverified"
    with pytest.raises(FixMismatch, match="invalid setting TTS_HYPERCORN_FIXES: must be one of verify, unverified"):
        mode_from({"TTS_HYPERCORN_FIXES": "sometimes"})


def test_the_mode_is_a_setting_of_tts_trio_serve_too() -> None:
    assert ENV_VARS["hypercorn_fixes"] == hypercorn_fixes.ENV_VAR
    assert Settings.load(environ={}).hypercorn_fixes == "verify"
    for mode in hypercorn_fixes.MODES:
        assert Settings.load(environ={"TTS_HYPERCORN_FIXES": mode}).hypercorn_fixes == mode
    with pytest.raises(SettingsError, match="invalid setting TTS_HYPERCORN_FIXES: must be one of"):
        Settings.load(environ={"TTS_HYPERCORN_FIXES": "sometimes"})
