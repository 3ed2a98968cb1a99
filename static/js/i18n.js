// Translation: every visible string goes through t(key). Dictionaries live in i18n/{en,zh}.js.

import en from "./i18n/en.js";
import zh from "./i18n/zh.js";

export const LANGUAGES = { en, zh };
const STORAGE_KEY = "cnnviz.lang";
let current = "en";
const listeners = new Set();

export function lang() {
  return current;
}

/** The text for `key` with {name} placeholders filled from `vars`. */
export function t(key, vars) {
  let s = LANGUAGES[current][key] ?? LANGUAGES.en[key];
  if (s === undefined) return key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

/** A {en, zh} object from the API (scenario titles and notes) in the current language. */
export function pick(obj) {
  if (!obj || typeof obj === "string") return obj || "";
  return obj[current] ?? obj.en ?? "";
}

/** Fill [data-i18n] text, [data-i18n-aria] aria-labels and [data-i18n-title] titles under root. */
export function applyI18n(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-aria]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAria));
  }
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}

export function setLang(name) {
  if (!(name in LANGUAGES)) return;
  current = name;
  document.documentElement.lang = name === "zh" ? "zh-CN" : "en";
  try {
    localStorage.setItem(STORAGE_KEY, name);
  } catch {
    /* storage may be disabled; the switch still works for this page */
  }
  applyI18n();
  for (const fn of listeners) fn(name);
}

export function onLangChange(fn) {
  listeners.add(fn);
}

export function initialLang() {
  let stored = null;
  try {
    stored = localStorage.getItem(STORAGE_KEY);
  } catch {
    stored = null;
  }
  if (stored in LANGUAGES) return stored;
  return (navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en";
}
