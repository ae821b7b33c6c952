"""The engine pool: engine instances behind one ``trio.CapacityLimiter``.

RealtimeTTS engine instances are not safe to call from two threads at once,
so the pool holds one instance per slot and lends an instance together with
a limiter token. Engine calls are blocking, so they run in
``trio.to_thread`` threads. Three rules keep the hardware and the audio
honest:

* A slot is held only while the engine works on one sentence; streams take
  turns sentence by sentence (the limiter is FIFO), so with 8 streams on 2
  slots every stream hears its first sentence early.
* On cancellation the engine is told to ``stop()`` and the thread is *not*
  abandoned: the token and the instance come back only when the engine work
  has really ended, so a slot count can never be exceeded.
* Audio goes from the engine thread straight into the stream's bounded
  channel while there is room; what does not fit is kept for that one
  sentence and sent after the slot is released, so a slow reader slows its
  own stream and never holds a slot.

Everything a pool needs from its owner (:class:`PoolPolicy`, :class:`PoolHooks`)
is given when it is built, never written into it afterwards: a wire that is
missed cannot silently switch a timeout or a metric off. An instance that
ignores ``stop()`` is put back by its own thread's last act (a callback on
the Trio thread), so no background task or borrowed nursery is needed for it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import trio

from tts_trio.audio.formats import AudioChunk, AudioFormat, WordTiming
from tts_trio.engines.contract import Engine
from tts_trio.engines.formats import Converter, Passthrough
from tts_trio.errors import EngineTimeout, EngineUnavailable, SynthesisFailed

if TYPE_CHECKING:
    from tts_trio.settings import Settings

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class PoolPolicy:
    """How long the pool waits for an engine."""

    #: Longest a sentence may take (and longest a sentence waits for a slot).
    sentence_timeout: float = math.inf
    #: How long a stopped engine gets to end its thread before its instance is taken out of service.
    stop_grace: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> PoolPolicy:
        return cls(sentence_timeout=settings.sentence_timeout)


def _ignore_sentence(engine: str, seconds: float) -> None:
    """A bare pool (tests, tools) records nothing."""


def _ignore_failure(engine: str) -> None:
    """A bare pool (tests, tools) records nothing."""


@attrs.frozen(kw_only=True)
class PoolHooks:
    """What a pool tells its owner, each call naming the engine (the service feeds metrics from these)."""

    #: Engine time of one sentence that completed.
    on_sentence: Callable[[str, float], None] = _ignore_sentence
    #: One sentence the engine failed on (an error or a timeout).
    on_failure: Callable[[str], None] = _ignore_failure


#: Hooks of a pool that reports to nobody (tests, tools); the service always passes its own.
NO_HOOKS = PoolHooks()


@attrs.frozen
class SlotStatistics:
    """A snapshot of slot use, for ``/health`` and tests."""

    total: int
    in_use: int
    waiting: int

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.total, self.in_use, self.waiting)

    def as_dict(self) -> dict[str, int]:
        return {"total": self.total, "in_use": self.in_use, "waiting": self.waiting}


@attrs.frozen
class SentenceResult:
    """What one sentence produced besides its audio."""

    completed: bool
    #: PCM bytes the engine produced for the sentence (sent or still to send).
    pcm_bytes: int
    #: Word timings relative to the sentence's start, where the engine reports them.
    words: tuple[WordTiming, ...]


class _Sink:
    """Stands in for an engine's ``queue``/``timings`` so its puts go where we say."""

    def __init__(self, put: Callable[[Any], None]) -> None:
        self.put = put
        self.put_nowait = put


def _drop(_: Any) -> None:
    """Where late puts of a finished sentence go: nowhere."""


class _ConsumerGone(Exception):
    """Raised inside the engine thread when the stream was cancelled or closed."""


class EnginePool:
    """Instances of one engine, lent out one sentence at a time."""

    def __init__(
        self,
        name: str,
        engines: Sequence[Engine],
        audio_format: AudioFormat,
        device: str = "cpu",
        converter: Callable[[], Converter] | None = None,
        *,
        policy: PoolPolicy = PoolPolicy(),
        hooks: PoolHooks = NO_HOOKS,
    ) -> None:
        if not engines:
            raise ValueError("an engine pool needs at least one engine instance")
        self.name = name
        self.audio_format = audio_format
        self.device = device
        self._engines = tuple(engines)
        self._idle = list(engines)
        self._limiter = trio.CapacityLimiter(len(engines))
        #: Makes a per-sentence converter from the engine's output to 16-bit PCM.
        self._converter: Callable[[], Converter] = converter or Passthrough
        self._policy = policy
        self._hooks = hooks
        self._timed_out = False
        self._stuck = 0
        self._closed = False

    @property
    def policy(self) -> PoolPolicy:
        """Fixed when the pool is built."""
        return self._policy

    @property
    def accepting(self) -> bool:
        """Whether new work is taken (false once the pool is closing)."""
        return not self._closed

    @property
    def engines(self) -> tuple[Engine, ...]:
        return self._engines

    def statistics(self) -> SlotStatistics:
        stats = self._limiter.statistics()
        return SlotStatistics(total=int(stats.total_tokens), in_use=stats.borrowed_tokens, waiting=stats.tasks_waiting)

    async def synthesize(
        self,
        text: str,
        *,
        sentence: int,
        voice: str | None,
        send: trio.MemorySendChannel[Any],
        voice_parameters: dict[str, Any] | None = None,
    ) -> SentenceResult:
        """Speak ``text`` into ``send`` as :class:`AudioChunk` items.

        Raises :class:`SynthesisFailed` when the engine fails and
        ``trio.BrokenResourceError`` when the receiving side has gone.
        """
        if self._closed:
            raise EngineUnavailable("the engine is shutting down")
        if not self._idle and self._limiter.total_tokens == 0:
            raise EngineUnavailable("every engine instance is stuck; see /ready and the server log")
        with trio.move_on_after(self._policy.sentence_timeout) as waiting:
            await self._limiter.acquire()
        if waiting.cancelled_caught:
            raise EngineUnavailable("no engine slot came free in time; the engine may be stuck (see /ready)")
        try:
            engine = self._idle.pop()
            started = trio.current_time()
            stuck: list[bool] = []
            try:
                with trio.move_on_after(self._policy.sentence_timeout) as deadline:
                    result, overflow = await self._run(
                        engine, text, sentence, voice, voice_parameters or {}, send, stuck
                    )
                if deadline.cancelled_caught:
                    self._timed_out = True
                    raise EngineTimeout(
                        f"the engine did not finish a sentence within {self._policy.sentence_timeout:g} s"
                    )
            except SynthesisFailed:
                self._hooks.on_failure(self.name)
                raise
            finally:
                if not stuck:
                    self._idle.append(engine)
            self._timed_out = False
            self._hooks.on_sentence(self.name, trio.current_time() - started)
        finally:
            self._limiter.release()
        for chunk in overflow:
            await send.send(chunk)
        return result

    async def _run(
        self,
        engine: Engine,
        text: str,
        sentence: int,
        voice: str | None,
        voice_parameters: dict[str, Any],
        send: trio.MemorySendChannel[Any],
        stuck: list[bool],
    ) -> tuple[SentenceResult, list[AudioChunk]]:
        overflow: list[AudioChunk] = []
        timings: list[WordTiming] = []
        produced = [0]
        cancelled = threading.Event()
        consumer_gone = threading.Event()
        token = trio.lowlevel.current_trio_token()

        def deliver(chunk: AudioChunk) -> None:
            # On the Trio thread, in the order the engine produced the chunks (run_sync_soon is FIFO).
            if cancelled.is_set() or consumer_gone.is_set():
                return
            if overflow:
                overflow.append(chunk)  # keep the order behind what is already waiting
                return
            try:
                send.send_nowait(chunk)
            except trio.WouldBlock:
                overflow.append(chunk)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                consumer_gone.set()

        def emit(pcm: bytes) -> None:
            # The engine thread hands a chunk over without waiting for the event loop: a blocking
            # round trip per chunk held the slot while a busy loop got round to it, so more
            # streams meant slower synthesis for all of them.
            if consumer_gone.is_set():
                raise _ConsumerGone
            if cancelled.is_set():
                return  # the stream was cancelled; whatever the engine still produces is dropped
            produced[0] += len(pcm)
            try:
                token.run_sync_soon(deliver, AudioChunk(pcm, sentence))
            except trio.RunFinishedError as error:
                raise _ConsumerGone from error

        def on_timing(info: Any) -> None:
            timings.append(WordTiming(str(info.word), round(info.start_time, 4), round(info.end_time, 4)))

        converter = self._converter()

        def emit_converted(data: bytes) -> None:
            pcm = converter.feed(data)
            if pcm:
                emit(pcm)

        def work() -> bool:
            engine.queue = _Sink(emit_converted)
            engine.timings = _Sink(on_timing)
            try:
                if voice is not None:
                    engine.set_voice(voice)
                if voice_parameters:
                    engine.set_voice_parameters(**voice_parameters)
                completed = bool(engine.synthesize(text))
                tail = converter.flush()
                if tail:
                    emit(tail)
                return completed
            finally:
                engine.queue = _Sink(_drop)
                engine.timings = _Sink(_drop)

        thread_done = trio.Event()
        state = threading.Lock()
        engine_started = False
        quarantined = False

        def thread_ended() -> None:
            # On the Trio thread, so it cannot interleave with the quarantine decision below.
            thread_done.set()
            if quarantined:
                self._restore(engine)

        def guarded() -> bool:
            nonlocal engine_started
            with state:
                if cancelled.is_set():
                    return False  # cancelled before this thread began: no engine work at all
                engine_started = True
            try:
                return work()
            finally:
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(thread_ended)

        try:
            completed = await trio.to_thread.run_sync(guarded, abandon_on_cancel=True)
        except trio.Cancelled:
            # Stop the engine, then keep the slot until its thread has ended.
            # Trio may cancel before the thread ever starts (while waiting for
            # a worker thread); then there is nothing to stop or wait for.
            with state:
                cancelled.set()
                must_wait = engine_started
            if must_wait:
                engine.stop()
                with trio.CancelScope(shield=True), trio.move_on_after(self._policy.stop_grace):
                    await thread_done.wait()
                if not thread_done.is_set():
                    # The engine ignores stop() and cannot be killed from here:
                    # take the instance (and its slot) out of service until its
                    # thread ends, rather than blocking this stream forever.
                    stuck.append(True)
                    quarantined = True
                    self._quarantine()
            raise
        except _ConsumerGone:
            raise trio.BrokenResourceError("the stream's receiver has gone") from None
        except Exception as error:
            log.error("engine %s failed on a sentence: %s", self.name, error, exc_info=log.isEnabledFor(logging.DEBUG))
            raise SynthesisFailed("the engine failed while synthesizing") from error
        # Every chunk the thread handed over was delivered before its result came back (same FIFO queue).
        if consumer_gone.is_set():
            raise trio.BrokenResourceError("the stream's receiver has gone")
        return SentenceResult(completed, produced[0], tuple(timings)), overflow

    @property
    def healthy(self) -> bool:
        """False after a sentence timed out (until one succeeds) or while every instance is stuck."""
        return not self._timed_out and self._limiter.total_tokens > 0

    def _quarantine(self) -> None:
        """Take a stuck instance's slot out of service; :meth:`_restore` gives it back."""
        log.error("engine %s ignored stop(); its instance is out of service until its thread ends", self.name)
        self._limiter.total_tokens = max(0, int(self._limiter.total_tokens) - 1)
        self._stuck += 1

    def _restore(self, engine: Engine) -> None:
        """Put a quarantined instance back once its thread has ended (called on the Trio thread)."""
        self._idle.append(engine)
        self._stuck -= 1
        self._limiter.total_tokens = int(self._limiter.total_tokens) + 1
        log.info("engine %s instance is back in service", self.name)

    async def aclose(self) -> None:
        """Refuse new work, stop running work, and shut every instance down."""
        self._closed = True
        for engine in self._engines:
            engine.stop()
        # Wait (a bounded time) for running sentences to give their slots back,
        # then shut down every instance that is idle; a stuck one is left to exit with the process.
        with trio.move_on_after(self._policy.stop_grace):
            async with trio.open_nursery() as nursery:
                for _ in range(int(self._limiter.total_tokens)):
                    nursery.start_soon(self._limiter.acquire)
        for engine in list(self._idle):
            await trio.to_thread.run_sync(engine.shutdown)
        if len(self._idle) < len(self._engines):
            log.warning(
                "engine %s: %d instance(s) still busy at shutdown", self.name, len(self._engines) - len(self._idle)
            )
