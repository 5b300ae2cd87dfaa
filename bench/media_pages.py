"""JavaScript for the media benchmark's browsers: the receiver probe and the Chrome sender.

`RECEIVER_PROBE` is evaluated in the real specialist page (`server/web/`) after login and
before Accept. It keeps everything in `window.bench`, read once at the end:
- `samples`: every 250 ms, each inbound RTP stream of `window.telecart.pc` by mid;
- `audio`: every 50 ms, the audio streams' concealment counters (for the longest gap);
- `stills`: the arrival time of each stills-mode picture (the page's own list);
- `frames[role]`: every presented frame (`requestVideoFrameCallback`): `[shown_ms,
  g2g_ms or null]`, the capture time read back from the timestamp strip
  (`telecart.devices.timestamp_code`); both namespaces share the host clock.
`pc` in a sample counts peer connections, so counters that restart with a new connection
can be summed.

`SENDER_PAGE` is the Chrome → Chrome reference sender, served by the benchmark's server at
`/bench/sender.html?token=…`: it speaks the signalling protocol as a cart, sends a canvas
(`captureStream(25)`) painted with the simulated camera's scene and the live capture time,
and the stethoscope signal from Chromium's fake audio capture (a WAV file).
"""

from __future__ import annotations

STRIP_DECODER_JS = """
  // Capture time painted by telecart.devices.timestamp_code, read back from a shown frame:
  // shown time minus capture time in ms (mod 2^32), or null when no strip is readable.
  function readStripDelay(video, meta, canvas, ctx, shownAt) {
    const w = meta.width, cells = 34;
    // The strip is the top 24 rows of a 480-row camera frame: scale it with the frame,
    // which the sender may have shrunk.
    const rows = Math.max(4, Math.round(24 * meta.height / 480));
    const top = Math.floor(rows / 4), bottom = Math.max(top + 1, Math.ceil(rows * 3 / 4));
    if (w < cells * 4) return null;
    canvas.width = w; canvas.height = rows;
    ctx.drawImage(video, 0, 0, w, rows, 0, 0, w, rows);
    const px = ctx.getImageData(0, 0, w, rows).data;
    const sample = (cell) => {
      const left = Math.round(cell * w / cells), right = Math.round((cell + 1) * w / cells);
      const x = Math.floor((left + right) / 2);
      let sum = 0;
      for (let y = top; y < bottom; y++) {
        const i = (y * w + x) * 4;
        sum += (px[i] + px[i + 1] + px[i + 2]) / 3;
      }
      return sum / (bottom - top);
    };
    const white = sample(0), black = sample(cells - 1);
    if (white - black <= 64) return null;
    let value = 0;
    const threshold = (white + black) / 2;
    for (let c = 1; c < cells - 1; c++) value = value * 2 + (sample(c) > threshold ? 1 : 0);
    let delay = (Math.floor(shownAt) % 2 ** 32) - value;
    if (delay < -(2 ** 31)) delay += 2 ** 32;
    return delay;
  }
"""

RECEIVER_PROBE = (
    "() => {"
    + STRIP_DECODER_JS
    + """
  const ORDER = ["room", "exam", "stethoscope", "voice"];
  const B = (window.bench = { samples: [], audio: [], frames: {}, pcs: 0 });
  B.stills = window.telecart.periodicStills || [];
  let lastPc = null;
  const currentPc = () => {
    const pc = window.telecart.pc;
    if (pc && pc !== lastPc) { lastPc = pc; B.pcs += 1; }
    return pc;
  };
  // Samples are keyed by mid; roles (the cart's `track_roles`, else the m-line order)
  // are resolved when the probe is read, as the control channel may open after media.
  B.resolveRoles = () => {
    const pc = window.telecart.pc, roles = {};
    if (pc) pc.getTransceivers().forEach((t, i) => {
      if (t.mid !== null) roles[t.mid] = window.telecart.roles[t.mid] || ORDER[i] || "mid" + t.mid;
    });
    return roles;
  };
  const VIDEO = ["framesDecoded", "framesPerSecond", "frameWidth", "frameHeight",
    "freezeCount", "totalFreezesDuration", "pauseCount", "totalPausesDuration", "framesDropped",
    "keyFramesDecoded", "pliCount", "nackCount"];
  const AUDIO = ["concealedSamples", "silentConcealedSamples", "totalSamplesReceived",
    "concealmentEvents", "jitterBufferDelay", "jitterBufferEmittedCount"];
  const COMMON = ["bytesReceived", "headerBytesReceived", "packetsReceived", "packetsLost"];
  const pick = (s, keys) => {
    const o = {};
    for (const k of keys) if (s[k] !== undefined) o[k] = s[k];
    return o;
  };

  setInterval(async () => {
    const pc = currentPc();
    if (!pc) return;
    const t = Date.now(), tracks = {};
    for (const s of (await pc.getStats()).values()) {
      if (s.type !== "inbound-rtp") continue;
      const keys = s.kind === "video" ? VIDEO : AUDIO;
      tracks[s.mid] = Object.assign({ kind: s.kind }, pick(s, COMMON), pick(s, keys));
    }
    B.samples.push({ t, pc: B.pcs, tracks });
  }, 250);

  setInterval(async () => {
    const pc = currentPc();
    if (!pc) return;
    const t = Date.now(), tracks = {};
    for (const transceiver of pc.getTransceivers()) {
      const track = transceiver.receiver.track;
      if (!track || track.kind !== "audio" || !transceiver.mid) continue;
      for (const s of (await transceiver.receiver.getStats()).values()) {
        if (s.type !== "inbound-rtp") continue;
        tracks[s.mid] = [s.concealedSamples || 0, s.totalSamplesReceived || 0,
          s.packetsReceived || 0];
      }
    }
    B.audio.push({ t, pc: B.pcs, tracks });
  }, 50);

  for (const role of ["room", "exam"]) {
    const video = document.getElementById("video-" + role);
    const canvas = document.createElement("canvas");
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    const frames = (B.frames[role] = []);
    const onFrame = (now, meta) => {
      const shownAt = performance.timeOrigin + meta.expectedDisplayTime;
      const delay = readStripDelay(video, meta, canvas, ctx, shownAt);
      frames.push([shownAt, delay, meta.height]);
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }
}"""
)

SENDER_PAGE = """<!doctype html>
<meta charset="utf-8">
<title>telecart bench: Chrome reference sender</title>
<canvas id="scene" width="640" height="480"></canvas>
<script>
"use strict";
const W = 640, H = 480, FPS = 25, CELLS = 34, STRIP = 24;
const token = new URLSearchParams(location.search).get("token");
const canvas = document.getElementById("scene");
const ctx = canvas.getContext("2d");
const BARS = ["#c0c0c0", "#c0c000", "#00c0c0", "#00c000", "#c000c0", "#c00000", "#0000c0"];
const S = (window.sender = { state: "starting", pc: null, errors: [] });

function paint() {
  const at = Date.now();
  const lower = Math.floor(H * 2 / 3);
  BARS.forEach((colour, i) => {
    ctx.fillStyle = colour;
    ctx.fillRect(Math.floor(i * W / BARS.length), 0, Math.ceil(W / BARS.length), lower);
  });
  const gradient = ctx.createLinearGradient(0, 0, W, 0);
  gradient.addColorStop(0, "#101010");
  gradient.addColorStop(1, "#ebebeb");
  ctx.fillStyle = gradient;
  ctx.fillRect(0, lower, W, H - lower);
  const phase = ((at / 1000) % 4) / 4 * 2 * Math.PI, r = Math.floor(Math.min(W, H) / 10);
  const cx = W / 2 + (W / 2 - r - 4) * Math.cos(phase);
  const cy = STRIP + (H - STRIP) / 2 + ((H - STRIP) / 2 - r - 4) * Math.sin(phase);
  ctx.fillStyle = "#fff"; ctx.beginPath(); ctx.arc(cx, cy, r, 0, 2 * Math.PI); ctx.fill();
  ctx.fillStyle = "#000"; ctx.beginPath(); ctx.arc(cx, cy, r / 2, 0, 2 * Math.PI); ctx.fill();
  ctx.font = "bold 20px sans-serif"; ctx.lineWidth = 4;
  const clock = new Date(at).toISOString().slice(11, 23);
  for (const [text, y] of [["SIMULATED ROOM CAMERA", STRIP + 40], [clock, lower - 12]]) {
    ctx.strokeStyle = "#000"; ctx.strokeText(text, 12, y);
    ctx.fillStyle = "#fff"; ctx.fillText(text, 12, y);
  }
  const value = at % 2 ** 32;
  for (let cell = 0; cell < CELLS; cell++) {
    let on = cell === 0;
    if (cell > 0 && cell < CELLS - 1) on = Math.floor(value / 2 ** (32 - cell)) % 2 === 1;
    const left = Math.round(cell * W / CELLS), right = Math.round((cell + 1) * W / CELLS);
    ctx.fillStyle = on ? "#fff" : "#000";
    ctx.fillRect(left, 0, right - left, STRIP);
  }
}
paint();
setInterval(paint, 1000 / FPS);

let ws, session = null;
const send = (type, body) => ws.send(JSON.stringify(Object.assign({ v: 1, type }, body)));

async function call(sessionId) {
  const audio = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  const video = canvas.captureStream(FPS).getVideoTracks()[0];
  const pc = (S.pc = new RTCPeerConnection());
  pc.addTransceiver(video, { direction: "sendrecv" });
  pc.addTransceiver(audio.getAudioTracks()[0], { direction: "sendonly" });
  const control = pc.createDataChannel("control");
  control.onopen = () => control.send(JSON.stringify(
    { type: "track_roles", roles: { "0": "room", "1": "stethoscope" } }));
  pc.onicecandidate = (e) => send("ice_candidate", {
    session_id: sessionId, candidate: e.candidate ? e.candidate.candidate : "",
    sdp_mid: e.candidate ? e.candidate.sdpMid : null,
    sdp_mline_index: e.candidate ? e.candidate.sdpMLineIndex : null,
  });
  pc.onconnectionstatechange = () => {
    if (["connecting", "connected", "failed"].includes(pc.connectionState)) {
      send("media_state", { session_id: sessionId, state: pc.connectionState });
    }
  };
  await pc.setLocalDescription(await pc.createOffer());
  send("offer", { session_id: sessionId, sdp: pc.localDescription.sdp });
  S.state = "offered";
}

ws = new WebSocket(`ws://${location.host}/ws`);
ws.onopen = () => send("hello", { role: "cart", token });
ws.onmessage = (event) => {
  const msg = JSON.parse(event.data);
  if (msg.type === "welcome") {
    send("request_consultation", { specialty: "cardiology", reason: "Chrome reference" });
    S.state = "requested";
  } else if (msg.type === "session_update" && msg.session.state === "accepted" && !session) {
    session = msg.session.session_id;
    call(session).catch((err) => S.errors.push(String(err)));
  } else if (msg.type === "answer" && S.pc) {
    S.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
  } else if (msg.type === "ice_candidate" && S.pc && msg.candidate) {
    S.pc.addIceCandidate({ candidate: msg.candidate, sdpMid: msg.sdp_mid,
      sdpMLineIndex: msg.sdp_mline_index }).catch((err) => S.errors.push(String(err)));
  } else if (msg.type === "error") {
    S.errors.push(msg.message);
  }
};
</script>
"""
