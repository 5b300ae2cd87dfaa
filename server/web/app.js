// Telecart minimal specialist page: login, queue, accept, answer the cart's offer,
// show both videos, play stethoscope and voice separately, vitals, stills, commands.
// State is exposed as window.telecart for tests and debugging.
"use strict";

const ROLE_ORDER = ["room", "exam", "stethoscope", "voice"]; // the cart's m-line order
const VITAL_NAMES = {
  spo2: "SpO2", pulse: "Pulse", bp_systolic: "BP systolic", bp_diastolic: "BP diastolic",
  bp_mean: "BP mean", temperature: "Temperature",
};

const T = (window.telecart = {
  pc: null, ws: null, state: "logged-out", session: null, queues: {},
  roles: {}, vitals: [], vitalsGaps: 0, stills: [], events: [], errors: [],
  cartState: null, localStream: null,
});

const $ = (id) => document.getElementById(id);
let partialStill = null;
const storedStills = {}; // still_id -> server URL; may arrive before the still is checked
let reconnectDelay = 1000;
let commandId = 0;

function setStatus(text, state) {
  if (state) T.state = state;
  $("status").textContent = text;
}

function send(type, body) {
  if (T.ws && T.ws.readyState === WebSocket.OPEN) {
    T.ws.send(JSON.stringify(Object.assign({ v: 1, type }, body)));
  }
}

// --- login and signalling -------------------------------------------------------------

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch("/api/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: form.get("username"), password: form.get("password") }),
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    $("login-error").textContent = body.message || `Login failed (HTTP ${response.status})`;
    return;
  }
  $("login-error").textContent = "";
  connect();
});

async function start() {
  const me = await fetch("/api/me");
  if (me.ok) connect();
}

function connect() {
  $("login-view").hidden = true;
  setStatus("Connecting to the server…", "connecting");
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  T.ws = ws;
  ws.onopen = () => { reconnectDelay = 1000; ws.send(JSON.stringify({ v: 1, type: "hello", role: "specialist" })); };
  ws.onmessage = (event) => onMessage(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (T.ws !== ws) return;
    if (event.code === 4401) {
      setStatus("Logged out", "logged-out");
      $("login-view").hidden = false;
      return;
    }
    setStatus(`Server connection lost; retrying in ${Math.round(reconnectDelay / 1000)} s…`, "offline");
    setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 15000);
  };
}

function onMessage(msg) {
  switch (msg.type) {
    case "welcome":
      $("who").textContent = `${msg.name} (${msg.specialties.join(", ")})`;
      $("queue-view").hidden = false;
      setStatus("Online: waiting for consultations", "online");
      if (msg.session) onSession(msg.session);
      break;
    case "queue_update":
      T.queues[msg.specialty] = msg.entries;
      renderQueue();
      break;
    case "session_update":
      onSession(msg.session);
      break;
    case "offer":
      answer(msg).catch((err) => showError(`Could not answer the cart: ${err}`));
      break;
    case "ice_candidate":
      if (T.pc && msg.candidate) {
        T.pc.addIceCandidate({ candidate: msg.candidate, sdpMid: msg.sdp_mid, sdpMLineIndex: msg.sdp_mline_index })
          .catch((err) => console.warn("candidate refused", err));
      }
      break;
    case "error":
      showError(msg.message);
      break;
  }
}

function showError(text) {
  T.errors.push(text);
  $("command-note").textContent = text;
  if (T.state !== "live") setStatus(text);
}

function renderQueue() {
  const list = $("queue");
  list.textContent = "";
  const entries = Object.values(T.queues).flat();
  $("queue-empty").hidden = entries.length > 0;
  for (const entry of entries) {
    const item = document.createElement("li");
    const wait = Math.round(entry.waiting_s);
    item.textContent = `${entry.priority === "urgent" ? "URGENT · " : ""}${entry.cart_name}, ${entry.clinic} — ${entry.specialty}, waiting ${wait} s ${entry.reason ? "· " + entry.reason : ""} `;
    const button = document.createElement("button");
    button.textContent = "Accept";
    button.className = "accept";
    button.onclick = () => send("accept", { session_id: entry.session_id });
    item.appendChild(button);
    list.appendChild(item);
  }
}

function onSession(session) {
  T.session = session;
  const s = session.state;
  $("session-line").textContent = `${session.cart_name}, ${session.clinic} — ${session.specialty}: ${s}`;
  if (s === "ended") {
    closePeer();
    $("call-view").hidden = true;
    setStatus(`Consultation ended (${session.end_reason || "hangup"})`, "ended");
    return;
  }
  if (["accepted", "connecting", "live", "reconnecting"].includes(s)) {
    $("call-view").hidden = false;
    const text = { accepted: "Accepted: waiting for the cart's video…", connecting: "Connecting media…",
      live: "Live", reconnecting: "Connection interrupted: reconnecting…" }[s];
    setStatus(text, s === "live" ? "live" : s);
  }
}

// --- media ----------------------------------------------------------------------------

function closePeer() {
  if (T.pc) { T.pc.close(); T.pc = null; }
  for (const id of ["video-room", "video-exam", "audio-stethoscope", "audio-voice"]) $(id).srcObject = null;
  partialStill = null;
}

async function localMedia() {
  if (T.localStream !== null) return T.localStream;
  try {
    T.localStream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true });
    $("video-self").srcObject = T.localStream;
  } catch (err) {
    console.warn("no local camera/microphone", err);
    T.localStream = false;
  }
  return T.localStream;
}

async function answer(offer) {
  closePeer();
  const turn = await (await fetch("/api/turn")).json();
  const pc = new RTCPeerConnection({ iceServers: turn.iceServers || [], bundlePolicy: "max-bundle" });
  T.pc = pc;
  T.roles = {};
  pc.ontrack = (event) => attach(pc, event.transceiver, event.track);
  pc.ondatachannel = (event) => onChannel(event.channel);
  pc.onicecandidate = (event) => send("ice_candidate", {
    session_id: offer.session_id,
    candidate: event.candidate ? event.candidate.candidate : "",
    sdp_mid: event.candidate ? event.candidate.sdpMid : null,
    sdp_mline_index: event.candidate ? event.candidate.sdpMLineIndex : null,
  });
  pc.onconnectionstatechange = () => {
    const state = pc.connectionState;
    if (T.pc !== pc) return;
    if (["connecting", "connected", "disconnected", "failed"].includes(state)) {
      send("media_state", { session_id: offer.session_id, state });
    }
  };
  await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
  const stream = await localMedia();
  if (T.pc !== pc) return;
  if (stream) {
    const transceivers = pc.getTransceivers();
    const video = stream.getVideoTracks()[0];
    const audio = stream.getAudioTracks()[0];
    if (video && transceivers[0]) { transceivers[0].direction = "sendrecv"; await transceivers[0].sender.replaceTrack(video); }
    if (audio && transceivers[3]) { transceivers[3].direction = "sendrecv"; await transceivers[3].sender.replaceTrack(audio); }
  }
  await pc.setLocalDescription(await pc.createAnswer());
  send("answer", { session_id: offer.session_id, sdp: pc.localDescription.sdp });
}

function roleOf(pc, transceiver) {
  return T.roles[transceiver.mid] || ROLE_ORDER[pc.getTransceivers().indexOf(transceiver)];
}

function attach(pc, transceiver, track) {
  const role = roleOf(pc, transceiver);
  const element = $(`${track.kind}-${role}`);
  if (element) element.srcObject = new MediaStream([track]);
}

function reattach() {
  if (!T.pc) return;
  for (const transceiver of T.pc.getTransceivers()) {
    if (transceiver.receiver.track) attach(T.pc, transceiver, transceiver.receiver.track);
  }
}

for (const role of ["stethoscope", "voice"]) {
  $(`volume-${role}`).addEventListener("input", (event) => { $(`audio-${role}`).volume = Number(event.target.value); });
}

// --- data channels --------------------------------------------------------------------

const channels = {};

function onChannel(channel) {
  channels[channel.label] = channel;
  if (channel.label === "stills") channel.binaryType = "arraybuffer";
  channel.onmessage = (event) => {
    if (channel.label === "vitals") onVital(JSON.parse(event.data));
    else if (channel.label === "control") onControl(JSON.parse(event.data));
    else if (channel.label === "stills") onStillData(event.data);
  };
}

function onVital(reading) {
  const last = T.vitals[T.vitals.length - 1];
  if (last && reading.seq !== last.seq + 1) T.vitalsGaps += 1;
  T.vitals.push(reading);
  let row = document.querySelector(`#vitals tr[data-kind="${reading.kind}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.kind = reading.kind;
    row.innerHTML = "<td></td><td class=value></td><td></td><td class=age></td>";
    row.cells[0].textContent = VITAL_NAMES[reading.kind] || reading.kind;
    $("vitals").tBodies[0].appendChild(row);
  }
  row.cells[1].textContent = reading.value;
  row.cells[2].textContent = reading.unit;
  row.cells[3].textContent = new Date(reading.captured_at * 1000).toLocaleTimeString();
  $("vitals-note").textContent = T.vitalsGaps ? `${T.vitalsGaps} gap(s) in the readings` : "";
}

function onControl(event) {
  T.events.push(event);
  if (event.type === "track_roles") { T.roles = event.roles; reattach(); }
  else if (event.type === "ack") $("command-note").textContent = event.ok ? "" : `Cart: ${event.message}`;
  else if (event.type === "state") {
    T.cartState = event;
    for (const button of document.querySelectorAll("[data-mode]")) button.classList.toggle("active", button.dataset.mode === event.stethoscope_mode);
    for (const button of document.querySelectorAll("[data-pause]")) {
      const paused = event.cameras[button.dataset.pause].paused;
      button.textContent = paused ? "Resume" : "Pause";
    }
  } else if (event.type === "device_status") renderDevice(event);
  else if (event.type === "quality") {
    $("quality").textContent = `Round trip ${event.rtt_ms ?? "?"} ms · room ${event.fps.room} fps · exam ${event.fps.exam} fps`;
  }
}

function renderDevice(status) {
  let item = document.querySelector(`#devices li[data-device="${status.device}"]`);
  if (!item) {
    item = document.createElement("li");
    item.dataset.device = status.device;
    $("devices").appendChild(item);
  }
  item.textContent = `${status.device}: ${status.state}${status.state === "ok" ? "" : " — " + status.message}`;
  item.className = status.state === "ok" ? "" : "bad";
}

function command(body) {
  const channel = channels.control;
  if (!channel || channel.readyState !== "open") { showError("Not connected to the cart yet."); return; }
  commandId += 1;
  channel.send(JSON.stringify(Object.assign({ id: commandId }, body)));
}

for (const button of document.querySelectorAll("[data-mode]")) {
  button.onclick = () => command({ type: "set_stethoscope_mode", mode: button.dataset.mode });
}
for (const button of document.querySelectorAll("[data-pause]")) {
  button.onclick = () => {
    const camera = button.dataset.pause;
    const paused = T.cartState ? T.cartState.cameras[camera].paused : false;
    command({ type: "pause_camera", track: camera, paused: !paused });
  };
}
$("swap").onclick = () => {
  const current = T.cartState ? T.cartState.cameras.room.camera : "room";
  command({ type: "switch_camera", track: "room", camera: current === "room" ? "exam" : "room" });
};
$("still").onclick = () => { $("command-note").textContent = "Capturing still…"; command({ type: "request_still", camera: "exam" }); };
$("hangup").onclick = () => { if (T.session) send("hangup", { session_id: T.session.session_id }); };

// --- stills ---------------------------------------------------------------------------

async function sha256Hex(buffer) {
  if (!window.crypto || !crypto.subtle) return null; // only on https or localhost
  const digest = await crypto.subtle.digest("SHA-256", buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function onStillData(data) {
  if (typeof data !== "string") {
    if (partialStill) partialStill.parts.push(data);
    return;
  }
  const msg = JSON.parse(data);
  if (msg.type === "still") partialStill = { header: msg, parts: [] };
  else if (msg.type === "still_end" && partialStill) {
    const still = partialStill;
    partialStill = null;
    finishStill(still).catch((err) => showError(`Still failed: ${err}`));
  } else if (msg.type === "still_stored") {
    storedStills[msg.still_id] = msg.url;
    const still = T.stills.find((s) => s.header.still_id === msg.still_id);
    if (still) markStored(still);
  }
}

function markStored(still) {
  if (still.serverUrl) return;
  still.serverUrl = storedStills[still.header.still_id];
  still.label.textContent += " · stored on the server";
}

async function finishStill(still) {
  const blob = new Blob(still.parts, { type: still.header.media_type });
  const bytes = await blob.arrayBuffer();
  const sha256 = await sha256Hex(bytes);
  const entry = {
    header: still.header, size: bytes.byteLength, sha256,
    verified: sha256 === still.header.sha256, url: URL.createObjectURL(blob), serverUrl: null,
  };
  const figure = document.createElement("figure");
  const img = document.createElement("img");
  img.src = entry.url;
  const label = document.createElement("figcaption");
  const check = sha256 === null ? "checksum not verified (needs https)" : entry.verified ? "checksum OK" : "CHECKSUM MISMATCH";
  label.textContent = `${still.header.width}×${still.header.height}, ${Math.round(bytes.byteLength / 1024)} KiB, ${check}`;
  figure.append(img, label);
  $("stills").prepend(figure);
  entry.label = label;
  T.stills.push(entry);
  if (storedStills[still.header.still_id]) markStored(entry);
  $("command-note").textContent = "";
}

start();
