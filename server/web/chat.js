// Chat with the nurse, over the signalling socket (`chat` messages, echoed by the server).
import { $, el } from "./dom.js";
import { formatTime, t } from "/static/common/i18n.js";

export class ChatPanel {
  /** @param {(text: string) => boolean} send */
  constructor(send, myName) {
    this.send = send;
    this.myName = myName;
    this.messages = [];
    $("chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("chat-text");
      const text = input.value.trim();
      if (text && this.send(text)) input.value = "";
    });
  }

  reset() {
    this.messages = [];
    $("chat-log").textContent = "";
  }

  receive(msg) {
    const mine = msg.sender === this.myName();
    this.messages.push({ text: msg.text, sender: msg.sender, sent_at: msg.sent_at, mine });
    $("chat-log").append(el("li", { class: mine ? "mine" : "theirs" },
      el("span", { class: "who" }, `${mine ? t("chat.you") : msg.sender} · ${formatTime(msg.sent_at * 1000)}`),
      el("span", { class: "text" }, msg.text)));
    $("chat-log").scrollTop = $("chat-log").scrollHeight;
  }
}
