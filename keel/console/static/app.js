// The console's shell: sign-in, hash routing, and one view at a time.
import { AuthError, credentials, signIn, signOut } from "./api.js";
import { h, errorBox } from "./ui.js";
import { overview } from "./views/overview.js";
import { threads } from "./views/threads.js";
import { thread } from "./views/thread.js";
import { inbox } from "./views/inbox.js";
import { store } from "./views/store.js";
import { assistants } from "./views/assistants.js";
import { crons } from "./views/crons.js";
import { workspace } from "./views/workspace.js";

const main = document.getElementById("main");
const ROUTES = [
  [/^#\/overview$/, overview],
  [/^#\/threads$/, threads],
  [/^#\/threads\/([^/]+)$/, thread],
  [/^#\/threads\/([^/]+)\/workspace$/, workspace],
  [/^#\/inbox$/, inbox],
  [/^#\/store$/, store],
  [/^#\/assistants$/, assistants],
  [/^#\/crons$/, crons],
];

// Each view gets a context: `signal` aborts its streams and `every(ms, fn)` its timers when the
// route changes; `fail(err)` shows the sign-in box on a 401/403, else the error.
let current = null;

function context(root) {
  const controller = new AbortController();
  const timers = [];
  return {
    root,
    signal: controller.signal,
    every(ms, fn) {
      timers.push(setInterval(fn, Math.max(ms, 2000)));
    },
    fail(err) {
      if (err instanceof AuthError) return showSignIn(err.message);
      if (err.name === "AbortError" || controller.signal.aborted) return;
      root.prepend(errorBox(err));
    },
    dispose() {
      controller.abort();
      timers.forEach(clearInterval);
    },
  };
}

async function route() {
  if (current) current.dispose();
  const hash = location.hash || "#/overview";
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", hash.startsWith(link.getAttribute("href")));
  }
  const match = ROUTES.map(([re, view]) => [hash.match(re), view]).find(([m]) => m);
  const root = h("div", { class: "view" });
  main.replaceChildren(root);
  current = context(root);
  if (!match) {
    root.append(h("p", {}, "No such page. "), h("a", { href: "#/overview" }, "Overview"));
    return;
  }
  const [m, view] = match;
  try {
    await view(current, ...m.slice(1).map(decodeURIComponent));
  } catch (err) {
    current.fail(err);
  }
}

function showSignIn(message) {
  if (current) current.dispose();
  const kind = h("select", { name: "kind" },
    h("option", { value: "key" }, "API key (x-api-key)"),
    h("option", { value: "bearer" }, "Bearer token"));
  kind.value = credentials()?.kind || "key"; // a refused credential: keep its kind for the retry
  const secret = h("input", { name: "secret", type: "password", autocomplete: "off", required: true });
  const form = h("form", { class: "signin", id: "signin" },
    h("h2", {}, "Sign in"),
    message ? h("p", { class: "error" }, message) : null,
    h("label", {}, "Credential ", kind),
    h("label", {}, "Secret ", secret),
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    signIn(kind.value, secret.value);
    updateSignOut();
    route();
  });
  main.replaceChildren(form);
  secret.focus();
}

function updateSignOut() {
  document.getElementById("signout").hidden = !credentials();
}

document.getElementById("signout").addEventListener("click", () => {
  signOut();
  updateSignOut();
  showSignIn();
});
window.addEventListener("hashchange", route);
updateSignOut();
route();
