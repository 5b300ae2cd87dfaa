"""The receiving page's recorder of the decoded stethoscope track, and its read-back.

`RECORDER_PROBE` is evaluated in the specialist page after `media_pages.RECEIVER_PROBE`.
Every 100 ms it looks for the stethoscope's receiver track (the cart's `track_roles`, else
the m-line order) and feeds it to an AudioWorklet in its own 48 kHz AudioContext, which
mixes the channels to mono and posts 100 ms blocks; a new track (renegotiation) replaces
the old one. `window.bench.recording` is a getter, so `media_browser.read_probe`, which
copies `window.bench`, gets the PCM as base64 int16 without a second round trip.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import numpy.typing as npt

from telecart.devices.audio_chunk import FULL_SCALE, SAMPLE_RATE

RECORDER_PROBE = """() => {
  const ORDER = ["room", "exam", "stethoscope", "voice"];
  const RATE = __RATE__, BLOCK = RATE / 10;
  const WORKLET = `
    class Tap extends AudioWorkletProcessor {
      constructor() { super(); this.block = new Float32Array(${BLOCK}); this.n = 0; }
      process(inputs) {
        const channels = inputs[0], frames = channels.length ? channels[0].length : 128;
        for (let i = 0; i < frames; i++) {
          let sum = 0;
          for (const channel of channels) sum += channel[i];
          this.block[this.n++] = channels.length ? sum / channels.length : 0;
          if (this.n === this.block.length) {
            this.port.postMessage(this.block);
            this.block = new Float32Array(${BLOCK});
            this.n = 0;
          }
        }
        return true;
      }
    }
    registerProcessor("steth-tap", Tap);`;
  const blocks = [];
  const state = { track: null, source: null, node: null, startedAt: null, tracks: 0 };
  const context = new AudioContext({ sampleRate: RATE });
  const url = URL.createObjectURL(new Blob([WORKLET], { type: "application/javascript" }));
  context.audioWorklet.addModule(url).then(() => {
    state.node = new AudioWorkletNode(context, "steth-tap", { outputChannelCount: [1] });
    state.node.port.onmessage = (e) => { if (state.startedAt !== null) blocks.push(e.data); };
    const mute = context.createGain();
    mute.gain.value = 0;  // pulled by the destination, never heard twice
    state.node.connect(mute).connect(context.destination);
    return context.resume();
  });
  const stethoscopeTrack = () => {
    const pc = window.telecart.pc;
    if (!pc) return null;
    const transceivers = pc.getTransceivers();
    for (let i = 0; i < transceivers.length; i++) {
      const t = transceivers[i], track = t.receiver.track;
      if (t.mid === null || !track || track.kind !== "audio") continue;
      if ((window.telecart.roles[t.mid] || ORDER[i]) === "stethoscope") return track;
    }
    return null;
  };
  setInterval(() => {
    const track = stethoscopeTrack();
    if (!state.node || !track || track === state.track) return;
    if (state.source) state.source.disconnect();
    state.track = track;
    state.source = context.createMediaStreamSource(new MediaStream([track]));
    state.source.connect(state.node);
    state.tracks += 1;
    if (state.startedAt === null) state.startedAt = Date.now();
  }, 100);
  Object.defineProperty(window.bench, "recording", {
    enumerable: true,
    get() {
      const total = blocks.reduce((n, b) => n + b.length, 0);
      const pcm = new Int16Array(total);
      let at = 0;
      for (const block of blocks) {
        for (let i = 0; i < block.length; i++) {
          pcm[at++] = Math.round(Math.max(-1, Math.min(1, block[i])) * __FULL_SCALE__);
        }
      }
      const bytes = new Uint8Array(pcm.buffer);
      let binary = "";
      for (let i = 0; i < bytes.length; i += 0x8000) {
        binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
      }
      return { rate: context.sampleRate, startedAt: state.startedAt, tracks: state.tracks,
        pcm: btoa(binary) };
    },
  });
}""".replace("__RATE__", str(SAMPLE_RATE)).replace("__FULL_SCALE__", str(FULL_SCALE))


def recorded_pcm(probe: dict[str, Any]) -> npt.NDArray[np.float64]:
    """The recording in `probe` (from `read_probe`) as floats in [-1, 1]; empty if none."""
    recording = probe.get("recording") or {}
    if recording.get("rate") not in (None, SAMPLE_RATE):
        raise ValueError(f"the page recorded at {recording['rate']} Hz, not {SAMPLE_RATE}")
    raw = base64.b64decode(recording.get("pcm", ""))
    return np.frombuffer(raw, "<i2").astype(np.float64) / FULL_SCALE
