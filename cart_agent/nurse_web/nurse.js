// The nurse's screen: follows the cart agent's state over /api/events and drives it with
// small JSON calls. Talks to 127.0.0.1 only; the cart token never reaches this page.
"use strict";
(() => {
  const S = window.NURSE_STRINGS;
  const LANGS = ["ru", "kk", "en"];
  const LANG_KEY = "telecart.lang";
  const DISMISSED_KEY = "telecart.nurse.dismissed";
  const FRAME_INTERVAL_MS = 250;
  const $ = (sel) => document.querySelector(sel);

  const nurse = {
    lang: LANGS.includes(localStorage.getItem(LANG_KEY)) ? localStorage.getItem(LANG_KEY) : "ru",
    state: null,
    screen: "call",
    frames: {self: 0, remote: 0},
    journey: {referral: null, reschedule: null, linkReferral: null},
  };
  window.nurse = nurse;

  // --- words --------------------------------------------------------------------------
  function t(key, vars) {
    let text = (S[nurse.lang] && S[nurse.lang][key]) || S.en[key] || key;
    for (const [name, value] of Object.entries(vars || {})) text = text.replaceAll(`{${name}}`, value);
    return text;
  }
  const hasKey = (key) => Boolean((S[nurse.lang] && S[nurse.lang][key]) || S.en[key]);
  const specialtyName = (code) => (S.specialties[nurse.lang] || {})[code] || code;
  const deviceName = (device) => {
    const key = `device.${device}`;
    const name = t(key);
    return name === key ? device : name;
  };

  function applyLanguage() {
    document.documentElement.lang = nurse.lang;
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
    for (const el of document.querySelectorAll("[data-i18n-alt]")) el.alt = t(el.dataset.i18nAlt);
    for (const b of document.querySelectorAll(".lang")) b.setAttribute("aria-pressed", String(b.dataset.lang === nurse.lang));
    document.title = t("app.title");
    if (nurse.state) render(nurse.state);
  }

  function setLanguage(lang) {
    nurse.lang = lang;
    localStorage.setItem(LANG_KEY, lang);
    applyLanguage();
  }

  // --- calls to the agent -------------------------------------------------------------
  async function call(method, path, body, raw) {
    const init = {method, headers: {}};
    if (raw) {
      init.body = raw.data;
      init.headers["Content-Type"] = raw.type || "application/octet-stream";
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, init);
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.message || `HTTP ${response.status}`);
    return answer;
  }
  const showError = (el, err) => { el.textContent = err ? t("error.generic", {message: err.message}) : ""; };

  // --- state stream -------------------------------------------------------------------
  function connect() {
    const ws = new WebSocket(`ws://${location.host}/api/events`);
    ws.onmessage = (ev) => { nurse.state = JSON.parse(ev.data); render(nurse.state); };
    ws.onclose = () => {
      nurse.state = nurse.state && {...nurse.state, online: false, phase: "offline"};
      if (nurse.state) render(nurse.state);
      setTimeout(connect, 1000);
    };
  }

  const OPEN_PHASES = ["waiting", "accepted", "connecting", "live", "poor", "reconnecting"];
  function callScreenWanted(state) {
    const session = state.session;
    if (!session) return state.phase === "offline" ? "call" : "request";
    if (session.state === "ended") {
      return sessionStorage.getItem(DISMISSED_KEY) === session.session_id ? "request" : "call";
    }
    return "call";
  }

  function formatWait(seconds) {
    const s = Math.floor(seconds);
    const m = Math.floor(s / 60);
    return `${m}:${String(s % 60).padStart(2, "0")}`;
  }

  function render(state) {
    const server = $("#server-status");
    server.textContent = t(state.online ? "server.online" : "server.offline");
    server.className = `server-status ${state.online ? "ok" : "bad"}`;
    renderDevices(state.devices);
    $("#notice").textContent = state.notice ? t("error.generic", {message: state.notice.message}) : "";
    if (nurse.screen === "journey") { showScreen("journey"); return; }
    const which = callScreenWanted(state);
    showScreen(which);
    if (which === "request") { renderSpecialties(state.specialties); return; }
    const phase = state.phase;
    const session = state.session;
    const name = (session && session.specialist_name) || specialtyName(session ? session.specialty : "");
    const banner = $("#state-banner");
    banner.className = `banner phase-${phase}`;
    banner.dataset.phase = phase;
    $("#state-title").textContent = t(`phase.${phase}`);
    $("#state-text").textContent = t(stateTextKey(state), {
      time: formatWait(session ? session.waiting_s : 0), name, s: state.unanswered_s,
    });
    $("#cancel-button").hidden = !(phase === "waiting" || (phase === "offline" && session && ["requested", "queued"].includes(session.state)));
    $("#hangup-button").hidden = !["accepted", "connecting", "live", "poor", "reconnecting"].includes(phase);
    $("#new-button").hidden = phase !== "ended";
    $("#remote-caption").hidden = state.remote_video;
    $("#chat-form").hidden = !session || session.state === "ended";
    renderChat(state.chat);
    if (nurse.journey.linkReferral && session && session.state !== "ended") {
      const referralId = nurse.journey.linkReferral;
      nurse.journey.linkReferral = null;
      call("PUT", `/api/journey/sessions/${session.session_id}/referral`, {referral_id: referralId}).catch(() => {});
    }
  }

  /** The banner's explanation: why it ended, or that the specialist's screen is silent. */
  function stateTextKey(state) {
    const phase = state.phase;
    const reason = state.session && state.session.end_reason;
    if (phase === "ended" && reason && hasKey(`phase.ended_${reason}`)) return `phase.ended_${reason}`;
    if (["accepted", "connecting", "reconnecting"].includes(phase) && state.unanswered_s >= state.no_answer_after_s) {
      return "phase.no_answer_text";
    }
    return `phase.${phase}_text`;
  }

  function showScreen(which) {
    for (const el of document.querySelectorAll(".screen")) el.hidden = el.id !== `screen-${which}`;
    const tab = which === "journey" ? "journey" : "call";
    for (const b of document.querySelectorAll(".tab")) b.setAttribute("aria-current", String(b.dataset.screen === tab));
  }

  function renderSpecialties(list) {
    const box = $("#specialties");
    const chosen = (box.querySelector("input:checked") || {}).value;
    const key = `${nurse.lang}|${list.join(",")}`;
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    box.replaceChildren(...list.map((code) => {
      const label = document.createElement("label");
      label.className = "choice";
      const input = document.createElement("input");
      Object.assign(input, {type: "radio", name: "specialty", value: code, checked: code === chosen});
      const span = document.createElement("span");
      span.textContent = specialtyName(code);
      label.append(input, span);
      return label;
    }));
    const select = $("#ref-specialty");
    const selected = select.value;
    select.replaceChildren(...list.map((code) => new Option(specialtyName(code), code, false, code === selected)));
  }

  function renderDevices(devices) {
    const items = () => devices.map((d) => {
      const li = document.createElement("li");
      li.className = `device ${d.state}`;
      li.dataset.device = d.device;
      const name = deviceName(d.device);
      li.textContent = t(`device.${d.state}`, {name: name.charAt(0).toUpperCase() + name.slice(1)});
      return li;
    });
    for (const list of document.querySelectorAll(".devices")) list.replaceChildren(...items());
  }

  function renderChat(lines) {
    const log = $("#chat-log");
    if (log.dataset.count === String(lines.length) && log.dataset.lang === nurse.lang) return;
    log.dataset.count = String(lines.length);
    log.dataset.lang = nurse.lang;
    log.replaceChildren(...lines.map((line) => {
      const li = document.createElement("li");
      li.className = line.mine ? "mine" : "theirs";
      const who = document.createElement("strong");
      who.textContent = `${line.mine ? t("chat.you") : line.sender}: `;
      li.append(who, document.createTextNode(line.text));
      return li;
    }));
    log.scrollTop = log.scrollHeight;
  }

  // --- video frames -------------------------------------------------------------------
  const frameUrls = {};
  async function pollFrame(which) {
    const img = $(`#${which}-video`);
    try {
      const response = await fetch(`/api/video/${which}.jpg`, {cache: "no-store"});
      if (response.status !== 200) { img.hidden = which === "remote"; return; }
      const number = response.headers.get("X-Frame-Number");
      const blob = await response.blob();
      if (img.dataset.frame === number) return;
      img.dataset.frame = number;
      const url = URL.createObjectURL(blob);
      if (frameUrls[which]) URL.revokeObjectURL(frameUrls[which]);
      frameUrls[which] = url;
      img.src = url;
      img.hidden = false;
      nurse.frames[which] += 1;
    } catch (err) { /* the agent is restarting: the next poll retries */ }
  }
  async function frameLoop() {
    for (;;) {
      if (!$("#screen-call").hidden) await Promise.all([pollFrame("self"), pollFrame("remote")]);
      await new Promise((r) => setTimeout(r, FRAME_INTERVAL_MS));
    }
  }

  // --- consultation actions -----------------------------------------------------------
  $("#request-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const specialty = (form.querySelector("input[name=specialty]:checked") || {}).value;
    const error = $("#request-error");
    if (!specialty) { error.textContent = t("request.choose"); return; }
    try {
      await call("POST", "/api/request", {
        specialty, priority: form.priority.value, reason: form.reason.value,
      });
      showError(error, null);
      form.reason.value = "";
    } catch (err) { showError(error, err); }
  });
  $("#cancel-button").addEventListener("click", () => call("POST", "/api/cancel", {}).catch(() => {}));
  $("#hangup-button").addEventListener("click", () => call("POST", "/api/hangup", {}).catch(() => {}));
  $("#new-button").addEventListener("click", () => {
    if (nurse.state && nurse.state.session) sessionStorage.setItem(DISMISSED_KEY, nurse.state.session.session_id);
    if (nurse.state) render(nurse.state);
    const first = $("#specialties input");
    if (first) first.focus();
  });
  $("#chat-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $("#chat-text");
    const text = input.value.trim();
    if (!text) return;
    try { await call("POST", "/api/chat", {text}); input.value = ""; } catch (err) { /* shown by state */ }
  });
  for (const b of document.querySelectorAll(".lang")) b.addEventListener("click", () => setLanguage(b.dataset.lang));
  for (const b of document.querySelectorAll(".tab")) {
    b.addEventListener("click", () => {
      nurse.screen = b.dataset.screen;
      if (nurse.screen === "journey" && !nurse.journeyTask) showTask("referral");
      if (nurse.state) render(nurse.state); else showScreen(nurse.screen);
    });
  }

  // --- referrals and booking ----------------------------------------------------------
  const kzDate = () => new Date(Date.now() + 5 * 3600e3).toISOString().slice(0, 10);
  const localTime = (iso) => iso.slice(11, 16);
  const done = (text) => { $("#journey-done").textContent = text; };

  function showTask(task) {
    nurse.journeyTask = task;
    for (const el of document.querySelectorAll(".task")) el.hidden = el.dataset.task !== task;
    for (const b of document.querySelectorAll(".subtab")) b.setAttribute("aria-pressed", String(b.dataset.task === task));
    if (task === "day") loadDay();
  }
  for (const b of document.querySelectorAll(".subtab")) b.addEventListener("click", () => { done(""); showTask(b.dataset.task); });

  $("#referral-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const error = $("#referral-error");
    try {
      const referral = await call("POST", "/api/journey/referrals", {
        referral_number: f.referral_number.value, referring_doctor: f.referring_doctor.value,
        specialty: f.specialty.value, reason: f.reason.value, urgency: f.urgency.value,
        patient: {name: f.name.value, birth_date: f.birth_date.value, iin: f.iin.value},
      });
      const files = [...f.files.files];
      for (const file of files) {
        await call("POST", `/api/journey/referrals/${referral.referral_id}/attachments?kind=${f.kind.value}`,
          undefined, {data: file, type: file.type});
      }
      showError(error, null);
      f.reset();
      done(t("referral.saved", {n: String(files.length)}));
      nurse.journey.referral = referral;
      nurse.journey.reschedule = null;
      openBooking(referral.specialty, `${referral.referral_number}`);
    } catch (err) { showError(error, err); }
  });

  function openBooking(specialty, label) {
    nurse.journey.specialty = specialty;
    $("#booking-referral").textContent = t("book.for", {number: label, specialty: specialtyName(specialty)});
    $("#book-reason-field").hidden = !nurse.journey.reschedule;
    $("#book-date").value = kzDate();
    showTask("book");
    loadSlots();
  }

  async function loadSlots() {
    const list = $("#slots");
    const error = $("#booking-error");
    try {
      const q = new URLSearchParams({specialty: nurse.journey.specialty, date: $("#book-date").value});
      const {slots} = await call("GET", `/api/journey/slots?${q}`);
      showError(error, null);
      if (!slots.length) {
        const li = document.createElement("li");
        li.className = "note";
        li.textContent = t("book.none");
        list.replaceChildren(li);
        return;
      }
      list.replaceChildren(...slots.map((slot) => {
        const li = document.createElement("li");
        const b = document.createElement("button");
        b.type = "button";
        b.className = "big slot";
        b.dataset.slot = slot.slot_id;
        b.textContent = t("book.slot", {time: `${localTime(slot.starts_local)}–${localTime(slot.ends_local)}`});
        b.addEventListener("click", () => book(slot));
        li.append(b);
        return li;
      }));
    } catch (err) { showError(error, err); }
  }
  $("#book-date").addEventListener("change", loadSlots);

  async function book(slot) {
    const error = $("#booking-error");
    const time = localTime(slot.starts_local);
    try {
      if (nurse.journey.reschedule) {
        const reason = $("#book-reason").value.trim();
        if (!reason) { error.textContent = t("book.reason_needed"); $("#book-reason").focus(); return; }
        await call("POST", `/api/journey/appointments/${nurse.journey.reschedule}/reschedule`, {slot_id: slot.slot_id, reason});
        done(t("book.rescheduled", {time}));
      } else {
        await call("POST", "/api/journey/appointments", {slot_id: slot.slot_id, referral_id: nurse.journey.referral.referral_id});
        done(t("book.booked", {time}));
      }
      nurse.journey.reschedule = null;
      $("#book-reason").value = "";
      $("#day-date").value = slot.starts_local.slice(0, 10);
      showTask("day");
    } catch (err) { showError(error, err); }
  }

  $("#urgent-queue").addEventListener("click", async () => {
    const referral = nurse.journey.referral;
    if (!referral) return;
    try {
      await call("POST", "/api/request", {specialty: referral.specialty, priority: "urgent", reason: referral.reason});
      nurse.journey.linkReferral = referral.referral_id;
      nurse.screen = "call";
      if (nurse.state) render(nurse.state);
    } catch (err) { showError($("#booking-error"), err); }
  });

  async function loadDay() {
    const list = $("#appointments");
    const date = $("#day-date").value || kzDate();
    $("#day-date").value = date;
    try {
      const {appointments} = await call("GET", `/api/journey/appointments?date=${date}`);
      showError($("#day-error"), null);
      if (!appointments.length) {
        const li = document.createElement("li");
        li.className = "note";
        li.textContent = t("day.none");
        list.replaceChildren(li);
        return;
      }
      list.replaceChildren(...appointments.map(appointmentItem));
    } catch (err) { showError($("#day-error"), err); }
  }
  $("#day-date").addEventListener("change", loadDay);

  function appointmentItem(a) {
    const li = document.createElement("li");
    li.className = `appointment ${a.state}`;
    li.dataset.appointment = a.appointment_id;
    const text = document.createElement("p");
    text.textContent = `${localTime(a.starts_local)}–${localTime(a.ends_local)} · ${specialtyName(a.specialty)} · ${t(`state.${a.state}`)}`;
    li.append(text);
    if (a.state === "booked") {
      const row = document.createElement("div");
      row.className = "row";
      const button = (key, cls, onClick) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = `big ${cls}`;
        b.textContent = t(key);
        b.dataset.action = key.split(".")[1];
        b.addEventListener("click", onClick);
        row.append(b);
      };
      button("day.start", "primary", () => startBooked(a));
      button("day.reschedule", "", () => {
        nurse.journey.reschedule = a.appointment_id;
        openBooking(a.specialty, localTime(a.starts_local));
      });
      button("day.cancel", "danger", () => {
        nurse.journey.cancel = a.appointment_id;
        $("#cancel-box").hidden = false;
        $("#cancel-reason").focus();
      });
      li.append(row);
    }
    return li;
  }

  async function startBooked(a) {
    try {
      await call("POST", `/api/journey/appointments/${a.appointment_id}/start`, {});
      nurse.screen = "call";
      if (nurse.state) render(nurse.state);
    } catch (err) { showError($("#day-error"), err); }
  }

  $("#cancel-confirm").addEventListener("click", async () => {
    const reason = $("#cancel-reason").value.trim();
    if (!reason) { $("#day-error").textContent = t("day.reason_needed"); $("#cancel-reason").focus(); return; }
    try {
      await call("POST", `/api/journey/appointments/${nurse.journey.cancel}/cancel`, {reason});
      $("#cancel-box").hidden = true;
      $("#cancel-reason").value = "";
      done(t("day.cancelled"));
      loadDay();
    } catch (err) { showError($("#day-error"), err); }
  });
  $("#cancel-back").addEventListener("click", () => { $("#cancel-box").hidden = true; });

  applyLanguage();
  showScreen("request");
  connect();
  frameLoop();
})();
