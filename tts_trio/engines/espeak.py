"""The ``system`` engine: espeak-ng, offline, as a RealtimeTTS ``BaseEngine``.

RealtimeTTS's own ``SystemEngine`` drives one process-wide pyttsx3 engine
through a fixed temporary file, runs ffprobe per utterance and ignores
``stop()`` (measured: a stopped sentence still lands in the queue), so it can neither run several streams at once
nor be interrupted. This engine keeps the RealtimeTTS contract
(``synthesize`` puts PCM on ``self.queue``, ``get_stream_info``, ``stop``)
but talks to a private worker process (:mod:`espeak_worker`) that keeps
libespeak-ng loaded. One engine instance is one slot: the pool never calls
an instance from two threads at once.

``stop()`` asks the worker to abort the utterance (SIGUSR1), which it does
within one audio callback, and kills it if it does not answer in time. A
response that was not read to its end for any reason discards the worker
(a replacement starts at once), and every frame carries its request id, so
audio of a cancelled request can never be read by the next one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from RealtimeTTS.engines.base_engine import BaseEngine, TimingInfo

from tts_trio.engines.espeak_ipa import to_mnemonics
from tts_trio.engines.espeak_worker import FRAME_HEADER, REQUEST_HEADER
from tts_trio.engines.phonemes import has_spans, pieces, without_brackets

log = logging.getLogger(__name__)

#: PyAudio's ``paInt16``; RealtimeTTS reports formats as PyAudio constants.
PA_INT16 = 8
DEFAULT_VOICE = "en-us"
#: Seconds a worker has to acknowledge a stop before it is killed.
STOP_GRACE = 2.0
_WORKER_SCRIPT = Path(__file__).with_name("espeak_worker.py")


#: espeak-ng's words per minute at speed 1.0, and the range it accepts.
NORMAL_RATE = 175
MIN_RATE = 80
MAX_RATE = 1000


def espeak_speed_parameters(speed: float) -> dict[str, Any]:
    """espeak-ng's rate for a speed factor, within what espeak-ng can do (0.46x to 5.7x)."""
    return {"rate": max(MIN_RATE, min(MAX_RATE, round(NORMAL_RATE * speed)))}


class EngineFailure(Exception):
    """Raised when the engine cannot synthesize; the message is for logs, not clients."""


class _Worker:
    """One running worker process and what it told us when it started."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(_WORKER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C at the terminal is the server's to handle
        )
        self._hello: dict[str, Any] | None = None

    @property
    def stdin(self) -> IO[bytes]:
        assert self.process.stdin is not None
        return self.process.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self.process.stdout is not None
        return self.process.stdout

    def hello(self) -> dict[str, Any]:
        """Wait for the worker's greeting (sample rate, voices) the first time."""
        if self._hello is None:
            kind, _, payload = self.read_frame()
            if kind != b"H":
                raise EngineFailure(f"espeak worker failed to start: {payload[:200]!r}")
            self._hello = json.loads(payload)
        return self._hello

    def read_frame(self) -> tuple[bytes, int, bytes]:
        header = self._read_exact(FRAME_HEADER.size)
        kind, request_id, length = FRAME_HEADER.unpack(header)
        return kind, request_id, self._read_exact(length)

    def _read_exact(self, size: int) -> bytes:
        data = self.stdout.read(size) if size else b""
        if len(data) != size:
            raise EOFError("espeak worker closed its output")
        return data

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class EspeakEngine(BaseEngine):  # type: ignore[misc]
    """espeak-ng through a worker process; 22050 Hz mono 16-bit."""

    def __init__(self, voice: str = DEFAULT_VOICE, rate: int = NORMAL_RATE, pitch: int = 50) -> None:
        # BaseEngine's metaclass runs BaseEngine.__init__ after this one, so
        # only our own attributes are set here; engine_name is set in post_init.
        self._voice = voice
        self._rate = rate
        self._pitch = pitch
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._request_id = 0
        self._busy_request: int | None = None
        self._sample_rate = 22050
        self._voices: list[dict[str, Any]] = []
        self._variants: list[str] = []

    def post_init(self) -> None:
        self.engine_name = "system"
        self.provides_word_timings = True

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        """Start the worker and learn the sample rate and voices (blocking)."""
        worker = self._ensure_worker()
        hello = worker.hello()
        self._sample_rate = int(hello["sample_rate"])
        self._voices = list(hello["voices"])
        self._variants = list(hello.get("variants", []))

    def _ensure_worker(self) -> _Worker:
        with self._lock:
            if self._worker is not None and self._worker.process.poll() is not None:
                self._worker.kill()  # reap a worker that died while idle
                self._worker = None
            if self._worker is None:
                self._worker = _Worker()
            return self._worker

    def _discard_worker(self, *, replace: bool) -> None:
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill()
        if replace:
            # Start the next worker now so it has initialised by the next sentence.
            self._ensure_worker()

    def shutdown(self) -> None:
        self._discard_worker(replace=False)

    def stop(self) -> None:
        """End the sentence in progress now (thread-safe).

        The worker is asked to abort (SIGUSR1), which it does at its next
        audio callback and then stays ready for the next sentence; if it has
        not answered within ``STOP_GRACE`` seconds it is killed.
        """
        super().stop()
        with self._lock:
            worker = self._worker
        if worker is None or worker.process.poll() is not None:
            return
        try:
            worker.process.send_signal(signal.SIGUSR1)
        except ProcessLookupError:
            return
        watchdog = threading.Timer(STOP_GRACE, self._kill_if_busy, args=(worker, self._request_id))
        watchdog.daemon = True
        watchdog.start()

    def _kill_if_busy(self, worker: _Worker, request_id: int) -> None:
        if self._busy_request == request_id and worker.process.poll() is None:
            log.warning("espeak worker did not stop within %.1f s; killing it", STOP_GRACE)
            worker.process.kill()

    # -- RealtimeTTS contract ------------------------------------------
    def get_stream_info(self) -> tuple[int, int, int]:
        return PA_INT16, 1, self._sample_rate

    def get_voices(self) -> list[dict[str, Any]]:
        return list(self._voices)

    def get_variants(self) -> list[str]:
        """espeak-ng voice variants, usable as ``<voice>+<variant>`` (e.g. ``en-us+f3``)."""
        return list(self._variants)

    def set_voice(self, voice: Any) -> None:
        self._voice = str(voice)

    def set_voice_parameters(self, **voice_parameters: Any) -> None:
        if "rate" in voice_parameters:
            self._rate = int(voice_parameters["rate"])
        if "pitch" in voice_parameters:
            self._pitch = int(voice_parameters["pitch"])

    def synthesize(self, text: str, sentence_count: int = 0) -> bool:
        """Synthesize ``text``; put PCM on ``self.queue`` and word timings on ``self.timings``.

        Returns True when the sentence was spoken to its end and False when
        ``stop()`` interrupted it. Raises :class:`EngineFailure` when the
        worker fails. If putting audio on the queue raises (the consumer has
        gone), the worker is stopped and drained before the error goes on,
        so it stays in step with us and no audio is left for a later call.
        """
        super().synthesize(text)
        text, ipa_spans = _with_mnemonics(text)
        worker = self._ensure_worker()
        completed = False
        consumer_error: BaseException | None = None
        words: list[list[int]] = []
        try:
            worker.hello()
            self._request_id = (self._request_id + 1) & 0xFFFFFFFF
            self._busy_request = self._request_id
            request = {"text": text, "voice": self._voice, "rate": self._rate, "pitch": self._pitch}
            if ipa_spans:
                request["phonemes"] = True
            body = json.dumps({**request, "flush_samples": self._sample_rate}).encode()
            worker.stdin.write(REQUEST_HEADER.pack(self._request_id, len(body)) + body)
            worker.stdin.flush()
            while True:
                kind, request_id, payload = worker.read_frame()
                if request_id != self._request_id:
                    raise EngineFailure("espeak worker answered another request")
                stopping = consumer_error is not None or self.stop_synthesis_event.is_set()
                if kind == b"A":
                    if not stopping:
                        try:
                            self.queue.put(payload)
                        except BaseException as error:
                            consumer_error = error
                            self.stop()
                elif kind == b"W":
                    words = json.loads(payload)
                elif kind == b"D":
                    completed = True
                    if consumer_error is not None:
                        raise consumer_error
                    done = json.loads(payload)
                    if done.get("aborted", False):
                        return False
                    self._put_timings(text, words, int(done.get("samples", 0)), ipa_spans)
                    return True
                elif kind == b"E":
                    completed = True
                    raise EngineFailure(json.loads(payload).get("message", "espeak error"))
                else:
                    raise EngineFailure(f"unexpected frame {kind!r} from espeak worker")
        except (EOFError, OSError) as error:
            if consumer_error is not None:
                raise consumer_error from None
            if self.stop_synthesis_event.is_set():
                return False
            raise EngineFailure(f"espeak worker died: {error}") from error
        finally:
            self._busy_request = None
            if not completed:
                self._discard_worker(replace=True)

    def _put_timings(
        self, text: str, words: list[list[int]], total_samples: int, ipa_spans: Sequence[tuple[int, int, str]] = ()
    ) -> None:
        """Word events as RealtimeTTS ``TimingInfo``: a word lasts until the next one starts.

        espeak reports a number such as "3.5" as several events inside the
        same span of text, and an empty event at the end; those are merged
        into their word or dropped. A word inside a ``[[...]]`` made from IPA
        is reported as that IPA (what the service maps back to the written word).
        """
        merged: list[list[int]] = []  # [offset, end offset, start sample]
        for offset, length, sample in words:
            if offset < 0 or length <= 0:
                continue
            if merged and offset < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], offset + length)
                continue
            merged.append([offset, offset + length, sample])
        # The words of one IPA span (its IPA may hold several) are one timing, reported as that IPA.
        timed: list[tuple[int, str, int | None]] = []  # start sample, word, the span it belongs to
        for offset, end_offset, sample in merged:
            span = next(
                (index for index, (start, end, _) in enumerate(ipa_spans) if offset < end and start < end_offset),
                None,
            )
            if span is not None and timed and timed[-1][2] == span:
                continue
            word = ipa_spans[span][2] if span is not None else text[offset:end_offset].strip()
            timed.append((sample, word, span))
        for index, (sample, word, _) in enumerate(timed):
            end = timed[index + 1][0] if index + 1 < len(timed) else total_samples
            self.timings.put(TimingInfo(sample / self._sample_rate, max(sample, end) / self._sample_rate, word))


def _with_mnemonics(text: str) -> tuple[str, list[tuple[int, int, str]]]:
    """``text`` with its IPA spans as ``[[mnemonics]]`` and where each is; unchanged when it has none.

    With spans, espeak-ng is asked to read ``[[...]]`` as phonemes, so the
    text itself keeps no square bracket at all (:func:`without_brackets`). A
    span whose IPA has no mnemonics (the service checked, so only in direct
    use) is its written text.
    """
    if not has_spans(text):
        return text, []
    out: list[str] = []
    found: list[tuple[int, int, str]] = []
    length = 0
    for piece in pieces(text):
        mnemonics = to_mnemonics(piece.ipa) if piece.ipa is not None else None
        if piece.ipa is None:
            chunk = without_brackets(piece.text)
        elif mnemonics is None:
            chunk = f" {without_brackets(piece.written)} "
        else:
            chunk = f" [[{mnemonics}]] "
            found.append((length + 1, length + len(chunk) - 1, piece.ipa))
        out.append(chunk)
        length += len(chunk)
    return "".join(out), found
