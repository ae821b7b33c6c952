"""The ``WS /v1/tts/stream`` protocol without the socket: messages in, decisions and frames out.

Nothing here awaits or touches a socket. :func:`parse_command` turns one
client message into a typed command (or raises the :class:`ApiError` the
client gets). :class:`WsProtocol` keeps the rules: generations are queued up
to a limit, every ``stop`` starts a new epoch so queued work of the old one
is never started, contexts are opened by their first ``append``, receive
sentences as soon as their end is certain and end on ``end``. Its
:meth:`WsProtocol.handle` answers each command with a list of effects that
the session (the I/O side) carries out in order: send a message, start or
cancel work, hand sentences to a context. :mod:`.frames` says what a
generation's and a context's stream look like on the wire.

Keeping these rules apart from trio and Quart is what lets them be tested
message by message, and lets the session be only tasks and sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs

from tts_trio.audio.encoding import EncodingChoice
from tts_trio.errors import ApiError, BadRequest, InvalidJson, InvalidParameter, QueueFull, TextTooLong, UnknownAction
from tts_trio.synthesis.params import (
    ContextParams,
    GenerateParams,
    WsGenerateParams,
    clean_text,
    parse_json_params,
    with_text,
)
from tts_trio.synthesis.pipeline import ScriptItem, SynthesisJob
from tts_trio.synthesis.sentences import SentenceAssembler, SsmlDocuments
from tts_trio.synthesis.ssml import is_ssml

#: Text-in contexts one socket may have open at once.
MAX_CONTEXTS = 16
_ACTIONS = "use generate, stop, ping, append, flush or end"


# -- commands (client -> server) -------------------------------------------
@attrs.frozen
class Ping:
    pass


@attrs.frozen
class Stop:
    #: None stops everything; a context id stops that context.
    context_id: str | None


@attrs.frozen
class Generate:
    data: dict[str, Any]


@attrs.frozen
class Append:
    context_id: str
    text: str
    #: Options of the context's first append (voice_id, output_format, ...).
    options: dict[str, Any]


@attrs.frozen
class Flush:
    context_id: str


@attrs.frozen
class End:
    context_id: str


Command = Ping | Stop | Generate | Append | Flush | End


@attrs.frozen
class CommandError(Exception):
    """A refused command, with the ids the client gave so it can tell which request failed."""

    error: ApiError
    ids: dict[str, str]


def _ids(data: dict[str, Any]) -> dict[str, str]:
    return {key: data[key][:128] for key in ("request_id", "context_id") if isinstance(data.get(key), str)}


def parse_command(message: str | bytes | None) -> Command:
    """One client message as a command; raises :class:`ApiError` or :class:`CommandError`."""
    if message is None or isinstance(message, bytes):  # an empty frame arrives as None
        raise BadRequest("binary messages are not accepted; send JSON text")
    try:
        data = json.loads(message)
    except (json.JSONDecodeError, RecursionError):
        raise InvalidJson("the message is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("a message must be a JSON object with an 'action'")
    action = data.pop("action", None)
    if action == "ping":
        return Ping()
    if action == "stop":
        context_id = data.get("context_id")
        return Stop(None if context_id is None else str(context_id))
    if action == "generate":
        return Generate(data)
    if action in ("append", "flush", "end"):
        try:
            return _context_command(action, data)
        except ApiError as error:
            raise CommandError(error, _ids(data)) from None
    if action is None:
        raise BadRequest(f"the message has no 'action'; {_ACTIONS}")
    raise UnknownAction(f"unknown action {str(action)[:40]!r}; {_ACTIONS}")


def _context_command(action: str, data: dict[str, Any]) -> Command:
    context_id = data.get("context_id")
    if not isinstance(context_id, str) or not 0 < len(context_id) <= 128:
        raise InvalidParameter("context_id: a string of 1 to 128 characters is required", field="context_id")
    if action == "append":
        text = data.get("text")
        if not isinstance(text, str) or not text:
            raise InvalidParameter("text: a non-empty string is required", field="text")
        options = {key: value for key, value in data.items() if key not in ("context_id", "text")}
        return Append(context_id, clean_text(text), options)
    if set(data) - {"context_id"}:
        raise InvalidParameter(f"{action} takes only a context_id", field="context_id")
    return Flush(context_id) if action == "flush" else End(context_id)


# -- work the protocol hands out ---------------------------------------------
@attrs.frozen
class Generation:
    """A validated ``generate``; ``epoch`` says which ``stop`` it belongs before."""

    job: SynthesisJob
    params: WsGenerateParams
    choice: EncodingChoice
    request_id: str
    epoch: int


@attrs.define(eq=False)
class Context:
    """A text-in stream: text arrives in pieces, sentences are handed out as they complete."""

    context_id: str
    job: SynthesisJob
    choice: EncodingChoice
    assembler: SentenceAssembler
    #: The options of its first append: each SSML document is resolved with them.
    params: ContextParams | None = None
    #: Set when the first append is SSML (``<speak``): the context then speaks whole documents.
    documents: SsmlDocuments | None = None
    received_chars: int = 0
    ended: bool = False


# -- effects (what the session does, in order) --------------------------------
@attrs.frozen
class SendMessage:
    payload: dict[str, Any]


@attrs.frozen
class Enqueue:
    generation: Generation


@attrs.frozen
class CancelRunning:
    """Cancel the generation in progress (a ``stop``, counted as a cancellation)."""


@attrs.frozen
class OpenContext:
    context: Context


@attrs.frozen
class Speak:
    context: Context
    #: Sentences to synthesize, or an SSML document's script; an empty tuple only says the client is still there.
    sentences: tuple[str | ScriptItem, ...]


@attrs.frozen
class CloseContext:
    """No more text will come for the context: it ends once what it holds is spoken."""

    context: Context


@attrs.frozen
class CancelContext:
    context: Context
    #: Whether this is a client's ``stop`` (counted as a cancellation) or a refusal.
    stopped: bool


Effect = SendMessage | Enqueue | CancelRunning | OpenContext | Speak | CloseContext | CancelContext


@attrs.define
class Limits:
    max_queued: int
    max_text_chars: int
    max_sentence_chars: int


def error_message(error: ApiError, ids: dict[str, str] | None = None) -> dict[str, Any]:
    return {"type": "error", **(ids or {}), **error.to_dict()}


class WsProtocol:
    """The rules of one socket: queue and epochs of generations, open contexts.

    ``resolve`` turns parameters into a job and an encoding (it raises the
    client's 4xx); ``check_open`` raises ``shutting_down`` while the server
    drains. Both come from the service: they validate, they do no I/O.
    """

    def __init__(
        self,
        limits: Limits,
        resolve: Callable[[GenerateParams], tuple[SynthesisJob, EncodingChoice]],
        check_open: Callable[[], None],
    ) -> None:
        self.limits = limits
        self._resolve = resolve
        self._check_open = check_open
        self.epoch = 0
        self._counter = 0
        #: Generations accepted in this epoch and not yet taken by the runner.
        self.queued = 0
        self.running: Generation | None = None
        self.contexts: dict[str, Context] = {}

    def busy(self) -> bool:
        return self.queued > 0 or self.running is not None or bool(self.contexts)

    def handle(self, command: Command) -> list[Effect]:
        """The effects of one command; raises :class:`ApiError` or :class:`CommandError` for the client."""
        if isinstance(command, Ping):
            return [SendMessage({"type": "pong"})]
        if isinstance(command, Stop):
            return self._stop(command.context_id)
        if isinstance(command, Generate):
            try:
                return [Enqueue(self._generation(command.data))]
            except ApiError as error:
                raise CommandError(error, _ids(command.data)) from None
        try:
            return self._context_command(command)
        except ApiError as error:
            options = command.options if isinstance(command, Append) else {}
            raise CommandError(error, _ids({**options, "context_id": command.context_id})) from None

    # -- generations ---------------------------------------------------------
    def _generation(self, data: dict[str, Any]) -> Generation:
        self._check_open()
        params = parse_json_params(WsGenerateParams, data, max_text_chars=self.limits.max_text_chars)
        job, choice = self._resolve(params)
        self._counter += 1
        request_id = params.request_id or f"g{self._counter}"
        if self.queued >= self.limits.max_queued:
            raise QueueFull(
                f"{self.limits.max_queued} generations are already queued; wait for 'done' or send 'stop'",
                request_id=request_id,
            )
        self.queued += 1
        return Generation(job, params, choice, request_id, self.epoch)

    def take(self, generation: Generation) -> bool:
        """The runner took ``generation`` from the queue: whether to run it (not stopped since)."""
        if generation.epoch != self.epoch:
            return False  # already discounted by the stop that ended its epoch
        self.queued -= 1
        self.running = generation
        return True

    def generation_ended(self, generation: Generation) -> None:
        if self.running is generation:
            self.running = None

    def _stop(self, context_id: str | None) -> list[Effect]:
        if context_id is not None:
            context = self.contexts.pop(context_id, None)
            if context is None:
                raise InvalidParameter(f"no open context {context_id[:40]!r}", field="context_id")
            return [CancelContext(context, stopped=True), SendMessage({"type": "stopped", "context_id": context_id})]
        self.epoch += 1
        self.queued = 0  # a generate right after stop finds room
        effects: list[Effect] = []
        stopped_id = None
        if self.running is not None:
            stopped_id = self.running.request_id
            effects.append(CancelRunning())
        effects.extend(CancelContext(context, stopped=True) for context in self.contexts.values())
        # Forgotten at once: the ids are free again even while the engine winds down.
        self.contexts.clear()
        effects.append(SendMessage({"type": "stopped", "request_id": stopped_id}))
        return effects

    # -- text-in contexts --------------------------------------------------------
    def _context_command(self, command: Append | Flush | End) -> list[Effect]:
        context = self.contexts.get(command.context_id)
        if isinstance(command, Append):
            # Every dialect's text, cleaned here once more: control characters, the server's phoneme marks.
            command = attrs.evolve(command, text=clean_text(command.text))
            effects: list[Effect] = []
            if context is None:
                context = self._open_context(command)
                effects.append(OpenContext(context))
            elif command.options:
                raise InvalidParameter("options can only be given with a context's first append", field="context_id")
            if context.ended:
                raise InvalidParameter(f"context {command.context_id!r} has ended", field="context_id")
            context.received_chars += len(command.text)
            if context.received_chars > self.limits.max_text_chars:
                error = TextTooLong(f"a context may receive at most {self.limits.max_text_chars} characters")
                ids = _ids({**command.options, "context_id": command.context_id})
                return [*effects, CancelContext(context, stopped=False), SendMessage(error_message(error, ids))]
            if context.documents is not None:
                sentences, refused = self._scripts(context, context.documents.feed(command.text))
            else:
                sentences, refused = tuple(context.assembler.feed(command.text)), []
            if sentences:
                effects.append(Speak(context, sentences))
            # A bad document is said and skipped; the context (opened above or before) goes on.
            effects.extend(SendMessage(message) for message in refused)
            return effects
        if context is None:
            raise InvalidParameter(f"no open context {command.context_id!r}", field="context_id")
        effects = []
        held: tuple[str | ScriptItem, ...] = tuple(context.assembler.flush())
        if context.documents is not None:
            rest = context.documents.flush()
            # An unfinished document is said; the context goes on (or ends).
            held, refused = self._scripts(context, [rest] if rest.strip() else [])
            effects.extend(SendMessage(message) for message in refused)
        if held or (isinstance(command, Flush) and not context.ended):
            effects.append(Speak(context, held))  # nothing to speak: the client is still there
        if isinstance(command, End):
            context.ended = True
            effects.append(CloseContext(context))
        return effects

    def _scripts(
        self, context: Context, documents: list[str]
    ) -> tuple[tuple[str | ScriptItem, ...], list[dict[str, Any]]]:
        """What whole SSML documents say, resolved as the context's own text would be; errors for bad ones.

        Each document is resolved on its own, so one bad document costs only
        itself. Text between documents is not SSML, and refused as such.
        """
        assert context.params is not None
        items: list[str | ScriptItem] = []
        refused: list[dict[str, Any]] = []
        for document in documents:
            try:
                if not is_ssml(document):
                    raise InvalidParameter(
                        "text: in a context that speaks SSML, every text is a <speak> document", field="text"
                    )
                params = with_text(context.params, document, max_text_chars=self.limits.max_text_chars)
                job, _ = self._resolve(params)
            except ApiError as error:
                refused.append(error_message(error, {"context_id": context.context_id}))
                continue
            if job.script is not None:
                items.extend(job.script)
        return tuple(items), refused

    def _open_context(self, command: Append) -> Context:
        if len(self.contexts) >= MAX_CONTEXTS:
            raise QueueFull(f"at most {MAX_CONTEXTS} contexts may be open on one socket")
        self._check_open()
        params = parse_json_params(
            ContextParams, {"text": "-", **command.options}, max_text_chars=self.limits.max_text_chars
        )
        job, choice = self._resolve(params)
        # Its documents are resolved later against the engine it speaks on, even after a switch.
        params = attrs.evolve(params, engine=job.pool.name)
        context = Context(
            command.context_id,
            job,
            choice,
            SentenceAssembler(max_chars=self.limits.max_sentence_chars),
            params=params,
            documents=SsmlDocuments() if is_ssml(command.text) else None,
        )
        self.contexts[command.context_id] = context
        return context

    def context_ended(self, context: Context) -> None:
        """The context's task ended (done, error, cancelled): its id is free."""
        if self.contexts.get(context.context_id) is context:
            del self.contexts[context.context_id]
