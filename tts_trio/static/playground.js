// tts-trio playground: streams over the WebSocket API and plays audio as it arrives.
// Plain script, no build step. pcm and wav are played live with Web Audio;
// compressed formats are collected and handed to an <audio> element at the end.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { ws: null, audio: null, playAt: 0, sent: 0, firstAudio: null, bytes: 0, seconds: 0,
                format: null, chunks: [], peaks: [], running: false };

function setStatus(text) { $("status").textContent = text; }

async function loadOptions() {
  const health = await (await fetch("/health")).json();
  $("server").textContent = `engine ${health.engine} on ${health.device}, ${health.slots.total} slots`;
  const engine = document.createElement("option");
  engine.value = engine.textContent = health.engine;
  $("engine").append(engine);
  const voices = await (await fetch("/v1/audio/voices")).json();
  const add = (value, label) => {
    const option = document.createElement("option");
    option.value = value; option.textContent = label;
    $("voice").append(option);
  };
  add("default", `default (${voices.default})`);
  for (const voice of voices.voices) { add(voice.id, `${voice.id} – ${voice.name}`); }
  for (const [alias, id] of Object.entries(voices.openai_voices)) { add(id, `${alias} (${id})`); }
}

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
  state.playAt += buffer.duration;
  drawWaveform();
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

function finish(status) {
  state.running = false;
  $("speak").disabled = false;
  $("stop").disabled = true;
  setStatus(status);
  if (state.chunks.length && status === "done") {
    const types = { mp3: "audio/mpeg", opus: "audio/ogg", flac: "audio/flac", aac: "audio/aac" };
    const blob = new Blob(state.chunks, { type: types[state.format.container] });
    const url = URL.createObjectURL(blob);
    $("player").src = url; $("player").hidden = false;
    $("download").href = url; $("download").download = `speech.${state.format.container}`;
    $("download").hidden = false;
  }
}

function onMessage(event) {
  if (event.data instanceof ArrayBuffer) { onAudio(event.data); return; }
  const message = JSON.parse(event.data);
  if (message.type === "start") { state.format = message.format; setStatus("streaming"); }
  else if (message.type === "timings") {
    $("current-sentence").textContent = message.text;
    if (state.format && !["pcm", "wav"].includes(state.format.container)) { state.seconds = message.end; }
  }
  else if (message.type === "metrics") {
    $("received").textContent = `${message.data.audio_duration.toFixed(2)} s`;
  }
  else if (message.type === "done") { finish("done"); }
  else if (message.type === "stopped") { finish("stopped"); }
  else if (message.type === "error") { finish(`error: ${message.message}`); }
}

function connect() {
  return new Promise((resolve, reject) => {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) { resolve(state.ws); return; }
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/v1/tts/stream`);
    ws.binaryType = "arraybuffer";
    ws.onmessage = onMessage;
    ws.onopen = () => { state.ws = ws; resolve(ws); };
    ws.onerror = () => reject(new Error("WebSocket failed"));
    ws.onclose = () => { if (state.running) { finish("disconnected"); } state.ws = null; };
  });
}

async function speak() {
  const ws = await connect();
  if (!state.audio) { state.audio = new AudioContext(); }
  await state.audio.resume();
  Object.assign(state, { playAt: 0, firstAudio: null, bytes: 0, seconds: 0, chunks: [], peaks: [], running: true });
  $("player").hidden = true; $("download").hidden = true;
  $("ttfa").textContent = "–"; $("received").textContent = "0.00 s"; $("bytes").textContent = "0";
  $("speak").disabled = true; $("stop").disabled = false;
  drawWaveform();
  setStatus("waiting");
  state.sent = performance.now();
  ws.send(JSON.stringify({
    action: "generate",
    text: $("text").value,
    voice_id: $("voice").value || "default",
    output_format: $("format").value,
    speed: Number($("speed").value),
  }));
}

function stop() {
  if (state.ws) { state.ws.send(JSON.stringify({ action: "stop" })); }
  if (state.audio) { state.audio.close(); state.audio = null; }  // silence what is already scheduled
}

$("speak").addEventListener("click", () => { speak().catch((error) => finish(`error: ${error.message}`)); });
$("stop").addEventListener("click", stop);
$("speed").addEventListener("input", () => { $("speed-value").textContent = `${Number($("speed").value).toFixed(1)}×`; });
loadOptions().catch((error) => { $("server").textContent = `server unreachable: ${error.message}`; });
