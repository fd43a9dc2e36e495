// Small helpers every view of the console shares: building elements (text only, never HTML:
// task texts, code, previews and answers are hostile input) and formatting figures.
"use strict";

export const $ = (id) => document.getElementById(id);

/** A new element of `tag` with class `cls` and, when given, `text` as its text. */
export function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** A duration in seconds as people read it on a timeline: `0.42 s`, `12.3 s`. */
export function seconds(value) {
  return value < 10 ? value.toFixed(2) + " s" : value.toFixed(1) + " s";
}

/** How long ago `at` (epoch seconds) was, coarsely: `5 s`, `3 min`, `2 h`, `4 d`. */
export function age(at, now = Date.now() / 1000) {
  const s = Math.max(0, now - at);
  if (s < 60) return Math.floor(s) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) return Math.floor(s / 3600) + " h";
  return Math.floor(s / 86400) + " d";
}

/** Dollars to the cent's ten-thousandth, as the CLI shows them. */
export function usd(amount) {
  if (typeof amount !== "number" || !isFinite(amount)) return "";
  return "$" + amount.toFixed(6).replace(/0+$/, "").replace(/\.$/, "");
}

/** `text` cut to `limit` characters, with an ellipsis when it was longer. */
export function truncate(text, limit) {
  const value = String(text ?? "");
  return value.length <= limit ? value : value.slice(0, limit - 1) + "…";
}

/** A JSON value as readable text: strings as they are, the rest pretty-printed. */
export function show(value) {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** `holder` ({host, pid} or null) as `host:pid`. */
export function holderText(holder) {
  if (!holder || typeof holder !== "object") return "—";
  return `${holder.host ?? "?"}:${holder.pid ?? "?"}`;
}
