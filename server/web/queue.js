// The live queue of consultation requests for the specialist's specialties.
import { $, el, formatDuration } from "./dom.js";
import { onLanguageChange, t } from "/static/common/i18n.js";

export class QueueView {
  /** @param {(sessionId: string) => void} accept */
  constructor(accept, notify) {
    this.accept = accept;
    this.notify = notify;
    this.queues = {};
    this.receivedAt = 0;
    this.acceptedByMe = null;
    setInterval(() => this.tick(), 1000);
    onLanguageChange(() => this.render());
  }

  update(specialty, entries) {
    const before = this.entries();
    this.queues[specialty] = entries;
    this.receivedAt = performance.now();
    const now = new Set(this.entries().map((e) => e.session_id));
    for (const gone of before) {
      if (!now.has(gone.session_id) && gone.session_id !== this.acceptedByMe) {
        this.notify(t("queue.taken", { cart: gone.cart_name }));
      }
    }
    this.render();
  }

  /** All waiting entries, urgent first, then the longest waiting. */
  entries() {
    const all = Object.values(this.queues).flat();
    return all.sort((a, b) =>
      (a.priority === "urgent" ? 0 : 1) - (b.priority === "urgent" ? 0 : 1) || b.waiting_s - a.waiting_s);
  }

  render() {
    const list = $("queue");
    list.textContent = "";
    const entries = this.entries();
    $("queue-empty").hidden = entries.length > 0;
    for (const entry of entries) {
      const urgent = entry.priority === "urgent";
      const button = el("button", {
        type: "button", class: "accept",
        "aria-label": t("queue.accept_label", { cart: entry.cart_name, clinic: entry.clinic }),
        onclick: () => { this.acceptedByMe = entry.session_id; this.accept(entry.session_id); },
      }, t("queue.accept"));
      list.append(el("li", { class: urgent ? "card urgent" : "card", dataset: { session: entry.session_id } },
        el("div", { class: "card-head" },
          el("span", { class: urgent ? "tag tag-urgent" : "tag" }, t(urgent ? "queue.urgent" : "queue.routine")),
          el("strong", {}, `${entry.cart_name} · ${entry.clinic}`),
          el("span", { class: "wait", dataset: { waiting: entry.waiting_s } }, "")),
        el("p", {}, `${t("queue.specialty")}: ${entry.specialty}`),
        entry.reason ? el("p", { class: "reason" }, `${t("queue.reason")}: ${entry.reason}`) : null,
        button));
    }
    this.tick();
  }

  /** Waiting times count on between updates. */
  tick() {
    const extra = (performance.now() - this.receivedAt) / 1000;
    for (const span of document.querySelectorAll("#queue .wait")) {
      span.textContent = t("queue.waiting", { time: formatDuration(Number(span.dataset.waiting) + extra) });
    }
  }
}
