"""The RealtimeTTS engine contract, as far as this server relies on it.

RealtimeTTS ships no type information, so without these protocols every
engine instance would be ``Any`` and a typo in a method name would surface
only at run time, in a worker thread. The pool, :func:`tts_trio.engines.open_engine`
and the catalog factories speak about engines through :class:`Engine`
instead; RealtimeTTS's own engines, :class:`~tts_trio.engines.espeak.EspeakEngine`
and the test engines all satisfy it structurally (nobody inherits from it).

Only what the server calls is listed. Methods some engines have and others
lack (``start``, ``get_voices``/``get_variants``) are separate protocols,
checked with ``isinstance`` where they are used.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


class Sink(Protocol):
    """Where an engine puts audio chunks (``engine.queue``) or word timings (``engine.timings``).

    RealtimeTTS engines expect a ``queue.Queue``; the pool swaps in its own
    object per sentence, so only the two put methods engines call are needed.
    """

    def put(self, item: Any) -> None: ...

    def put_nowait(self, item: Any) -> None: ...


class Engine(Protocol):
    """One engine instance: blocking, and not safe to call from two threads at once."""

    #: Receives audio bytes while :meth:`synthesize` runs (replaced by the pool per sentence).
    queue: Sink
    #: Receives ``TimingInfo`` objects (word, start_time, end_time) where the engine reports them.
    timings: Sink

    def get_stream_info(self) -> tuple[int, int, int]:
        """(PyAudio sample format, channels, sample rate) of what goes on :attr:`queue`."""
        ...

    def synthesize(self, text: str) -> bool:
        """Speak ``text`` onto :attr:`queue`; false when stopped before the end."""
        ...

    def stop(self) -> None:
        """Ask a running :meth:`synthesize` to end early (some engines ignore it)."""
        ...

    def shutdown(self) -> None:
        """Release what the instance holds (processes, models, GPU memory)."""
        ...

    def set_voice(self, voice: Any) -> None:
        """Select the voice for the next sentences (a name, or a reference file for cloning engines)."""
        ...

    def set_voice_parameters(self, **voice_parameters: Any) -> None:
        """Engine-specific knobs for the next sentences (rate, temperature, ...)."""
        ...


@runtime_checkable
class Startable(Protocol):
    """An engine with work to do after construction (``EspeakEngine`` starts its worker process)."""

    def start(self) -> None: ...


@runtime_checkable
class ListsVoices(Protocol):
    """An engine that can list its voices without the network (espeak-ng)."""

    def get_voices(self) -> list[dict[str, Any]]: ...

    def get_variants(self) -> list[str]: ...
