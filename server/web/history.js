// Session history: the specialist's own past consultations, each with its record (notes,
// conclusion, stills, vitals) and the PDF / FHIR exports.
import { $, api, el } from "./dom.js";
import { formatTime, t } from "/static/common/i18n.js";

export class HistoryView {
  constructor(viewer) {
    this.viewer = viewer;
  }

  async refresh() {
    const { sessions } = await api("GET", "/api/history");
    const list = $("history");
    list.textContent = "";
    $("history-empty").hidden = sessions.length > 0;
    for (const s of sessions) {
      list.append(el("li", { class: "card", dataset: { session: s.session_id } },
        el("strong", {}, formatTime((s.accepted_at || s.created_at) * 1000, { withDate: true })),
        el("span", {}, `${s.specialty} · ${t(`state.${s.state}`)}`),
        s.reason ? el("span", { class: "reason" }, s.reason) : null,
        el("span", {}, t("history.stills", { n: s.stills.length })),
        el("button", { type: "button", class: "open-record", onclick: () => this.openRecord(s.session_id) }, t("history.open"))));
    }
  }

  async openRecord(sessionId) {
    const r = await api("GET", `/api/sessions/${sessionId}/record`);
    const box = $("record");
    box.textContent = "";
    const c = r.conclusion || {};
    box.append(
      el("h3", { id: "record-title" }, `${t("record.title")}: ${r.cart.name}, ${r.cart.clinic} — ${r.specialty}`),
      el("p", {}, formatTime(r.times.requested_at, { withDate: true })),
      el("div", { class: "buttons" },
        el("a", { class: "button", href: `/api/sessions/${sessionId}/record.pdf`, download: "" }, t("record.pdf")),
        el("a", { class: "button", href: `/api/sessions/${sessionId}/record.fhir.json`, download: "" }, t("record.fhir"))));
    if (c.conclusion) {
      const dl = el("dl", { class: "facts record-conclusion" });
      for (const [key, value] of [["notes.conclusion", c.conclusion], ["notes.recommendations", c.recommendations], ["record.notes", c.notes]]) {
        if (value) dl.append(el("dt", {}, t(key)), el("dd", {}, value));
      }
      box.append(dl);
    } else box.append(el("p", {}, t("record.no_conclusion")));
    if (r.vitals && r.vitals.length) {
      box.append(el("h4", {}, t("record.vitals")), el("ul", {}, ...r.vitals.map((v) =>
        el("li", {}, `${v.kind}: ${v.last} ${v.unit} (${v.min}–${v.max}, n=${v.count})`))));
    }
    if (r.stills && r.stills.length) {
      const gallery = el("ul", { class: "gallery" });
      r.stills.forEach((s, i) => {
        const alt = `${t("stills.title")} ${i + 1}`;
        gallery.append(el("li", {}, el("button", { type: "button", class: "thumb", "aria-label": t("stills.open", { n: i + 1 }),
          onclick: () => this.viewer.open(s.url, alt) }, el("img", { src: s.url, alt }))));
      });
      box.append(el("h4", {}, t("stills.title")), gallery);
    }
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }
}
