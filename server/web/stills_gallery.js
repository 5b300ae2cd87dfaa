// Stills from the cart's `stills` channel (docs/cart-agent.md): reassembled, checked, acknowledged,
// shown in a gallery that opens the zoom/pan viewer. Periodic stills (stills mode, when the
// link is too thin for exam video) replace the exam video picture instead.
import { $, el } from "./dom.js";
import { t } from "/static/common/i18n.js";

async function sha256Hex(buffer) {
  if (!window.crypto || !crypto.subtle) return null; // only on https or localhost
  const digest = await crypto.subtle.digest("SHA-256", buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

export class StillsGallery {
  /**
   * @param {Array} stills the shared list (window.telecart.stills)
   * @param {import("./image_viewer.js").ImageViewer} viewer
   * @param {(text: string) => void} note
   * @param {Array<number>} periodic arrival times (ms) of stills-mode pictures, for tests
   */
  constructor(stills, viewer, note, periodic = []) {
    this.stills = stills;
    this.periodic = periodic;
    this.viewer = viewer;
    this.note = note;
    this.partial = null;
    this.stored = {}; // still_id -> server URL; may arrive before the still is checked
    this.periodicUrl = null;
  }

  reset() {
    this.stills.length = 0;
    this.partial = null;
    this.stored = {};
    $("stills").textContent = "";
    $("stills-none").hidden = false;
    this.showPeriodic(null);
  }

  /** One message of the stills channel; `reply` sends JSON back on it. */
  receive(data, reply) {
    if (typeof data !== "string") {
      if (this.partial) this.partial.parts.push(data);
      return;
    }
    const msg = JSON.parse(data);
    if (msg.type === "still") this.partial = { header: msg, parts: [] };
    else if (msg.type === "still_end" && this.partial) {
      const still = this.partial;
      this.partial = null;
      this.finish(still, reply).catch((err) => this.note(t("error.generic", { message: err })));
    } else if (msg.type === "still_stored") {
      this.stored[msg.still_id] = msg.url;
      const still = this.stills.find((s) => s.header.still_id === msg.still_id);
      if (still) this.markStored(still);
    }
  }

  async finish(still, reply) {
    const blob = new Blob(still.parts, { type: still.header.media_type });
    const bytes = await blob.arrayBuffer();
    const sha256 = await sha256Hex(bytes);
    const verified = sha256 === still.header.sha256;
    if (verified || sha256 === null) reply({ type: "still_ack", still_id: still.header.still_id });
    if (still.header.periodic) {
      this.periodic.push(Date.now());
      this.showPeriodic(URL.createObjectURL(blob));
      return;
    }
    if (this.stills.some((s) => s.header.still_id === still.header.still_id)) return; // resent
    const entry = { header: still.header, size: bytes.byteLength, sha256, verified,
      url: URL.createObjectURL(blob), serverUrl: null, label: null };
    this.stills.push(entry);
    this.render(entry);
    if (this.stored[still.header.still_id]) this.markStored(entry);
    this.note("");
  }

  render(entry) {
    const n = this.stills.length;
    const check = entry.sha256 === null ? t("stills.unverified") : entry.verified ? t("stills.verified") : t("stills.mismatch");
    const label = el("span", { class: "still-label" },
      `${n}. ${entry.header.width}×${entry.header.height}, ${Math.round(entry.size / 1024)} KiB, ${check}`);
    entry.label = label;
    const alt = `${t("stills.title")} ${n}, ${entry.header.camera || "exam"}`;
    const button = el("button", { type: "button", class: "thumb", "aria-label": t("stills.open", { n }),
      onclick: () => this.viewer.open(entry.url, alt) }, el("img", { src: entry.url, alt }));
    $("stills").prepend(el("li", {}, button, label));
    $("stills-none").hidden = true;
  }

  markStored(entry) {
    if (entry.serverUrl) return;
    entry.serverUrl = this.stored[entry.header.still_id];
    if (entry.label) entry.label.textContent += ` · ${t("stills.stored")}`;
  }

  showPeriodic(url) {
    if (this.periodicUrl) URL.revokeObjectURL(this.periodicUrl);
    this.periodicUrl = url;
    const slate = $("slate-exam");
    slate.hidden = url === null;
    if (url) { slate.src = url; slate.alt = t("call.stills_mode"); } else slate.removeAttribute("src");
  }
}
