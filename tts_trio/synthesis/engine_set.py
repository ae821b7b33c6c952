"""The engines a service runs: the current one, the resident ones, and retired ones finishing their streams.

Switching: the current engine can be replaced while streams run. Each job
carries the pool it was resolved against, so a stream that started before
a switch finishes on the old engine; the old engine is shut down when its
last stream ends (:meth:`EngineSet._retire`). A switch that fails to load
leaves the old engine current. A switch is also recorded on the shared
store as the fleet's desired engine, and every replica on that store
follows it (:mod:`tts_trio.synthesis.fleet`, :meth:`EngineSet.converge`).

Resident engines (``TTS_ENGINES``, and the engines ``TTS_MODEL_ENGINES``
maps OpenAI models to) are loaded at start besides the current one and
stay loaded across switches; a request picks one by name (``engine``, or
OpenAI's ``model``), and each has its own pool, so its own slots and
limiter. The current engine is the default; switching to a resident engine
with no config makes that one current without loading anything, and a
resident engine switched away from stays loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from tts_trio.engines import LoadedEngine, open_engine
from tts_trio.engines.hardware import Device
from tts_trio.engines.pool import EnginePool, PoolHooks
from tts_trio.errors import ApiError, EngineLoadError, InvalidParameter, ShuttingDown
from tts_trio.settings import Settings
from tts_trio.synthesis.fleet import Fleet
from tts_trio.voices.desired_engine import DesiredEngine, record_desired

log = logging.getLogger(__name__)


class EngineSet:
    """The current engine and the others loaded beside it; switches and the fleet's switches go through here."""

    def __init__(
        self,
        settings: Settings,
        device: Device,
        current: LoadedEngine,
        *,
        residents: dict[str, LoadedEngine],
        fleet: Fleet,
        hooks: PoolHooks,
        nursery: trio.Nursery,
        streams_on: Callable[[EnginePool], int],
        on_switch: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.device = device
        self.current = current
        #: Engines kept loaded besides (or as) the current one, by name; a switch never closes them.
        self.residents = dict(residents)
        self.fleet = fleet
        self._hooks = hooks
        #: Where retired engines wait for their last stream before they are closed.
        self._nursery = nursery
        #: How many streams run on a pool now (the service counts them).
        self._streams_on = streams_on
        #: Called on every switch (the service drops its phrase cache).
        self._on_switch = on_switch
        self._retired: list[EnginePool] = []
        #: One switch at a time.
        self.switch_lock = trio.Lock()
        #: Set by :meth:`aclose`: a load that finishes later is closed, not installed; reapers stand down.
        self._closed = False

    @classmethod
    async def open(cls, settings: Settings, device: Device, fleet: Fleet, hooks: PoolHooks) -> _Opened:
        """Load the current engine and the resident ones (raises, having closed what it loaded, if one fails).

        The current engine is the fleet's recorded one when a switch was
        recorded on the store (should it fail to load here: the configured
        one, and the replica reports that it diverged), else the configured one.
        """
        desired = await trio.to_thread.run_sync(fleet.read)
        fleet.seen(desired)
        current: LoadedEngine | None = None
        if desired is not None:
            # Louder when it overrides the setting: an operator who changed TTS_ENGINE should know why not.
            log.log(
                logging.INFO if desired.engine == settings.engine else logging.WARNING,
                "opening engine %s, recorded on the voice store by the fleet's switch %d (%s on %s), not "
                "TTS_ENGINE=%s; POST /v1/engines/switch changes it for every replica",
                desired.engine,
                desired.generation,
                desired.recorded_at,
                desired.replica,
                settings.engine,
            )
            try:
                current = await open_engine(settings, device, desired.engine, desired.config, hooks=hooks)
                fleet.runs(desired)
            except Exception as error:  # whatever it was, this replica starts on its own engine and says so
                answer = _as_api_error(error, desired.engine)
                log.warning("the fleet's engine %s cannot be loaded here: %s", desired.engine, answer.message)
                fleet.failed(desired, answer, trio.current_time())
        if current is None:
            current = await open_engine(settings, device, hooks=hooks)
        opened_with_config = fleet.running is not None and bool(fleet.running.config)
        residents: dict[str, LoadedEngine] = {}
        try:
            for name in settings.resident_engines:
                if name == current.name and not opened_with_config:
                    residents[name] = current
                else:
                    residents[name] = await open_engine(settings, device, name, hooks=hooks)
                log.info("engine %s resident with %d slots", name, residents[name].pool.statistics().total)
        except BaseException:
            with trio.CancelScope(shield=True):
                for loaded in {id(item): item for item in [current, *residents.values()]}.values():
                    await loaded.pool.aclose()
            raise
        return _Opened(current, residents)

    async def aclose(self) -> None:
        """Close every engine, once; a switch or fleet load in progress finishes first (a load cannot be cut)."""
        with trio.CancelScope(shield=True):
            async with self.switch_lock:
                self._closed = True
                every = [self.current.pool, *(resident.pool for resident in self.residents.values()), *self._retired]
                self._retired.clear()
                for pool in {id(pool): pool for pool in every}.values():
                    await pool.aclose()

    # -- which engine ------------------------------------------------------
    def loaded(self) -> dict[str, LoadedEngine]:
        """Every engine a request may name: the residents, and the current one (which wins for its name)."""
        return {**self.residents, self.current.name: self.current}

    def loaded_names(self) -> set[str]:
        """What runs here, retired engines still finishing streams included."""
        return {*self.loaded(), *(pool.name for pool in self._retired)}

    def named(self, name: str | None) -> LoadedEngine:
        """The engine a request named (None: the current one); 422 naming the loaded ones otherwise."""
        if name is None or name == self.current.name:
            return self.current
        engine = self.residents.get(name)
        if engine is None:
            raise InvalidParameter(
                f"engine: {name!r} is not loaded here; loaded: {', '.join(sorted(self.loaded()))} "
                "(TTS_ENGINES keeps more engines loaded)",
                field="engine",
            )
        return engine

    # -- switching ---------------------------------------------------------
    async def switch(self, name: str, config: dict[str, Any] | None) -> tuple[LoadedEngine, DesiredEngine | None]:
        """Load ``name`` off the event loop, record it for the fleet, and make it current.

        On failure the old one stays current and nothing is recorded: a load
        that fails is its own answer (4xx or 503); a store that cannot take
        the record (full, read-only) closes the new engine again and answers
        507 or 503, so this replica never runs what the others will not.
        Returns the engine and the record (None with ``TTS_FLEET_POLL=0``).
        """
        async with self.switch_lock:
            self._check_open()
            loaded = await self._obtain(name, config)
            record = None
            if self.fleet.enabled:
                try:
                    root = self.settings.voices_path
                    record = await trio.to_thread.run_sync(record_desired, root, name, config or {})
                except BaseException:
                    if not self._is_resident(loaded):
                        with trio.CancelScope(shield=True):
                            await loaded.pool.aclose()
                    raise
            self._install(loaded)
            self.fleet.runs(record)
            return loaded, record

    async def converge(self) -> None:
        """Load the fleet's desired engine if this replica does not run it yet (the fleet's poll calls this)."""
        async with self.switch_lock:
            # Read again under the lock: a switch made here while the poll read may be newer than what it read.
            self.fleet.seen(await trio.to_thread.run_sync(self.fleet.read))
            desired = self.fleet.wanted(trio.current_time())
            if desired is None or self._closed:
                return  # a local switch or an earlier poll got there first, or the server is stopping
            self.fleet.loading = True
            try:
                loaded = await self._obtain(desired.engine, desired.config)
            except Exception as error:  # never the end of the replica: it stays on its engine and says so
                answer = _as_api_error(error, desired.engine)
                log.warning(
                    "fleet: engine %s (switch %d) cannot be loaded here; staying on %s: %s",
                    desired.engine,
                    desired.generation,
                    self.current.name,
                    answer.message,
                )
                self.fleet.failed(desired, answer, trio.current_time())
                return
            finally:
                self.fleet.loading = False
            log.info("fleet: following switch %d", desired.generation)
            self._install(loaded)
            self.fleet.runs(desired)

    async def _obtain(self, name: str, config: dict[str, Any] | None) -> LoadedEngine:
        """A resident engine when it is asked for with no config, else a newly loaded one."""
        resident = self.residents.get(name)
        if resident is not None and not config:
            return resident
        return await open_engine(self.settings, self.device, name, config, hooks=self._hooks)

    def _check_open(self) -> None:
        if self._closed:
            raise ShuttingDown("the server is shutting down: no engine switch now", retry_after=1)

    def _is_resident(self, engine: LoadedEngine) -> bool:
        return any(engine is resident for resident in self.residents.values())

    def _install(self, loaded: LoadedEngine) -> None:
        """Make ``loaded`` current; the old engine, unless resident, finishes its streams and is shut down."""
        old, self.current = self.current, loaded
        self._on_switch()
        log.info("switched engine from %s to %s", old.name, loaded.name)
        if old is not loaded and not self._is_resident(old):
            self._retire(old.pool)

    def _retire(self, pool: EnginePool) -> None:
        """Shut ``pool`` down once no stream has used it for a while.

        Requests resolve their engine before they start streaming (they may
        wait for an admission place, or in a WebSocket's queue), so an old
        pool is kept until it has had no stream for longer than such a wait.
        """
        self._retired.append(pool)
        grace = self.settings.max_queue_wait + 1.0

        async def reap() -> None:
            try:
                idle_since = trio.current_time()
                while True:
                    await trio.sleep(min(grace, 1.0))
                    if self._closed:
                        return  # aclose closed it
                    if self._streams_on(pool):
                        idle_since = trio.current_time()
                    elif trio.current_time() - idle_since >= grace:
                        break
                self._retired.remove(pool)
                await pool.aclose()
            except Exception:
                log.exception("closing the previous engine failed")

        self._nursery.start_soon(reap)


def _as_api_error(error: Exception, engine: str) -> ApiError:
    """What a failed load of the fleet's engine is reported as in ``/health`` (the log has the rest)."""
    if isinstance(error, ApiError):
        return error
    log.error("loading engine %s failed", engine, exc_info=error)
    return EngineLoadError(f"engine {engine!r} failed to load here; the server log says why", engine=engine)


class _Opened:
    """What :meth:`EngineSet.open` loaded, before the set (which needs the service's callbacks) is built."""

    def __init__(self, current: LoadedEngine, residents: dict[str, LoadedEngine]) -> None:
        self.current = current
        self.residents = residents
