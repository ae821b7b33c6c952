"""What a replica reports about the fleet's desired engine, and when it sets out to load it."""

from __future__ import annotations

from pathlib import Path

from tts_trio.errors import EngineLoadError
from tts_trio.synthesis.fleet import RETRY_SECONDS, Fleet
from tts_trio.voices.desired_engine import record_desired


def test_nothing_recorded_is_converged_on_generation_zero(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 1.0)
    fleet.seen(fleet.read())
    assert fleet.desired is None and fleet.wanted(0.0) is None
    assert fleet.describe() == {"status": "converged", "generation": 0, "desired": None, "error": None}


def test_a_switch_recorded_elsewhere_is_wanted_until_it_runs_here(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 1.0)
    record = record_desired(tmp_path, "system", {"voice": "en-gb"})
    fleet.seen(fleet.read())
    assert fleet.wanted(0.0) == record and fleet.status == "converging"
    fleet.runs(record)
    assert fleet.wanted(0.0) is None
    assert fleet.describe()["status"] == "converged" and fleet.describe()["generation"] == 1


def test_a_switch_that_cannot_load_here_diverges_and_is_retried_later(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 1.0)
    record = record_desired(tmp_path, "piper", {})
    fleet.seen(fleet.read())
    fleet.failed(record, EngineLoadError("engine 'piper' is not available here: no voice"), now=100.0)
    described = fleet.describe()
    assert described["status"] == "diverged" and described["generation"] == 0
    assert described["desired"]["engine"] == "piper" and described["desired"]["generation"] == 1
    assert described["error"] == {
        "code": "engine_unavailable",
        "message": "engine 'piper' is not available here: no voice",
    }
    assert fleet.wanted(100.0 + RETRY_SECONDS - 1) is None
    assert fleet.wanted(100.0 + RETRY_SECONDS) == record
    # A newer switch is tried at once, whatever failed before.
    newer = record_desired(tmp_path, "system", {})
    fleet.seen(fleet.read())
    assert fleet.wanted(101.0) == newer and fleet.status == "converging"


def test_racing_switches_are_told_apart_by_id_not_generation(tmp_path: Path) -> None:
    ours = Fleet(tmp_path, 1.0)
    mine = record_desired(tmp_path, "system", {"voice": "en-gb"})
    ours.runs(mine)
    # Another replica read the same previous generation and wrote the same number, later.
    theirs = record_desired(tmp_path, "system", {"voice": "de"})
    assert theirs.generation == 2 and mine.generation == 1
    path = tmp_path / ".engine.json"
    path.write_text(path.read_text().replace('"generation": 2', '"generation": 1'))
    ours.seen(ours.read())
    wanted = ours.wanted(0.0)
    assert wanted is not None and wanted.id == theirs.id and wanted.generation == mine.generation


def test_poll_zero_keeps_switches_local(tmp_path: Path) -> None:
    record_desired(tmp_path, "system", {})
    fleet = Fleet(tmp_path, 0.0)
    assert not fleet.enabled and fleet.read() is None and fleet.status == "off"
