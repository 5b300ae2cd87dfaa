/**
 * telecart signalling client for browsers (docs/protocol.md, version 1).
 *
 * Shared by the specialist app (server/web/) and the nurse screen; served at
 * `/static/common/protocol.js`. Plain ES module, no dependencies.
 *
 *   import { TelecartSocket, PROTOCOL_VERSION } from "/static/common/protocol.js";
 *   const socket = new TelecartSocket({ role: "specialist" });   // url defaults to this host's /ws
 *   socket.on("welcome", (msg) => ...);        // any message type, or "*" for every message
 *   socket.onStatus((status, detail) => ...);  // "connecting" | "online" | "offline" | "refused" | "closed"
 *   socket.connect();
 *   socket.send("accept", { session_id });     // false when not connected (nothing is queued)
 *   socket.close();                            // no more reconnects
 *
 * Reconnects after any drop with growing, jittered delays (0.5 s doubling to 15 s, ±25 %),
 * reset once `welcome` arrives. Close code 4401 (authentication refused) stops reconnecting
 * and reports "refused". `hello` is sent on every (re)connect with `role` and, for a cart,
 * `token`; the server answers `welcome` with the party's open session, if any.
 */

export const PROTOCOL_VERSION = 1;
export const CLOSE_AUTH_REFUSED = 4401;

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;

/** The default /ws address of the page's own server. */
export function defaultSocketUrl(loc = window.location) {
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/ws`;
}

/** Delay before reconnect attempt `attempt` (0-based), in ms, jittered ±25 %. */
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(FIRST_DELAY_MS * 2 ** attempt, MAX_DELAY_MS);
  return Math.round(base * (0.75 + 0.5 * random()));
}

export class TelecartSocket {
  /**
   * @param {{url?: string, role: "specialist"|"cart", token?: string}} options
   */
  constructor({ url = defaultSocketUrl(), role, token } = {}) {
    this.url = url;
    this.role = role;
    this.token = token;
    this.ws = null;
    this.status = "closed";
    this.attempt = 0;
    this.retryAt = null;
    this._handlers = new Map();
    this._statusHandlers = new Set();
    this._timer = null;
    this._closed = true;
  }

  /** Call `handler(msg)` for every message of `type` ("*" for all). Returns an unsubscribe. */
  on(type, handler) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(handler);
    return () => this._handlers.get(type).delete(handler);
  }

  /** Call `handler(status, detail)` on every connection status change. Returns an unsubscribe. */
  onStatus(handler) {
    this._statusHandlers.add(handler);
    return () => this._statusHandlers.delete(handler);
  }

  connect() {
    this._closed = false;
    clearTimeout(this._timer);
    this._setStatus("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      const hello = { role: this.role };
      if (this.token) hello.token = this.token;
      this.send("hello", hello);
    };
    ws.onmessage = (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      if (msg.type === "welcome") {
        this.attempt = 0;
        this._setStatus("online");
      }
      this._dispatch(msg);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this._closed) {
        this._setStatus("closed");
      } else if (event.code === CLOSE_AUTH_REFUSED) {
        this._closed = true;
        this._setStatus("refused", { code: event.code });
      } else {
        const delay = backoffDelay(this.attempt);
        this.attempt += 1;
        this.retryAt = Date.now() + delay;
        this._setStatus("offline", { code: event.code, retryInMs: delay });
        this._timer = setTimeout(() => this.connect(), delay);
      }
    };
  }

  /** Send one message; returns false (and drops it) when the socket is not open. */
  send(type, body = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type, ...body }));
    return true;
  }

  /** Close for good: no reconnect. */
  close() {
    this._closed = true;
    clearTimeout(this._timer);
    if (this.ws) this.ws.close(1000);
    else this._setStatus("closed");
  }

  _dispatch(msg) {
    for (const key of [msg.type, "*"]) {
      for (const handler of this._handlers.get(key) || []) {
        try {
          handler(msg);
        } catch (err) {
          console.error(`telecart: handler for ${msg.type} failed`, err);
        }
      }
    }
  }

  _setStatus(status, detail = {}) {
    this.status = status;
    for (const handler of this._statusHandlers) handler(status, detail);
  }
}
