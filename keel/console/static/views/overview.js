// Overview: runs by status, queue depth and wait, throughput and workers from GET /metrics
// (Prometheus text); threads by status and the latest errored threads from the threads API; the
// worker processes and their leases (workers.js).
import { get, post } from "../api.js";
import { h, section, table, badge, when, short } from "../ui.js";
import { workersPanel } from "./workers.js";

const STATUSES = ["idle", "busy", "interrupted", "error"];

// Prometheus text → [{name, labels, value}]; comments and malformed lines skipped.
export function parseMetrics(text) {
  const samples = [];
  const line = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/;
  for (const raw of text.split("\n")) {
    const m = raw.match(line);
    if (!m) continue;
    const labels = {};
    for (const pair of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

function sum(samples, name, filter = () => true) {
  return samples.filter((s) => s.name === name && filter(s.labels)).reduce((a, s) => a + s.value, 0);
}

function byLabel(samples, name, label) {
  const out = {};
  for (const s of samples.filter((x) => x.name === name)) {
    out[s.labels[label]] = (out[s.labels[label]] || 0) + s.value;
  }
  return out;
}

function tile(label, value, id) {
  return h("div", { class: "tile", dataset: { metric: id } }, h("span", { class: "value" }, value), h("span", {}, label));
}

// Throughput: runs finished per minute between two refreshes of the page (counter deltas).
let last = null;

function throughput(total) {
  const now = Date.now();
  const rate = last && total >= last.total ? ((total - last.total) * 60000) / (now - last.at) : null;
  last = { total, at: now };
  return rate === null ? "–" : rate.toFixed(1);
}

async function metricsPanel(info) {
  if (!info.flags?.metrics) return h("p", { class: "muted", id: "metrics-off" }, "Metrics are off on this server (http.disable_metrics): run counts not shown.");
  const s = parseMetrics(await get("/metrics"));
  const runs = byLabel(s, "keel_runs", "status");
  const finished = byLabel(s, "keel_runs_finished_total", "status");
  const oldest = Math.max(0, ...s.filter((x) => x.name === "keel_queue_oldest_wait_seconds").map((x) => x.value));
  return h("div", {},
    h("div", { class: "tiles" },
      tile("pending runs", runs.pending || 0, "pending"),
      tile("running runs", runs.running || 0, "running"),
      tile("queue depth (due)", sum(s, "keel_queue_depth"), "queue"),
      tile("oldest wait", `${oldest.toFixed(1)} s`, "wait"),
      tile("executing here", sum(s, "keel_runs_executing"), "executing"),
      tile("lease overdue", sum(s, "keel_runs_lease_overdue"), "overdue"),
      tile("finished / min", throughput(sum(s, "keel_runs_finished_total")), "throughput")),
    h("h3", {}, "Runs finished since this server started"),
    table(["status", "runs"], Object.entries(finished).map(([k, v]) => h("tr", {}, h("td", {}, badge(k)), h("td", {}, v)))));
}

async function threadsPanel() {
  const counts = await Promise.all(STATUSES.map((status) => post("/threads/count", { status })));
  const errors = await post("/threads/search", { status: "error", limit: 10, sort_by: "updated_at", sort_order: "desc" });
  return h("div", {},
    h("div", { class: "tiles" }, STATUSES.map((st, i) => tile(`${st} threads`, counts[i], `threads-${st}`))),
    h("h3", {}, "Recent errors"),
    errors.length
      ? table(["thread", "updated", "error"], errors.map((t) => h("tr", {},
        h("td", {}, h("a", { href: `#/threads/${t.thread_id}` }, short(t.thread_id))),
        h("td", {}, when(t.updated_at)),
        h("td", { class: "error" }, errorText(t.error)))))
      : h("p", { class: "muted" }, "No thread in error."));
}

function errorText(error) {
  if (!error) return "";
  return typeof error === "string" ? error : error.message || JSON.stringify(error);
}

export async function overview(ctx) {
  last = null;
  const runsBox = h("div", { id: "overview-runs" });
  const threadsBox = h("div", { id: "overview-threads" });
  const workersBox = h("div", { id: "overview-workers" });
  ctx.root.append(h("h1", {}, "Overview"), section("Runs", runsBox), section("Workers", workersBox),
    section("Threads", threadsBox));
  const info = await get("/info");
  const refresh = async () => {
    try {
      const [a, b, c] = await Promise.all([metricsPanel(info), threadsPanel(), workersPanel(info)]);
      runsBox.replaceChildren(a);
      threadsBox.replaceChildren(b);
      workersBox.replaceChildren(c);
    } catch (err) {
      ctx.fail(err);
    }
  };
  await refresh();
  ctx.every(5000, refresh);
}
