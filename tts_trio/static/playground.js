// tts-trio playground: streams over the WebSocket API and plays audio as it arrives.
// Plain script, no build step, no inline code (a strict Content-Security-Policy keeps working).
// pcm and wav are played live with Web Audio; compressed formats are collected and handed
// to an <audio> element at the end. Words and captions are highlighted from the timings the
// server sends, at the time the listener hears them: the AudioContext's clock mapped through
// the schedule of the audio buffers (live formats) or the <audio> element's currentTime.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "tts-trio.api-key";
const state = { ws: null, audio: null, playAt: 0, sent: 0, firstAudio: null, bytes: 0, seconds: 0,
                format: null, chunks: [], peaks: [], running: false,
                // Highlighting: what was heard when, and what the server said is where.
                mode: "idle", segments: [], streamPos: 0, frozen: null, words: [], cues: [],
                currentWord: -1, currentCue: -1 };

// Exposed for tests and for curious users: the timings as received, and the playback clock.
window.__ttsTimings = [];
window.__ttsWords = state.words;
window.__ttsCues = state.cues;
window.__ttsPlaybackTime = () => playbackTime();

function setStatus(text) { $("status").textContent = text; }
function showError(text) { $("error").textContent = text; }

// ---- API key and HTTP ------------------------------------------------------------------------

function apiKey() { return $("api-key").value.trim(); }

class ApiError extends Error {
  constructor(status, code, message) {
    super(`${status}${code ? ` ${code}` : ""}: ${message}`);
    this.status = status; this.code = code;
  }
}

// fetch() with the key as a bearer token; an error answer ({"error": {code, message}}) throws ApiError.
async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  const key = apiKey();
  if (key) { headers.Authorization = `Bearer ${key}`; }
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let code = "", message = response.statusText || "request failed";
    try {
      const body = await response.json();
      if (body && body.error) { code = body.error.code || ""; message = body.error.message || message; }
    } catch (ignored) { /* not JSON */ }
    throw new ApiError(response.status, code, message);
  }
  return response;
}

async function loadOptions() {
  const health = await (await fetch("/health")).json();
  $("server").textContent = `engine ${health.engine} on ${health.device}, ${health.slots.total} slots`;
  $("engine").replaceChildren();
  const engine = document.createElement("option");
  engine.value = engine.textContent = health.engine;
  $("engine").append(engine);
  await loadVoices();
}

async function loadVoices() {
  let voices;
  try {
    voices = await (await api("/v1/audio/voices")).json();
  } catch (error) {
    showError(`voices: ${error.message}`);
    return;
  }
  if ($("error").textContent.startsWith("voices:")) { showError(""); }
  const selected = $("voice").value;
  $("voice").replaceChildren();
  const add = (value, label) => {
    const option = document.createElement("option");
    option.value = value; option.textContent = label;
    $("voice").append(option);
  };
  add("default", `default (${voices.default})`);
  for (const voice of voices.voices) { add(voice.id, `${voice.id} – ${voice.name}`); }
  for (const [alias, id] of Object.entries(voices.openai_voices)) { add(id, `${alias} (${id})`); }
  if ([...$("voice").options].some((option) => option.value === selected)) { $("voice").value = selected; }
}

function keyChanged() {
  const key = apiKey();
  if (key) { sessionStorage.setItem(KEY_STORAGE, key); } else { sessionStorage.removeItem(KEY_STORAGE); }
  // The socket was opened with the old key: the next generation opens one with the new key.
  if (state.ws && !state.running) { state.ws.close(); state.ws = null; }
}

// ---- Audio -----------------------------------------------------------------------------------

function drawWaveform() {
  const canvas = $("waveform");
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.fillStyle = "#2860d8";
  const columns = canvas.width;
  const perColumn = Math.max(1, Math.ceil(state.peaks.length / columns));
  for (let x = 0; x * perColumn < state.peaks.length; x++) {
    let peak = 0;
    for (let i = x * perColumn; i < Math.min(state.peaks.length, (x + 1) * perColumn); i++) {
      peak = Math.max(peak, state.peaks[i]);
    }
    const height = Math.max(1, peak * canvas.height);
    context.fillRect(x, (canvas.height - height) / 2, 1, height);
  }
}

function playPcm(samples, rate) {
  if (!state.audio) { return; }
  const floats = new Float32Array(samples.length);
  let peak = 0;
  for (let i = 0; i < samples.length; i++) {
    floats[i] = samples[i] / 32768;
    if (i % 256 === 255) { state.peaks.push(peak); peak = 0; }
    peak = Math.max(peak, Math.abs(floats[i]));
  }
  const buffer = state.audio.createBuffer(1, floats.length, rate);
  buffer.copyToChannel(floats, 0);
  const source = state.audio.createBufferSource();
  source.buffer = buffer;
  source.connect(state.audio.destination);
  state.playAt = Math.max(state.playAt, state.audio.currentTime + 0.05);
  source.start(state.playAt);
  // Where this stretch of the stream plays on the AudioContext's clock (a late chunk moves on).
  state.segments.push({ at: state.playAt, stream: state.streamPos, duration: buffer.duration });
  state.streamPos += buffer.duration;
  state.playAt += buffer.duration;
  drawWaveform();
}

// Seconds of the stream the listener has heard so far (-1: nothing yet). Frozen after a stop.
function playbackTime() {
  if (state.frozen !== null) { return state.frozen; }
  if (state.mode === "live") {
    if (!state.audio) { return -1; }
    const now = state.audio.currentTime;
    let heard = -1;
    for (const segment of state.segments) {
      if (segment.at > now) { break; }
      heard = segment.stream + Math.min(now - segment.at, segment.duration);
    }
    return heard;
  }
  if (state.mode === "element") {
    const player = $("player");
    if (!player.src || (player.paused && player.currentTime === 0)) { return -1; }
    return player.currentTime;
  }
  return -1;
}

function onAudio(data) {
  if (state.firstAudio === null) {
    state.firstAudio = performance.now();
    $("ttfa").textContent = `${(state.firstAudio - state.sent).toFixed(1)} ms`;
  }
  state.bytes += data.byteLength;
  $("bytes").textContent = String(state.bytes);
  const format = state.format;
  if (format.container === "pcm") {
    const samples = new Int16Array(data.slice(0, data.byteLength - (data.byteLength % 2)));
    state.seconds += samples.length / format.sample_rate;
    playPcm(samples, format.sample_rate);
  } else if (format.container === "wav") {
    // Each binary message is a complete WAV file: 44-byte header, then samples.
    const samples = new Int16Array(data.slice(44, data.byteLength - ((data.byteLength - 44) % 2)));
    state.seconds += samples.length / format.sample_rate;
    playPcm(samples, format.sample_rate);
  } else {
    state.chunks.push(data);
  }
  $("received").textContent = `${state.seconds.toFixed(2)} s`;
}

// ---- Words and captions ----------------------------------------------------------------------

function vttTime(seconds) {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const pad = (n, width) => String(n).padStart(width, "0");
  return `${pad(Math.floor(ms / 3600000), 2)}:${pad(Math.floor(ms / 60000) % 60, 2)}:`
    + `${pad(Math.floor(ms / 1000) % 60, 2)}.${pad(ms % 1000, 3)}`;
}

// One sentence's timings: its words into the transcript, one caption cue for the sentence.
function onTimings(message) {
  window.__ttsTimings.push(message);
  $("current-sentence").textContent = message.text;
  const sentence = document.createElement("span");
  sentence.className = "sentence";
  const words = message.words && message.words.length ? message.words
    : [{ word: message.text, start: message.start, end: message.end }];  // engines without word events
  for (const word of words) {
    const span = document.createElement("span");
    span.className = "word";
    span.dataset.index = String(state.words.length);
    span.dataset.start = String(word.start);
    span.dataset.end = String(word.end);
    span.textContent = word.word;
    state.words.push({ word: word.word, start: word.start, end: word.end, sentence: message.sentence, span });
    sentence.append(span, " ");
  }
  $("transcript").append(sentence);
  const cue = { number: state.cues.length + 1, start: message.start, end: message.end, text: message.text };
  const item = document.createElement("li");
  item.dataset.start = String(cue.start);
  item.dataset.end = String(cue.end);
  const time = document.createElement("span");
  time.className = "cue-time";
  time.textContent = `${vttTime(cue.start)} → ${vttTime(cue.end)}`;
  const text = document.createElement("span");
  text.className = "cue-text";
  text.textContent = cue.text;
  item.append(time, text);
  cue.item = item;
  state.cues.push(cue);
  $("captions").append(item);
}

function captionsDocument() {
  return "WEBVTT\n\n" + state.cues.map((cue) => `${cue.number}\n${vttTime(cue.start)} --> ${vttTime(cue.end)}\n${cue.text}\n`).join("\n");
}

// The last item whose start has been heard (-1 before the first): a word stays lit through the pause after it.
function lastStarted(items, time) {
  let found = -1;
  for (let i = 0; i < items.length && items[i].start <= time; i++) { found = i; }
  return found;
}

function moveMark(items, previous, next, className) {
  if (previous === next) { return next; }
  const element = (index) => (index >= 0 && index < items.length ? (items[index].span || items[index].item) : null);
  const old = element(previous);
  if (old) { old.classList.remove(className); old.removeAttribute("aria-current"); }
  const now = element(next);
  if (now) { now.classList.add(className); now.setAttribute("aria-current", "true"); }
  return next;
}

function highlight() {
  const time = playbackTime();
  state.currentWord = moveMark(state.words, state.currentWord, lastStarted(state.words, time), "current");
  state.currentCue = moveMark(state.cues, state.currentCue, lastStarted(state.cues, time), "current");
  // What this highlight was computed from (the tests check it against the timings).
  $("transcript").dataset.time = String(time);
  $("transcript").dataset.words = String(state.words.length);
  $("captions").dataset.cues = String(state.cues.length);
  $("stop").disabled = !(state.running || playing());  // stop also silences audio still playing
}

// Whether audio is still coming out of the speakers (a stream that is done may still be playing).
function playing() {
  if (state.frozen !== null) { return false; }
  if (state.mode === "live") { return Boolean(state.audio) && state.audio.currentTime < state.playAt; }
  if (state.mode === "element") { const player = $("player"); return Boolean(player.src) && !player.paused && !player.ended; }
  return false;
}

// ---- The generation --------------------------------------------------------------------------

function finish(status) {
  state.running = false;
  $("speak").disabled = false;
  $("stop").disabled = !playing();
  setStatus(status);
  if (state.cues.length) {
    const link = $("captions-download");
    link.href = URL.createObjectURL(new Blob([captionsDocument()], { type: "text/vtt" }));
    link.download = "speech.vtt"; link.hidden = false;
  }
  if (state.chunks.length && status === "done") {
    const types = { mp3: "audio/mpeg", opus: "audio/ogg", flac: "audio/flac", aac: "audio/aac" };
    const blob = new Blob(state.chunks, { type: types[state.format.container] });
    const url = URL.createObjectURL(blob);
    $("player").src = url; $("player").hidden = false;
    $("download").href = url; $("download").download = `speech.${state.format.container}`;
    $("download").hidden = false;
    $("player").play().catch(() => { /* autoplay refused: the controls play it */ });
  }
}

function onMessage(event) {
  if (event.data instanceof ArrayBuffer) { onAudio(event.data); return; }
  const message = JSON.parse(event.data);
  if (message.type === "start") { state.format = message.format; setStatus("streaming"); }
  else if (message.type === "timings") {
    onTimings(message);
    if (state.format && !["pcm", "wav"].includes(state.format.container)) { state.seconds = message.end; }
  }
  else if (message.type === "metrics") {
    $("received").textContent = `${message.data.audio_duration.toFixed(2)} s`;
  }
  else if (message.type === "done") { finish("done"); }
  else if (message.type === "stopped") { finish("stopped"); }
  else if (message.type === "error") {
    showError(`${message.code}: ${message.message}`);
    finish(`error: ${message.message}`);
  }
}

// Why a WebSocket handshake failed (browsers do not say): ask over HTTP with the same key.
async function explainRefusal() {
  try {
    await api("/v1/audio/voices");
  } catch (error) {
    return new Error(error.message);
  }
  return new Error("the WebSocket connection failed");
}

function connect() {
  return new Promise((resolve, reject) => {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) { resolve(state.ws); return; }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const key = apiKey();
    // Browsers cannot set headers on a WebSocket: the key travels as a subprotocol, never in the URL.
    const protocols = key ? ["tts-trio", `bearer.${key}`] : ["tts-trio"];
    let ws;
    try {
      ws = new WebSocket(`${scheme}://${location.host}/v1/tts/stream`, protocols);
    } catch (error) {
      reject(new Error("this API key has characters a WebSocket subprotocol cannot carry"));
      return;
    }
    let opened = false;
    ws.binaryType = "arraybuffer";
    ws.onmessage = onMessage;
    ws.onopen = () => { opened = true; state.ws = ws; resolve(ws); };
    ws.onerror = () => { if (!opened) { explainRefusal().then(reject); } };
    ws.onclose = () => {
      if (state.ws === ws) { state.ws = null; }
      if (opened && state.running) { finish("disconnected"); }
    };
  });
}

function speechText() {
  const text = $("text").value;
  if (!$("ssml").checked || /^\s*<speak[\s>/]/.test(text)) { return text; }
  return `<speak>${text}</speak>`;  // the textarea holds SSML markup without the <speak> root
}

function resetFollow() {
  window.__ttsTimings = [];
  state.words.length = 0; state.cues.length = 0;
  state.segments = []; state.streamPos = 0; state.frozen = null;
  state.currentWord = -1; state.currentCue = -1;
  $("transcript").replaceChildren(); $("captions").replaceChildren();
  $("captions-download").hidden = true;
}

async function speak() {
  showError("");
  const ws = await connect();
  if (!state.audio) { state.audio = new AudioContext(); }
  await state.audio.resume();
  const player = $("player");
  player.pause(); player.removeAttribute("src"); player.load();
  Object.assign(state, { playAt: 0, firstAudio: null, bytes: 0, seconds: 0, chunks: [], peaks: [], running: true });
  resetFollow();
  state.mode = ["pcm", "wav"].includes($("format").value) ? "live" : "element";
  $("player").hidden = true; $("download").hidden = true;
  $("ttfa").textContent = "–"; $("received").textContent = "0.00 s"; $("bytes").textContent = "0";
  $("current-sentence").textContent = "";
  $("speak").disabled = true; $("stop").disabled = false;
  drawWaveform();
  setStatus("waiting");
  state.sent = performance.now();
  ws.send(JSON.stringify({
    action: "generate",
    text: speechText(),
    voice_id: $("voice").value || "default",
    output_format: $("format").value,
    speed: Number($("speed").value),
  }));
}

function stop() {
  // What was heard is where the highlight stays: freeze the clock before silencing.
  highlight();
  state.frozen = playbackTime();
  // The server answers "stopped" (also when its stream was already done).
  if (state.ws && state.ws.readyState === WebSocket.OPEN) { state.ws.send(JSON.stringify({ action: "stop" })); }
  else { finish("stopped"); }
  $("player").pause();
  if (state.audio) { state.audio.close(); state.audio = null; }  // silence what is already scheduled
}

// ---- Lexicon ---------------------------------------------------------------------------------

function lexiconError(text) { $("lexicon-error").textContent = text; }

async function lexiconCall(action) {
  lexiconError("");
  try {
    await action();
  } catch (error) {
    lexiconError(error.message);
  }
}

async function loadLexicon() {
  const { entries } = await (await api("/v1/lexicon")).json();
  const rows = entries.map((entry) => {
    const row = document.createElement("tr");
    const cells = [entry.word, "spoken" in entry ? entry.spoken : `/${entry.phonemes}/`, entry.case_sensitive ? "yes" : "no"]
      .map((text) => { const cell = document.createElement("td"); cell.textContent = text; return cell; });
    const remove = document.createElement("button");
    remove.type = "button"; remove.textContent = "Delete"; remove.className = "lexicon-delete";
    remove.setAttribute("aria-label", `Delete ${entry.word}`);
    remove.addEventListener("click", () => lexiconCall(async () => {
      await api(`/v1/lexicon/${encodeURIComponent(entry.word)}`, { method: "DELETE" });
      $("lexicon-status").textContent = `deleted ${entry.word}`;
      await loadLexicon();
    }));
    const actions = document.createElement("td");
    actions.append(remove);
    row.append(...cells, actions);
    row.dataset.word = entry.word;
    return row;
  });
  $("lexicon-entries").replaceChildren(...rows);
  $("lexicon-table").dataset.loaded = "true";
  if (!$("lexicon-status").textContent.startsWith("saved") && !$("lexicon-status").textContent.startsWith("deleted")) {
    $("lexicon-status").textContent = `${entries.length} entr${entries.length === 1 ? "y" : "ies"}`;
  }
}

async function saveEntry(event) {
  event.preventDefault();
  await lexiconCall(async () => {
    const word = $("lexicon-word").value.trim();
    const body = { [$("lexicon-kind").value]: $("lexicon-value").value, case_sensitive: $("lexicon-case").checked };
    await api(`/v1/lexicon/${encodeURIComponent(word)}`, {
      method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    $("lexicon-status").textContent = `saved ${word}`;
    await loadLexicon();
  });
}

async function previewLexicon(event) {
  event.preventDefault();
  await lexiconCall(async () => {
    const response = await api("/v1/lexicon/preview", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text: $("lexicon-preview-text").value }),
    });
    const result = await response.json();
    const warnings = result.warnings && result.warnings.length ? ` (${result.warnings.join("; ")})` : "";
    $("lexicon-preview-result").textContent = `${result.text}${warnings}`;
  });
}

// ---- Wiring ----------------------------------------------------------------------------------

$("api-key").value = sessionStorage.getItem(KEY_STORAGE) || "";
$("api-key").addEventListener("input", keyChanged);
$("api-key").addEventListener("change", () => {
  loadVoices();
  lexiconCall(loadLexicon);
});
$("speak").addEventListener("click", () => {
  speak().catch((error) => { showError(error.message); finish(`error: ${error.message}`); });
});
$("stop").addEventListener("click", stop);
$("speed").addEventListener("input", () => { $("speed-value").textContent = `${Number($("speed").value).toFixed(1)}×`; });
$("lexicon-form").addEventListener("submit", saveEntry);
$("lexicon-refresh").addEventListener("click", () => {
  $("lexicon-status").textContent = "";
  lexiconCall(loadLexicon);
});
$("lexicon-preview-form").addEventListener("submit", previewLexicon);
setInterval(highlight, 40);
loadOptions().catch((error) => { $("server").textContent = `server unreachable: ${error.message}`; });
lexiconCall(loadLexicon);
