// The public API, called with the signed-in credentials (kept in sessionStorage).
// A 401 or 403 clears nothing by itself: it raises AuthError, and the app shows the sign-in box.

const KEY = "keel.console.credentials";
const BASE = new URL("..", document.baseURI).pathname.replace(/\/$/, "");

export class AuthError extends Error {}

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export function credentials() {
  const raw = sessionStorage.getItem(KEY);
  return raw ? JSON.parse(raw) : null;
}

export function signIn(kind, secret) {
  sessionStorage.setItem(KEY, JSON.stringify({ kind, secret }));
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

function headers(extra) {
  const out = { ...extra };
  const cred = credentials();
  if (cred && cred.kind === "key") out["x-api-key"] = cred.secret;
  if (cred && cred.kind === "bearer") out["authorization"] = `Bearer ${cred.secret}`;
  return out;
}

async function send(method, path, body, signal) {
  const init = { method, headers: headers(body === undefined ? {} : { "content-type": "application/json" }), signal };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(BASE + path, init);
  if (response.status === 401 || response.status === 403) {
    throw new AuthError(await detail(response));
  }
  if (!response.ok) throw new ApiError(response.status, await detail(response));
  return response;
}

async function detail(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
  } catch {
    return response.statusText;
  }
}

export async function api(method, path, body) {
  const response = await send(method, path, body);
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
export const patch = (path, body) => api("PATCH", path, body);

export async function blob(path) {
  return (await send("GET", path)).blob();
}

// Server-sent events over fetch (EventSource cannot send auth headers): calls onEvent(event, data)
// for each event until the stream ends or `signal` aborts.
export async function stream(path, onEvent, signal) {
  const response = await send("GET", path, undefined, signal);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      dispatch(buffer.slice(0, cut), onEvent);
      buffer = buffer.slice(cut + 2);
    }
  }
}

function dispatch(block, onEvent) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return;
  let parsed = data.join("\n");
  try {
    parsed = JSON.parse(parsed);
  } catch {
    // not JSON: handed on as text
  }
  onEvent(event, parsed);
}
