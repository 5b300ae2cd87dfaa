// A modal image viewer with zoom and pan (mouse wheel, drag, keyboard), for stills and X-ray films.
import { $ } from "./dom.js";

const MIN_SCALE = 0.25;
const MAX_SCALE = 16;

export class ImageViewer {
  constructor() {
    this.dialog = $("viewer");
    this.stage = $("viewer-stage");
    this.img = $("viewer-img");
    this.scale = 1; this.x = 0; this.y = 0; this.inverted = false;
    $("viewer-zoom-in").addEventListener("click", () => this.zoom(1.25));
    $("viewer-zoom-out").addEventListener("click", () => this.zoom(0.8));
    $("viewer-reset").addEventListener("click", () => this.reset());
    $("viewer-close").addEventListener("click", () => this.dialog.close());
    $("viewer-invert").addEventListener("click", () => {
      this.inverted = !this.inverted;
      $("viewer-invert").setAttribute("aria-pressed", String(this.inverted));
      this.apply();
    });
    this.stage.addEventListener("wheel", (event) => {
      event.preventDefault();
      this.zoom(event.deltaY < 0 ? 1.15 : 1 / 1.15);
    }, { passive: false });
    this.stage.addEventListener("pointerdown", (event) => {
      this.stage.setPointerCapture(event.pointerId);
      this.drag = { x: event.clientX - this.x, y: event.clientY - this.y };
    });
    this.stage.addEventListener("pointermove", (event) => {
      if (!this.drag) return;
      this.x = event.clientX - this.drag.x;
      this.y = event.clientY - this.drag.y;
      this.apply();
    });
    this.stage.addEventListener("pointerup", () => { this.drag = null; });
    this.stage.addEventListener("keydown", (event) => {
      const step = 40;
      const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
      if (event.key in moves) { this.x += moves[event.key][0]; this.y += moves[event.key][1]; this.apply(); }
      else if (event.key === "+" || event.key === "=") this.zoom(1.25);
      else if (event.key === "-") this.zoom(0.8);
      else if (event.key === "0") this.reset();
      else return;
      event.preventDefault();
    });
  }

  /** Show `url`, described by `alt`. */
  open(url, alt) {
    this.img.src = url;
    this.img.alt = alt;
    this.inverted = false;
    $("viewer-invert").setAttribute("aria-pressed", "false");
    this.reset();
    if (!this.dialog.open) this.dialog.showModal();
    this.stage.focus();
  }

  zoom(factor) {
    this.scale = Math.min(MAX_SCALE, Math.max(MIN_SCALE, this.scale * factor));
    this.apply();
  }

  reset() {
    this.scale = 1; this.x = 0; this.y = 0;
    this.apply();
  }

  apply() {
    this.img.style.transform = `translate(${this.x}px, ${this.y}px) scale(${this.scale})`;
    this.img.style.filter = this.inverted ? "invert(1)" : "";
    this.dialog.dataset.scale = this.scale.toFixed(2);
  }
}
