// Telecart specialist app: login, views, the signalling socket; wires the modules together.
// State is exposed as window.telecart for tests and debugging (no secrets: the login cookie
// is HttpOnly and nothing but the language is kept in localStorage).
import { TelecartSocket } from "/static/common/protocol.js";
import { addStrings, applyTranslations, hasKey, languageButtons, onLanguageChange, setLanguage, language, t } from "/static/common/i18n.js";
import { $, api } from "./dom.js";
import { STRINGS } from "./strings.js";
import { QueueView } from "./queue.js";
import { ConsultationView, MEDIA_STATES } from "./consultation.js";
import { StethoscopeView } from "./stethoscope_view.js";
import { VitalsBoard } from "./vitals_chart.js";
import { StillsGallery } from "./stills_gallery.js";
import { ChatPanel } from "./chat.js";
import { NotesForm, ScheduleView } from "./journey.js";
import { HistoryView } from "./history.js";
import { ImageViewer } from "./image_viewer.js";

addStrings(STRINGS);

const T = (window.telecart = {
  pc: null, socket: null, state: "logged-out", session: null, me: null, view: "login",
  roles: {}, vitals: [], vitalsGaps: 0, stills: [], periodicStills: [], events: [], errors: [],
  notices: [],
  cartState: null, localStream: null, mainTile: "room",
});

let statusKey = ["status.offline_login", {}];
function setStatus(key, state, params = {}) {
  if (state) T.state = state;
  statusKey = [key, params];
  $("status").textContent = t(key, params);
}

function note(text) {
  $("command-note").textContent = text;
}

let noticeAction = null;
function notify(text, action = null) {
  T.notices.push(text);
  $("notice-text").textContent = text;
  $("notice-go").hidden = action === null;
  noticeAction = action;
  $("notice").hidden = false;
}
$("notice-go").addEventListener("click", () => { $("notice").hidden = true; if (noticeAction) noticeAction(); });

function showView(name) {
  T.view = name;
  for (const view of ["login", "queue", "call", "schedule", "history"]) $(`${view}-view`).hidden = view !== name;
  for (const b of document.querySelectorAll("#nav [data-view]")) {
    if (b.dataset.view === name) b.setAttribute("aria-current", "page"); else b.removeAttribute("aria-current");
  }
  if (name === "schedule") schedule.refresh().catch((err) => notify(t("error.generic", { message: err.message })));
  if (name === "history") history.refresh().catch((err) => notify(t("error.generic", { message: err.message })));
}
for (const b of document.querySelectorAll("#nav [data-view]")) b.addEventListener("click", () => showView(b.dataset.view));

const viewer = new ImageViewer();
const schedule = new ScheduleView(viewer);
const history = new HistoryView(viewer);
const socket = new TelecartSocket({ role: "specialist" });
T.socket = socket;
const queue = new QueueView((sessionId) => socket.send("accept", { session_id: sessionId }), (text) => notify(text));
const chat = new ChatPanel((text) => T.session && socket.send("chat", { session_id: T.session.session_id, text }),
  () => (T.me ? T.me.name : ""));
const consultation = new ConsultationView({
  T, socket, viewer, note, chat,
  vitals: new VitalsBoard(),
  stills: new StillsGallery(T.stills, viewer, note, T.periodicStills),
  stethoscope: (T.stethoscope = new StethoscopeView($("steth-wave"), $("steth-spectrogram"))),
  notes: new NotesForm($("notes-form")),
});

const CALL_STATUS = { accepted: "status.accepted", connecting: "status.connecting_media", live: "status.live",
  reconnecting: "status.reconnecting" };

function onSession(session) {
  const previous = T.session;
  T.session = session;
  const s = session.state;
  consultation.onSession(session, { previous });
  document.querySelector('#nav [data-view="call"]').hidden = false;
  if (s === "ended") {
    const why = `end.${session.end_reason}`;
    setStatus(hasKey(why) ? why : "status.ended", "ended");
    return;
  }
  if (!CALL_STATUS[s]) return;
  setStatus(CALL_STATUS[s], s === "live" ? "live" : s);
  const isNew = !previous || previous.session_id !== session.session_id || previous.state === "ended";
  if (isNew && s === "accepted") {
    if (queue.acceptedByMe === session.session_id) showView("call");
    else notify(t("notify.booked", { cart: session.cart_name, clinic: session.clinic }), () => showView("call"));
  }
}

socket.onStatus((status, detail) => {
  if (status === "connecting") setStatus("status.connecting", "connecting");
  else if (status === "offline") setStatus("status.offline", "offline", { s: Math.round(detail.retryInMs / 1000) });
  else if (status === "refused") { setStatus("status.offline_login", "logged-out"); showLogin(); }
});
socket.on("welcome", (msg) => {
  T.me = { name: msg.name, specialties: msg.specialties };
  $("who").textContent = `${msg.name} (${msg.specialties.join(", ")})`;
  schedule.setSpecialties(msg.specialties);
  setStatus("status.online", "online");
  if (T.view === "login") showView("queue");
  if (msg.session) {
    onSession(msg.session);
    // Reloaded (or the socket came back) during a consultation without media here.
    if (MEDIA_STATES.includes(msg.session.state) && consultation.rejoin(msg.session)) showView("call");
  }
});
socket.on("queue_update", (msg) => queue.update(msg.specialty, msg.entries));
socket.on("session_update", (msg) => onSession(msg.session));
socket.on("offer", (msg) => consultation.answer(msg).catch((err) => showError(String(err))));
socket.on("ice_candidate", (msg) => consultation.addCandidate(msg));
socket.on("chat", (msg) => chat.receive(msg));
socket.on("quality", (msg) => { T.serverQuality = msg; });
socket.on("error", (msg) => showError(msg.code === "already_taken" ? t("queue.already_taken") : msg.message));

function showError(text) {
  T.errors.push(text);
  notify(text);
}

function showLogin() {
  $("nav").hidden = true;
  $("logout").hidden = true;
  showView("login");
}

function loggedIn() {
  $("nav").hidden = false;
  $("logout").hidden = false;
  socket.connect();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    await api("POST", "/api/login", { username: form.get("username"), password: form.get("password") });
  } catch (err) {
    $("login-error").textContent = err.status === 401 ? t("login.failed") : err.message;
    return;
  }
  $("login-error").textContent = "";
  event.target.reset();
  loggedIn();
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/api/logout").catch(() => {});
  socket.close();
  consultation.closePeer();
  setStatus("status.offline_login", "logged-out");
  showLogin();
});

languageButtons($("languages"));
onLanguageChange(() => { setStatus(statusKey[0], null, statusKey[1]); queue.render(); });
setLanguage(language());
applyTranslations(document);

fetch("/api/me").then((me) => { if (me.ok) loggedIn(); });
