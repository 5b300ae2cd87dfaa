// The stethoscope's live waveform and spectrogram, drawn from its own audio track (Web Audio).
// Playback stays on the <audio> element (its volume slider); Web Audio only analyses.

export class StethoscopeView {
  constructor(waveCanvas, spectrogramCanvas) {
    this.wave = waveCanvas;
    this.spectrogram = spectrogramCanvas;
    this.context = null;
    this.source = null;
    this.analyser = null;
    this.frame = null;
    this.frames = 0; // drawn frames with signal, for tests
  }

  /** Start analysing `track` (a remote MediaStreamTrack). */
  attach(track) {
    this.detach();
    this.context = this.context || new AudioContext();
    this.context.resume().catch(() => {});
    this.source = this.context.createMediaStreamSource(new MediaStream([track]));
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = 2048;
    this.analyser.smoothingTimeConstant = 0.2;
    this.source.connect(this.analyser);
    this.timeData = new Float32Array(this.analyser.fftSize);
    this.freqData = new Uint8Array(this.analyser.frequencyBinCount);
    const draw = () => {
      this.draw();
      this.frame = requestAnimationFrame(draw);
    };
    this.frame = requestAnimationFrame(draw);
  }

  detach() {
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    this.frame = null;
    if (this.source) this.source.disconnect();
    this.source = null;
    this.analyser = null;
  }

  draw() {
    if (!this.analyser) return;
    this.analyser.getFloatTimeDomainData(this.timeData);
    this.analyser.getByteFrequencyData(this.freqData);
    let peak = 0;
    for (const v of this.timeData) peak = Math.max(peak, Math.abs(v));
    if (peak > 1e-4) this.frames += 1;
    this.drawWave(peak);
    this.drawSpectrogramColumn();
  }

  drawWave(peak) {
    const ctx = this.wave.getContext("2d");
    const { width, height } = this.wave;
    ctx.fillStyle = "#0b1b2b";
    ctx.fillRect(0, 0, width, height);
    ctx.strokeStyle = "#7fe3a1";
    ctx.lineWidth = 2;
    ctx.beginPath();
    // Auto-gain so quiet heart sounds stay visible; the slider is for the ears only.
    const gain = peak > 0 ? Math.min(1 / peak, 50) * 0.45 : 1;
    const step = this.timeData.length / width;
    for (let x = 0; x < width; x += 1) {
      const y = height / 2 - this.timeData[Math.floor(x * step)] * gain * height;
      if (x === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    }
    ctx.stroke();
  }

  /** Scroll left by one pixel and paint the newest spectrum (0-2 kHz, low at the bottom). */
  drawSpectrogramColumn() {
    const ctx = this.spectrogram.getContext("2d");
    const { width, height } = this.spectrogram;
    ctx.drawImage(this.spectrogram, -1, 0);
    const nyquist = this.context.sampleRate / 2;
    const bins = Math.max(1, Math.floor((2000 / nyquist) * this.freqData.length));
    for (let y = 0; y < height; y += 1) {
      const v = this.freqData[Math.floor(((height - 1 - y) / height) * bins)];
      ctx.fillStyle = `hsl(${240 - (v / 255) * 240}, 90%, ${10 + (v / 255) * 50}%)`;
      ctx.fillRect(width - 1, y, 1, 1);
    }
  }
}
