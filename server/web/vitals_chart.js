// Vital signs: the latest value in big numbers and a live chart of the whole session per kind.
import { $, el } from "./dom.js";
import { formatTime, hasKey, onLanguageChange, t } from "/static/common/i18n.js";

const CHART_W = 300;
const CHART_H = 70;

function vitalName(kind) {
  return hasKey(`vital.${kind}`) ? t(`vital.${kind}`) : kind;
}

export class VitalsBoard {
  constructor() {
    this.series = new Map(); // kind -> {unit, points: [[t, v]], row}
    onLanguageChange(() => { for (const [kind, s] of this.series) this.label(kind, s); });
  }

  reset() {
    this.series.clear();
    $("vitals").textContent = "";
    $("vitals-none").hidden = false;
    $("vitals-note").textContent = "";
  }

  add(reading, gaps) {
    let s = this.series.get(reading.kind);
    if (!s) {
      const canvas = el("canvas", { width: CHART_W, height: CHART_H, role: "img", class: "chart" });
      const row = el("div", { class: "vital", dataset: { kind: reading.kind } },
        el("span", { class: "name" }), el("span", { class: "value" }), el("span", { class: "unit" }),
        el("span", { class: "age" }), canvas);
      s = { unit: reading.unit, points: [], row, canvas };
      this.series.set(reading.kind, s);
      $("vitals").append(row);
      $("vitals-none").hidden = true;
      this.label(reading.kind, s);
    }
    s.points.push([reading.captured_at, Number(reading.value)]);
    s.row.querySelector(".value").textContent = reading.value;
    s.row.querySelector(".unit").textContent = reading.unit;
    s.row.querySelector(".age").textContent = formatTime(reading.captured_at * 1000, { seconds: true });
    this.draw(s);
    $("vitals-note").textContent = gaps ? t("vitals.gaps", { n: gaps }) : "";
  }

  label(kind, s) {
    s.row.querySelector(".name").textContent = vitalName(kind);
    s.canvas.setAttribute("aria-label", t("vitals.chart", { name: vitalName(kind) }));
  }

  draw(s) {
    const ctx = s.canvas.getContext("2d");
    ctx.clearRect(0, 0, CHART_W, CHART_H);
    const pts = s.points;
    const values = pts.map((p) => p[1]);
    let lo = Math.min(...values);
    let hi = Math.max(...values);
    if (hi - lo < 1) { lo -= 1; hi += 1; }
    const t0 = pts[0][0];
    const span = Math.max(pts[pts.length - 1][0] - t0, 1);
    ctx.fillStyle = "#41536a";
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillText(String(Math.round(hi)), 2, 11);
    ctx.fillText(String(Math.round(lo)), 2, CHART_H - 3);
    ctx.strokeStyle = "#0b5cad";
    ctx.lineWidth = 2;
    ctx.beginPath();
    pts.forEach(([time, value], i) => {
      const x = 28 + ((time - t0) / span) * (CHART_W - 32);
      const y = 6 + (1 - (value - lo) / (hi - lo)) * (CHART_H - 12);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    s.canvas.dataset.points = String(pts.length);
  }
}
