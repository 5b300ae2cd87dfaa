// One consultation on the specialist's side: answers the cart's offer, shows both videos,
// plays stethoscope and voice separately, and runs the cart's data channels (docs/cart-agent.md).
import { $, api } from "./dom.js";
import { onLanguageChange, t } from "/static/common/i18n.js";
import { renderReferral } from "./journey.js";

const ROLE_ORDER = ["room", "exam", "stethoscope", "voice"]; // the cart's m-line order
// No inbound RTP this long: media lost (docs/reliability.md). The cart's stethoscope
// sends a packet every 20 ms on every rung, so 1 s of silence is an outage, not loss.
const RTP_SILENCE_MS = 1000;
const WATCHDOG_MS = 250;
// The stethoscope is listened to, not talked over: a jitter buffer at least this deep
// costs ~100 ms of latency and spares gaps that sound like a missed beat. On `satellite`
// most of its concealment was Chromium's buffer (20-60 ms deep) running dry when the
// link's queue grew, with no packet lost (docs/adaptation.md, session 10).
const STETHOSCOPE_JITTER_BUFFER_MS = 150;
// Session states in which this page should have media with the cart.
export const MEDIA_STATES = ["accepted", "connecting", "live", "reconnecting"];

export class ConsultationView {
  constructor({ T, socket, vitals, stills, stethoscope, chat, notes, viewer, note }) {
    Object.assign(this, { T, socket, vitals, stills, stethoscope, chat, notes, viewer, note });
    this.channels = {};
    this.commandId = 0;
    this.main = "room"; // which tile is big
    this.micOn = true;
    this.cameraOn = true;
    this.lastQuality = null;
    this.answering = 0; // bumped on every offer: a newer offer wins over one still answering
    this.watchdog = null;
    this.rtpLost = false;
    this.reported = null; // the last media_state sent for the current peer connection
    this.bindControls();
    onLanguageChange(() => { this.renderState(); this.renderQuality(); });
  }

  bindControls() {
    for (const role of ["stethoscope", "voice"]) {
      $(`volume-${role}`).addEventListener("input", (e) => { $(`audio-${role}`).volume = Number(e.target.value); });
    }
    for (const b of document.querySelectorAll("[data-mode]")) {
      b.addEventListener("click", () => this.command({ type: "set_stethoscope_mode", mode: b.dataset.mode }));
    }
    for (const b of document.querySelectorAll("[data-pause]")) {
      b.addEventListener("click", () => {
        const cam = b.dataset.pause;
        const paused = this.T.cartState ? this.T.cartState.cameras[cam].paused : false;
        this.command({ type: "pause_camera", track: cam, paused: !paused });
      });
    }
    for (const b of document.querySelectorAll("[data-fullscreen]")) {
      b.addEventListener("click", () => $(`tile-${b.dataset.fullscreen}`).requestFullscreen?.().catch(() => {}));
    }
    $("swap").addEventListener("click", () => this.swap());
    $("still").addEventListener("click", () => {
      if (this.command({ type: "request_still", camera: "exam" })) this.note(t("call.still_busy"));
    });
    $("hangup").addEventListener("click", () => {
      if (this.T.session) this.socket.send("hangup", { session_id: this.T.session.session_id });
    });
    $("mic").addEventListener("click", () => { this.micOn = !this.micOn; this.applyLocal(); });
    $("camera").addEventListener("click", () => { this.cameraOn = !this.cameraOn; this.applyLocal(); });
  }

  /** Big and small tiles change places on this screen (the cart's cameras stay as they are). */
  swap() {
    this.main = this.main === "room" ? "exam" : "room";
    $("tile-room").classList.toggle("main", this.main === "room");
    $("tile-exam").classList.toggle("main", this.main === "exam");
    $("videos").prepend($(`tile-${this.main}`));
    this.T.mainTile = this.main;
  }

  applyLocal() {
    const stream = this.T.localStream;
    if (stream) {
      for (const tr of stream.getAudioTracks()) tr.enabled = this.micOn;
      for (const tr of stream.getVideoTracks()) tr.enabled = this.cameraOn;
    }
    $("mic").setAttribute("aria-pressed", String(!this.micOn));
    $("mic").textContent = t(this.micOn ? "call.mute_mic" : "call.unmute_mic");
    $("camera").setAttribute("aria-pressed", String(!this.cameraOn));
    $("camera").textContent = t(this.cameraOn ? "call.camera_off" : "call.camera_on");
  }

  /** A session_update (or welcome.session) for this specialist. */
  async onSession(session, { previous }) {
    const first = !previous || previous.session_id !== session.session_id;
    if (first) {
      this.vitals.reset();
      this.stills.reset();
      this.chat.reset();
      this.T.vitals.length = 0;
      this.T.vitalsGaps = 0;
      this.lastQuality = null;
      this.renderQuality();
      $("call-referral").textContent = "";
      this.notes.open(session.session_id, null);
      this.loadRecord(session.session_id);
    }
    $("session-line").textContent = `${session.cart_name}, ${session.clinic} — ${session.specialty}: ${t(`state.${session.state}`)}`;
    $("call-view").classList.toggle("ended", session.state === "ended");
    $("call-reconnecting").hidden = session.state !== "reconnecting";
    if (session.state === "ended") this.closePeer();
    if (session.state === "live" && previous && previous.state !== "live") this.loadRecord(session.session_id);
  }

  async loadRecord(sessionId) {
    try {
      const record = await api("GET", `/api/sessions/${sessionId}/record`);
      if (!this.T.session || this.T.session.session_id !== sessionId) return;
      const referral = record.referral && { ...record.referral, attachments: record.attachments || [] };
      await renderReferral($("call-referral"), referral, this.viewer);
      if (record.conclusion) this.notes.open(sessionId, record.conclusion);
    } catch (err) {
      $("call-referral").textContent = t("error.generic", { message: err.message });
    }
  }

  renderState() {
    if (this.T.session) this.onSession(this.T.session, { previous: this.T.session });
    this.applyLocal();
    this.renderPauses();
  }

  closePeer() {
    this.stopWatchdog();
    if (this.T.pc) { this.T.pc.close(); this.T.pc = null; }
    for (const id of ["video-room", "video-exam", "audio-stethoscope", "audio-voice"]) $(id).srcObject = null;
    this.stethoscope.detach();
    this.channels = {};
  }

  async localMedia() {
    if (this.T.localStream !== null) return this.T.localStream;
    try {
      this.T.localStream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true });
      $("video-self").srcObject = this.T.localStream;
      this.applyLocal();
    } catch (err) {
      console.warn("no local camera/microphone", err);
      this.T.localStream = false;
    }
    return this.T.localStream;
  }

  /** Every offer (the first, or the cart's renegotiation after an outage or a reload) is
   * answered on a new peer connection; the session, its vitals, stills and screen stay. */
  async answer(offer) {
    const T = this.T;
    if (T.session && T.session.session_id !== offer.session_id) {
      console.warn("offer for another session ignored", offer.session_id);
      return;
    }
    const generation = ++this.answering;
    this.closePeer();
    const turn = await api("GET", "/api/turn");
    if (generation !== this.answering) return; // a newer offer arrived meanwhile
    this.closePeer();
    const pc = new RTCPeerConnection({ iceServers: turn.iceServers || [], bundlePolicy: "max-bundle" });
    T.pc = pc;
    T.roles = {};
    pc.ontrack = (event) => this.attach(pc, event.transceiver, event.track);
    pc.ondatachannel = (event) => this.onChannel(event.channel);
    pc.onicecandidate = (event) => this.socket.send("ice_candidate", {
      session_id: offer.session_id,
      candidate: event.candidate ? event.candidate.candidate : "",
      sdp_mid: event.candidate ? event.candidate.sdpMid : null,
      sdp_mline_index: event.candidate ? event.candidate.sdpMLineIndex : null,
    });
    this.reported = null;
    this.rtpLost = false;
    pc.onconnectionstatechange = () => this.reportMedia(pc, offer.session_id);
    pc.oniceconnectionstatechange = () => this.reportMedia(pc, offer.session_id);
    this.startWatchdog(pc, offer.session_id);
    await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
    const stream = await this.localMedia();
    if (T.pc !== pc) return;
    if (stream) {
      const transceivers = pc.getTransceivers();
      const video = stream.getVideoTracks()[0];
      const audio = stream.getAudioTracks()[0];
      if (video && transceivers[0]) { transceivers[0].direction = "sendrecv"; await transceivers[0].sender.replaceTrack(video); }
      if (audio && transceivers[3]) { transceivers[3].direction = "sendrecv"; await transceivers[3].sender.replaceTrack(audio); }
    }
    await pc.setLocalDescription(await pc.createAnswer());
    const answer = { session_id: offer.session_id, sdp: pc.localDescription.sdp };
    if (offer.offer_id !== undefined && offer.offer_id !== null) answer.offer_id = offer.offer_id;
    this.socket.send("answer", answer);
  }

  /** Tell the server how our media is: "disconnected" when ICE is disconnected/failed or
   * inbound RTP stopped for 1 s, "connected" when it is back; each change once. */
  reportMedia(pc, sessionId) {
    if (this.T.pc !== pc) return;
    const lost = ["disconnected", "failed"];
    let state = null;
    if (lost.includes(pc.iceConnectionState) || lost.includes(pc.connectionState) || this.rtpLost) state = "disconnected";
    else if (pc.connectionState === "connected") state = "connected";
    else if (pc.connectionState === "connecting" && this.reported === null) state = "connecting";
    if (state === null || state === this.reported) return;
    this.reported = state;
    this.T.mediaState = state;
    this.socket.send("media_state", { session_id: sessionId, state });
  }

  startWatchdog(pc, sessionId) {
    this.stopWatchdog();
    let packets = -1;
    let movedAt = performance.now();
    let busy = false;
    this.watchdog = setInterval(async () => {
      if (this.T.pc !== pc) { this.stopWatchdog(); return; }
      if (busy) return;
      busy = true;
      let now = 0;
      try {
        for (const s of (await pc.getStats()).values()) if (s.type === "inbound-rtp") now += s.packetsReceived || 0;
      } catch { return; } finally { busy = false; }
      const at = performance.now();
      if (now !== packets) {
        packets = now;
        movedAt = at;
        if (this.rtpLost) { this.rtpLost = false; this.reportMedia(pc, sessionId); }
      } else if (now > 0 && !this.rtpLost && at - movedAt >= RTP_SILENCE_MS) {
        this.rtpLost = true;
        this.reportMedia(pc, sessionId);
      }
    }, WATCHDOG_MS);
  }

  stopWatchdog() {
    if (this.watchdog !== null) { clearInterval(this.watchdog); this.watchdog = null; }
    this.rtpLost = false;
  }

  /** Back on the page (reload, new tab) with the session open but no media here: show the
   * consultation and report the media failed, so the cart offers again. */
  rejoin(session) {
    if (this.T.pc || !MEDIA_STATES.includes(session.state)) return false;
    this.socket.send("media_state", { session_id: session.session_id, state: "failed" });
    return true;
  }

  addCandidate(msg) {
    if (this.T.pc && msg.candidate) {
      this.T.pc.addIceCandidate({ candidate: msg.candidate, sdpMid: msg.sdp_mid, sdpMLineIndex: msg.sdp_mline_index })
        .catch((err) => console.warn("candidate refused", err));
    }
  }

  attach(pc, transceiver, track) {
    const role = this.T.roles[transceiver.mid] || ROLE_ORDER[pc.getTransceivers().indexOf(transceiver)];
    const element = $(`${track.kind}-${role}`);
    if (element) element.srcObject = new MediaStream([track]);
    if (role === "stethoscope") this.stethoscope.attach(track);
    if (track.kind === "audio" && "jitterBufferTarget" in transceiver.receiver) {
      transceiver.receiver.jitterBufferTarget = role === "stethoscope" ? STETHOSCOPE_JITTER_BUFFER_MS : null;
    }
  }

  reattach() {
    const pc = this.T.pc;
    if (!pc) return;
    for (const tr of pc.getTransceivers()) if (tr.receiver.track) this.attach(pc, tr, tr.receiver.track);
  }

  onChannel(channel) {
    this.channels[channel.label] = channel;
    if (channel.label === "stills") channel.binaryType = "arraybuffer";
    const reply = (body) => { if (channel.readyState === "open") channel.send(JSON.stringify(body)); };
    channel.onmessage = (event) => {
      if (channel.label === "vitals") this.onVital(JSON.parse(event.data), reply);
      else if (channel.label === "control") this.onControl(JSON.parse(event.data));
      else if (channel.label === "stills") this.stills.receive(event.data, reply);
    };
  }

  onVital(reading, reply) {
    const T = this.T;
    const last = T.vitals[T.vitals.length - 1];
    if (last && reading.seq <= last.seq) { reply({ ack: last.seq }); return; } // resent after an outage
    if (last && reading.seq !== last.seq + 1) T.vitalsGaps += 1;
    T.vitals.push(reading);
    reply({ ack: reading.seq });
    this.vitals.add(reading, T.vitalsGaps);
  }

  onControl(event) {
    const T = this.T;
    T.events.push(event);
    if (event.type === "track_roles") { T.roles = event.roles; this.reattach(); }
    else if (event.type === "ack") { if (!event.ok) this.note(t("call.cart_says", { message: event.message })); }
    else if (event.type === "state") { T.cartState = event; this.renderPauses(); }
    else if (event.type === "device_status") this.renderDevice(event);
    else if (event.type === "quality") { this.lastQuality = event; this.renderQuality(); }
  }

  renderPauses() {
    const state = this.T.cartState;
    for (const b of document.querySelectorAll("[data-mode]")) {
      b.setAttribute("aria-pressed", String(!!state && b.dataset.mode === state.stethoscope_mode));
    }
    for (const b of document.querySelectorAll("[data-pause]")) {
      const cam = b.dataset.pause;
      const paused = !!state && state.cameras[cam].paused;
      b.textContent = t(paused ? "call.resume" : "call.pause");
      b.setAttribute("aria-label", `${t(paused ? "call.resume" : "call.pause")}: ${t(`call.${cam}`)}`);
      $(`badge-${cam}`).textContent = paused ? t("call.paused") : "";
    }
    for (const b of document.querySelectorAll("[data-fullscreen]")) {
      b.setAttribute("aria-label", `${t("call.fullscreen")}: ${t(`call.${b.dataset.fullscreen}`)}`);
    }
  }

  renderQuality() {
    const q = this.lastQuality;
    $("quality-meter").value = q ? q.score : 0;
    $("quality-score").textContent = q ? t("quality.score", { score: q.score }) : "";
    if (!q) { $("quality-text").textContent = ""; return; }
    const parts = [t(`quality.${Math.max(0, Math.min(5, q.score))}`)];
    if (q.exam === "stills") parts.push(t("quality.stills"));
    if (q.room === "off") parts.push(t("quality.room_off"));
    if (q.rtt_ms != null) parts.push(t("quality.rtt", { ms: Math.round(q.rtt_ms) }));
    $("quality-text").textContent = parts.join(" ");
    $("badge-exam").textContent = q.exam === "stills" ? t("call.stills_mode") : $("badge-exam").textContent;
  }

  renderDevice(status) {
    let item = document.querySelector(`#devices li[data-device="${status.device}"]`);
    if (!item) {
      item = document.createElement("li");
      item.dataset.device = status.device;
      $("devices").appendChild(item);
    }
    item.textContent = `${status.device}: ${status.state}${status.state === "ok" ? "" : " — " + status.message}`;
    item.className = status.state === "ok" ? "" : "bad";
  }

  /** Send a command on the control channel; false (with a note) when not connected. */
  command(body) {
    const channel = this.channels.control;
    if (!channel || channel.readyState !== "open") { this.note(t("call.not_connected")); return false; }
    this.commandId += 1;
    channel.send(JSON.stringify({ id: this.commandId, ...body }));
    return true;
  }
}
