/**
 * telecart translations for browsers: Russian, Kazakh (Cyrillic) and English.
 *
 * Shared by the specialist app (server/web/) and the nurse screen; served at
 * `/static/common/i18n.js`. Plain ES module, no dependencies. The chosen language is
 * remembered in `localStorage["telecart.lang"]` (only the language code is stored).
 *
 *   import { addStrings, t, applyTranslations, setLanguage, language, LANGUAGES,
 *            onLanguageChange, formatTime } from "/static/common/i18n.js";
 *   addStrings({ ru: {"queue.title": "Очередь"}, kk: {...}, en: {...} });
 *   t("queue.wait", { min: 3 })        // "{min}" placeholders are filled in
 *   <h2 data-i18n="queue.title"></h2>  // textContent
 *   <input data-i18n-attr="placeholder:chat.hint;aria-label:chat.label">
 *   applyTranslations(document)        // done for the whole document on setLanguage()
 *   setLanguage("kk")                  // remembers it, sets <html lang>, re-applies, notifies
 *
 * A key missing in the chosen language falls back to English, then to the key itself
 * (so a missing translation shows, and never breaks the page). The first language is the
 * remembered one, else the browser's if it is one of ours, else Russian.
 */

export const LANGUAGES = [
  { code: "ru", name: "Русский" },
  { code: "kk", name: "Қазақша" },
  { code: "en", name: "English" },
];
export const STORAGE_KEY = "telecart.lang";
const CODES = LANGUAGES.map((l) => l.code);
const FALLBACK = "en";

const tables = { ru: {}, kk: {}, en: {} };
const listeners = new Set();
let current = initialLanguage();

function initialLanguage() {
  let stored = null;
  try {
    stored = window.localStorage.getItem(STORAGE_KEY);
  } catch {
    stored = null; // storage disabled: still usable, just not remembered
  }
  if (CODES.includes(stored)) return stored;
  const browser = (navigator.language || "").slice(0, 2).toLowerCase();
  return CODES.includes(browser) ? browser : "ru";
}

/** Merge `{lang: {key: text}}` into the tables (later calls override earlier keys). */
export function addStrings(table) {
  for (const [lang, strings] of Object.entries(table)) {
    if (!tables[lang]) continue;
    Object.assign(tables[lang], strings);
  }
}

/** The current language code: "ru", "kk" or "en". */
export function language() {
  return current;
}

/** The text for `key` in the current language with `{name}` placeholders filled. */
export function t(key, params = {}) {
  const text = tables[current][key] ?? tables[FALLBACK][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** True when `key` has a text in some language. */
export function hasKey(key) {
  return key in tables[current] || key in tables[FALLBACK];
}

/** Fill `data-i18n` (textContent) and `data-i18n-attr` ("attr:key;attr:key") under `root`. */
export function applyTranslations(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
}

/** Choose, remember and apply a language; listeners are told. Unknown codes are ignored. */
export function setLanguage(code) {
  if (!CODES.includes(code)) return;
  current = code;
  try {
    window.localStorage.setItem(STORAGE_KEY, code);
  } catch {
    /* not remembered; the page still switches */
  }
  document.documentElement.lang = code;
  applyTranslations(document);
  for (const listener of listeners) listener(code);
}

/** Call `listener(code)` after every language change. Returns an unsubscribe. */
export function onLanguageChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

const LOCALES = { ru: "ru-RU", kk: "kk-KZ", en: "en-GB" };
/** Kazakhstan has one zone, UTC+5 (docs/journey.md); shown whatever the browser's zone is. */
export const KZ_TIME_ZONE = "Asia/Almaty";
const KZ_OFFSET_MS = 5 * 3600 * 1000;

/** `date` (Date, epoch ms or ISO) as Kazakhstan local time (UTC+5), in the current language. */
export function formatTime(date, { withDate = false, seconds = false } = {}) {
  const d = date instanceof Date ? date : new Date(date);
  // A fixed +5 h shift read back as UTC: correct even where the browser's tzdata is old.
  const shifted = new Date(d.getTime() + KZ_OFFSET_MS);
  const options = { hour: "2-digit", minute: "2-digit", timeZone: "UTC", hour12: false };
  if (seconds) options.second = "2-digit";
  if (withDate) Object.assign(options, { year: "numeric", month: "2-digit", day: "2-digit" });
  return new Intl.DateTimeFormat(LOCALES[current], options).format(shifted);
}

/** Today's date in Kazakhstan as YYYY-MM-DD. */
export function kzToday(now = Date.now()) {
  return new Date(now + KZ_OFFSET_MS).toISOString().slice(0, 10);
}

/** Build language buttons (aria-pressed) into `container`; each one calls setLanguage. */
export function languageButtons(container) {
  container.textContent = "";
  for (const { code, name } of LANGUAGES) {
    const button = document.createElement("button");
    button.type = "button";
    button.lang = code;
    button.dataset.lang = code;
    button.textContent = name;
    button.setAttribute("aria-pressed", String(code === current));
    button.addEventListener("click", () => setLanguage(code));
    container.appendChild(button);
  }
  onLanguageChange((code) => {
    for (const button of container.querySelectorAll("button[data-lang]")) {
      button.setAttribute("aria-pressed", String(button.dataset.lang === code));
    }
  });
}

document.documentElement.lang = current;
