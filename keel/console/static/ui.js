// Small DOM helpers shared by the views.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "style") el.style.cssText = value; // CSSOM: allowed by the page's CSP
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function seconds(from, to) {
  const a = Date.parse(from);
  const b = Date.parse(to);
  if (Number.isNaN(a) || Number.isNaN(b)) return "";
  return `${((b - a) / 1000).toFixed(2)} s`;
}

export function badge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

export function table(headings, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows),
  );
}

export function section(title, ...children) {
  return h("section", {}, h("h2", {}, title), ...children);
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, String(err.message || err));
}

// Parses a textarea as JSON; shows the parse error beside it and returns undefined when invalid.
export function readJson(textarea, errorEl) {
  try {
    errorEl.textContent = "";
    return JSON.parse(textarea.value);
  } catch (err) {
    errorEl.textContent = `invalid JSON: ${err.message}`;
    return undefined;
  }
}

export function short(id) {
  // The tail: time-ordered ids (runs, checkpoints) share their first characters.
  return id ? String(id).slice(-8) : "";
}
