// The specialist's side of the patient journey (docs/journey.md): slots, the day list, the
// referral with its attachments, and the conclusion form. Times are Kazakhstan time (UTC+5).
import { $, api, el } from "./dom.js";
import { formatTime, kzToday, onLanguageChange, t } from "/static/common/i18n.js";

const IMAGE_TYPES = ["image/jpeg", "image/png"];

/** Render referral `referralId` with its attachments into `container` (images open the viewer). */
export async function renderReferral(container, referral, viewer) {
  container.textContent = "";
  if (!referral) {
    container.append(el("p", {}, t("referral.none")));
    return;
  }
  const p = referral.patient || {};
  const rows = [
    ["referral.number", referral.referral_number], ["referral.doctor", referral.referring_doctor],
    ["referral.patient", p.name], ["referral.birth", p.birth_date], ["referral.iin", p.iin],
    ["referral.reason", referral.reason],
  ];
  const dl = el("dl", { class: "facts" });
  for (const [key, value] of rows) if (value) dl.append(el("dt", {}, t(key)), el("dd", {}, value));
  container.append(dl);
  if (!referral.attachments || referral.attachments.length === 0) return;
  container.append(el("h4", {}, t("referral.attachments")));
  const list = el("ul", { class: "gallery attachments" });
  for (const [i, a] of referral.attachments.entries()) {
    const kind = t(`referral.kind.${a.kind}`);
    const name = `${kind} ${i + 1}`;
    if (IMAGE_TYPES.includes(a.media_type)) {
      list.append(el("li", {}, el("button", { type: "button", class: "thumb", "aria-label": `${t("referral.open")}: ${name}`,
        onclick: () => viewer.open(a.url, name) }, el("img", { src: a.url, alt: name })), el("span", {}, name)));
    } else {
      const link = el("a", { href: a.url, class: "button", download: "" }, `${t("referral.open")}: ${name} (${a.media_type === "application/pdf" ? "PDF" : a.media_type})`);
      if (a.media_type === "application/pdf") {
        // Served as an attachment; a blob URL lets the browser's own PDF viewer show it.
        link.removeAttribute("download");
        link.target = "_blank";
        link.addEventListener("click", async (event) => {
          event.preventDefault();
          const blob = await (await fetch(a.url)).blob();
          window.open(URL.createObjectURL(new Blob([blob], { type: "application/pdf" })), "_blank");
        });
      }
      list.append(el("li", {}, link));
    }
  }
  container.append(list);
}

/** The conclusion form for one session: notes, conclusion, recommendations → the record. */
export class NotesForm {
  constructor(form) {
    this.form = form;
    this.sessionId = null;
    this.build();
    onLanguageChange(() => this.build(true));
    form.addEventListener("submit", (event) => { event.preventDefault(); this.save(); });
  }

  build(keep = false) {
    const values = keep ? this.values() : {};
    this.form.textContent = "";
    for (const name of ["notes", "conclusion", "recommendations"]) {
      this.form.append(el("label", { for: `notes-${name}` }, t(`notes.${name}`)),
        el("textarea", { id: `notes-${name}`, name, rows: name === "notes" ? 4 : 3, maxlength: 10000 }));
      if (values[name]) this.form.elements[name].value = values[name];
    }
    this.form.append(el("button", { type: "submit", id: "notes-save" }, t("notes.save")),
      el("p", { id: "notes-status", role: "status" }));
  }

  values() {
    const out = {};
    for (const name of ["notes", "conclusion", "recommendations"]) out[name] = this.form.elements[name]?.value || "";
    return out;
  }

  open(sessionId, conclusion) {
    if (this.sessionId === sessionId) return;
    this.sessionId = sessionId;
    this.build();
    if (conclusion) for (const [k, v] of Object.entries(conclusion)) if (this.form.elements[k]) this.form.elements[k].value = v || "";
  }

  async save() {
    const status = $("notes-status");
    const body = this.values();
    if (!body.conclusion.trim()) { status.textContent = t("notes.required"); return; }
    try {
      await api("PUT", `/api/sessions/${this.sessionId}/conclusion`, body);
      status.textContent = t("notes.saved", { time: formatTime(Date.now(), { seconds: true }) });
    } catch (err) {
      status.textContent = t("notes.failed", { message: err.message });
    }
  }
}

/** Slots and the day's appointments. */
export class ScheduleView {
  constructor(viewer) {
    this.viewer = viewer;
    this.specialties = [];
    $("slot-date").value = kzToday();
    $("day-date").value = kzToday();
    $("slot-form").addEventListener("submit", (event) => { event.preventDefault(); this.publish(); });
    $("day-form").addEventListener("submit", (event) => { event.preventDefault(); this.refresh(); });
    onLanguageChange(() => { if (this.loaded) this.refresh(); });
  }

  setSpecialties(specialties) {
    this.specialties = specialties;
    const select = $("slot-specialty");
    select.textContent = "";
    for (const s of specialties) select.append(el("option", { value: s }, s));
  }

  async publish() {
    const note = $("slot-note");
    const startsAt = `${$("slot-date").value}T${$("slot-time").value}:00+05:00`;
    try {
      const slot = await api("POST", "/api/slots", {
        specialty: $("slot-specialty").value, starts_at: startsAt, duration_min: Number($("slot-duration").value),
      });
      note.textContent = t("schedule.added", { time: formatTime(slot.starts_at, { withDate: true }) });
      $("day-date").value = $("slot-date").value;
      await this.refresh();
    } catch (err) {
      note.textContent = t("error.generic", { message: err.message });
    }
  }

  async refresh() {
    this.loaded = true;
    const date = $("day-date").value || kzToday();
    const [{ appointments }, ...slotLists] = await Promise.all([
      api("GET", `/api/appointments?date=${date}`),
      ...this.specialties.map((s) => api("GET", `/api/slots?specialty=${encodeURIComponent(s)}&date=${date}`)),
    ]);
    const day = $("day-list");
    day.textContent = "";
    $("day-empty").hidden = appointments.length > 0;
    for (const a of appointments.sort((x, y) => x.starts_at.localeCompare(y.starts_at))) {
      day.append(el("li", { class: "card", dataset: { appointment: a.appointment_id } },
        el("strong", {}, `${formatTime(a.starts_at)}–${formatTime(a.ends_at)}`),
        el("span", { class: `tag state-${a.state}` }, t(`appt.${a.state}`)),
        el("span", {}, `${a.specialty} · ${a.clinic}`),
        el("button", { type: "button", class: "open-referral", onclick: () => this.showReferral(a.referral_id) },
          t("schedule.open_referral"))));
    }
    const slots = $("slot-list");
    slots.textContent = "";
    const mine = slotLists.flatMap((l) => l.slots).filter((s) => !s.booked);
    $("slots-empty").hidden = mine.length > 0;
    for (const s of mine) {
      const time = `${formatTime(s.starts_at)}–${formatTime(s.ends_at)}`;
      slots.append(el("li", { class: "card", dataset: { slot: s.slot_id } }, el("strong", {}, time), el("span", {}, s.specialty),
        el("button", { type: "button", "aria-label": t("schedule.withdraw_label", { time }),
          onclick: async () => { await api("DELETE", `/api/slots/${s.slot_id}`).catch(() => {}); this.refresh(); } },
        t("schedule.withdraw"))));
    }
  }

  async showReferral(referralId) {
    const referral = await api("GET", `/api/referrals/${referralId}`);
    await renderReferral($("schedule-referral"), referral, this.viewer);
    $("schedule-referral").scrollIntoView({ block: "nearest" });
  }
}
