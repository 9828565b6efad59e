// The worker processes (GET /keel/workers): each with its heartbeat and the leases its runs
// hold, as the caller may see them (other organisations' runs are never listed).
import { get } from "../api.js";
import { h, table, badge, when, short } from "../ui.js";

export async function workersPanel(info) {
  if (!info.flags?.workers) return h("p", { class: "muted", id: "workers-off" }, "This server does not list its workers (http.disable_runs).");
  const workers = await get("/keel/workers");
  if (!workers.length) return h("p", { class: "muted", id: "workers-none" }, "No worker process is registered.");
  return table(["worker", "kind", "host", "pid", "state", "heartbeat", "slots", "leases"], workers.map(workerRows), { id: "workers" });
}

function workerRows(w) {
  const head = h("tr", { dataset: { worker: w.worker_id, alive: String(w.alive) } },
    h("td", {}, h("code", { title: w.worker_id }, w.worker_id)),
    h("td", {}, w.kind),
    h("td", {}, w.host),
    h("td", {}, w.pid),
    h("td", {}, h("span", { class: `badge ${w.alive ? "status-success" : "status-error"}` }, w.alive ? "alive" : "not alive")),
    h("td", { title: when(w.seen_at) }, `${w.seen_seconds_ago.toFixed(1)} s ago`),
    h("td", {}, w.slots),
    h("td", { class: "lease-count" }, w.leases.length));
  return [head, ...w.leases.map((l) => h("tr", { class: "lease", dataset: { lease: l.run_id } },
    h("td", { colspan: 3 }, "↳ run ", h("code", { title: l.run_id }, short(l.run_id)), " on thread ",
      h("a", { href: `#/threads/${l.thread_id}` }, short(l.thread_id))),
    h("td", {}, badge("running")),
    h("td", { class: "attempt" }, `attempt ${l.attempt}`),
    h("td", { colspan: 3 }, "lease until ", when(l.lease_until))))];
}
