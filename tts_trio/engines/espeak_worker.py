"""A child process that keeps libespeak-ng loaded and synthesizes on request.

Why a process and not a thread: libespeak-ng keeps global state, so one
process can only synthesize one utterance at a time; spawning the
``espeak-ng`` command per sentence costs ~8 ms of start-up each (more than
the synthesis itself). One long-lived worker per slot gives real parallelism
across cores, costs ~2 ms per sentence, can be killed at once on cancel, and
a crash in native code takes down only the worker, never the server.

The file is run as a script (``python -I -S espeak_worker.py``) and imports
only the standard library, so it starts in a few tens of milliseconds.

Wire protocol (all integers big-endian):

* request, server -> worker: ``>II`` (request id, length) + UTF-8 JSON
  ``{"text", "voice", "rate", "pitch", "flush_samples"}``
* frames, worker -> server: ``>cII`` (kind, request id, length) + payload.
  Kinds: ``H`` hello (JSON: sample_rate, voices), ``A`` audio (s16le mono
  PCM), ``W`` word events (JSON list of [char_offset, char_length,
  sample_offset]), ``D`` done (JSON: samples, aborted), ``E`` error (JSON: message).
* SIGUSR1 aborts the utterance in progress at its next audio callback; the
  worker then sends ``D`` with ``"aborted": true`` and stays ready.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import signal
import struct
import sys
from typing import BinaryIO

REQUEST_HEADER = struct.Struct(">II")
FRAME_HEADER = struct.Struct(">cII")

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
#: espeakPHONEMES: "[[...]]" in the text is phoneme mnemonics (only for requests that say so).
_PHONEMES = 0x100
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_void_p),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def _load_library() -> ctypes.CDLL:
    name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    return ctypes.CDLL(name)


def _first_language(voice: _Voice) -> str:
    """Decode the first entry of espeak's (priority byte, NUL string) list."""
    if not voice.languages:
        return ""
    raw = ctypes.string_at(voice.languages + 1)
    return raw.decode("utf-8", "replace")


def _list_voices(lib: ctypes.CDLL) -> list[dict[str, object]]:
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    array = lib.espeak_ListVoices(None)
    voices: list[dict[str, object]] = []
    index = 0
    while array[index]:
        voice = array[index].contents
        language = _first_language(voice)
        if language:
            voices.append(
                {
                    "id": language,
                    "name": (voice.name or b"").decode("utf-8", "replace"),
                    "identifier": (voice.identifier or b"").decode("utf-8", "replace"),
                    "gender": {1: "male", 2: "female"}.get(voice.gender, "unknown"),
                }
            )
        index += 1
    return voices


def _list_variants(lib: ctypes.CDLL) -> list[str]:
    """Voice variants ("m3", "f2", "klatt", ...) from espeak-ng's data directory."""
    import os

    lib.espeak_Info.restype = ctypes.c_char_p
    path = ctypes.c_char_p()
    lib.espeak_Info(ctypes.byref(path))
    folder = os.path.join((path.value or b"").decode(), "voices", "!v")
    try:
        return sorted(entry for entry in os.listdir(folder) if not entry.startswith("."))
    except OSError:
        return []


class _Worker:
    def __init__(self, lib: ctypes.CDLL, out: BinaryIO) -> None:
        self.lib = lib
        self.out = out
        self.request_id = 0
        self.pending: list[bytes] = []
        self.pending_samples = 0
        self.flush_samples = 22050
        self.samples = 0
        self.words: list[list[int]] = []
        self.voice = ""
        self.identifiers: dict[str, str] = {}
        self.abort = False
        self.aborted = False
        self.callback = _Callback(self._on_audio)
        lib.espeak_SetSynthCallback(self.callback)
        # SIGUSR1 = "stop the utterance in progress"; the next callback returns 1.
        signal.signal(signal.SIGUSR1, self._on_abort_signal)

    def _on_abort_signal(self, signum: int, frame: object) -> None:
        self.abort = True

    def frame(self, kind: bytes, payload: bytes) -> None:
        self.out.write(FRAME_HEADER.pack(kind, self.request_id, len(payload)))
        self.out.write(payload)

    def _flush_audio(self) -> None:
        if self.pending:
            self.frame(b"A", b"".join(self.pending))
            self.pending.clear()
            self.pending_samples = 0
            self.out.flush()

    def _on_audio(self, wav: ctypes.Array[ctypes.c_short], count: int, events: ctypes.Array[_Event]) -> int:
        if self.abort:
            self.aborted = True
            return 1
        index = 0
        while events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == _EVENT_WORD:
                # text_position is 1-based; the server wants 0-based offsets.
                self.words.append([event.text_position - 1, event.length, event.sample])
            index += 1
        if count > 0:
            self.pending.append(ctypes.string_at(wav, count * 2))
            self.pending_samples += count
            self.samples += count
            if self.pending_samples >= self.flush_samples:
                self._flush_audio()
        return 0

    def handle(self, request_id: int, request: dict[str, object]) -> None:
        self.request_id = request_id
        self.samples = 0
        self.words = []
        # A stop signal that arrived while idle was meant for the previous request.
        self.abort = False
        self.aborted = False
        voice = str(request.get("voice") or "en")
        if voice != self.voice:
            # Voices are named by language ("en-gb"), optionally with a variant
            # ("en-gb+m3"); espeak selects by file identifier ("gmw/en+m3").
            language, _, variant = voice.partition("+")
            name = self.identifiers.get(language.lower(), language)
            if variant:
                name = f"{name}+{variant}"
            if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
                self.frame(b"E", json.dumps({"message": f"unknown voice {voice!r}"}).encode())
                self.out.flush()
                return
            self.voice = voice
        self.lib.espeak_SetParameter(_PARAM_RATE, int(request.get("rate", 175)), 0)  # type: ignore[call-overload]
        self.lib.espeak_SetParameter(_PARAM_PITCH, int(request.get("pitch", 50)), 0)  # type: ignore[call-overload]
        self.flush_samples = max(1, int(request.get("flush_samples", 22050)))  # type: ignore[call-overload]
        text = str(request.get("text", "")).encode("utf-8", "replace") + b"\0"
        flags = _CHARS_UTF8 | (_PHONEMES if request.get("phonemes") else 0)
        status = self.lib.espeak_Synth(text, len(text), 0, _POS_CHARACTER, 0, flags, None, None)
        if self.aborted:
            self.pending.clear()
            self.pending_samples = 0
            self.frame(b"D", json.dumps({"samples": self.samples, "aborted": True}).encode())
            self.out.flush()
            return
        self._flush_audio()
        if status != 0:
            self.frame(b"E", json.dumps({"message": f"espeak_Synth failed with status {status}"}).encode())
        else:
            if self.words:
                self.frame(b"W", json.dumps(self.words).encode())
            self.frame(b"D", json.dumps({"samples": self.samples}).encode())
        self.out.flush()


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main() -> int:
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    lib = _load_library()
    sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 200, None, _INITIALIZE_DONT_EXIT)
    worker = _Worker(lib, stdout)
    if sample_rate <= 0:
        worker.frame(b"E", json.dumps({"message": "espeak_Initialize failed"}).encode())
        stdout.flush()
        return 1
    voices = _list_voices(lib)
    worker.identifiers = {str(voice["id"]).lower(): str(voice["identifier"]) for voice in voices}
    hello = {"sample_rate": sample_rate, "voices": voices, "variants": _list_variants(lib)}
    worker.frame(b"H", json.dumps(hello).encode())
    stdout.flush()
    while True:
        header = _read_exact(stdin, REQUEST_HEADER.size)
        if header is None:
            return 0
        request_id, length = REQUEST_HEADER.unpack(header)
        body = _read_exact(stdin, length)
        if body is None:
            return 0
        worker.handle(request_id, json.loads(body))


if __name__ == "__main__":
    sys.exit(main())
