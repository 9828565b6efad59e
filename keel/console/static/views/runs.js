// A thread's runs (status, timings) and the live events of its active run, read through the
// run's SSE join endpoint. The thread's own SSE stream (lifecycle and state updates) says when a
// run starts or the state changes; the list is then re-read, and a change in it re-reads the
// thread (state, history). A 10 s re-read stands in while neither stream is open. Each run's
// attempts, and the worker executing it, come from Keel's GET /keel/threads/{id}/runs.
import { AuthError, get, stream } from "../api.js";
import { h, table, badge, when, seconds, short } from "../ui.js";

const ACTIVE = new Set(["pending", "running"]);

export async function runsPanel(ctx, tid, box, onChange) {
  const list = h("div", { id: "run-list" });
  const live = h("div", { id: "live" });
  box.append(list, live);
  let watching = null;
  let seen = null; // the runs' ids and statuses last shown: a change re-reads the thread too
  const info = await get("/info");
  const refresh = async () => {
    const [runs, attempts] = await Promise.all([get(`/threads/${tid}/runs?limit=50`), readAttempts(info, tid)]);
    const now = runs.map((r) => `${r.run_id}:${r.status}`).join();
    if (seen !== null && now !== seen) onChange();
    seen = now;
    list.replaceChildren(renderRuns(runs, attempts));
    const active = runs.find((r) => ACTIVE.has(r.status));
    if (active && watching !== active.run_id) {
      watching = active.run_id;
      watch(ctx, tid, active, live).then(() => {
        watching = null;
        return refresh();
      }).catch(ctx.fail);
    }
  };
  // One re-read at a time; an event arriving meanwhile asks for one more after it.
  let busy = false;
  let again = false;
  const onEvent = async (event) => {
    if (event === "state_update") onChange();
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      do {
        again = false;
        await refresh();
      } while (again);
    } finally {
      busy = false;
    }
  };
  await refresh();
  const thread = { open: false };
  follow(ctx, tid, thread, (event) => onEvent(event).catch(ctx.fail));
  ctx.every(10000, () => { if (!watching && !thread.open) refresh().catch(ctx.fail); });
  return () => onEvent("poke"); // the view's own actions (fork, replay, resume) re-read the runs
}

// The thread's stream, reopened 2 s after it ends (an overflow, a server restart) until the
// view closes.
async function follow(ctx, tid, thread, onEvent) {
  const path = `/threads/${tid}/stream?stream_modes=lifecycle&stream_modes=state_update`;
  while (!ctx.signal.aborted) {
    try {
      thread.open = true;
      await stream(path, onEvent, ctx.signal);
    } catch (err) {
      if (err instanceof AuthError) return ctx.fail(err);
    } finally {
      thread.open = false;
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// Attempts and the worker of a running run (GET /keel/threads/{id}/runs), by run id.
async function readAttempts(info, tid) {
  if (!info.flags?.workers) return new Map();
  const rows = await get(`/keel/threads/${tid}/runs?limit=50`);
  return new Map(rows.map((r) => [r.run_id, r]));
}

function renderRuns(runs, attempts) {
  if (!runs.length) return h("p", { class: "muted" }, "No runs.");
  return table(["run", "status", "assistant", "created", "updated", "duration", "attempts", "worker"], runs.map((r) => {
    const a = attempts.get(r.run_id);
    return h("tr", { dataset: { run: r.run_id, status: r.status } },
      h("td", {}, h("code", { title: r.run_id }, short(r.run_id))),
      h("td", {}, badge(r.status)),
      h("td", {}, h("code", {}, short(r.assistant_id))),
      h("td", {}, when(r.created_at)),
      h("td", {}, when(r.updated_at)),
      h("td", {}, ACTIVE.has(r.status) ? "…" : seconds(r.created_at, r.updated_at)),
      h("td", { class: "attempts" }, a ? a.attempt : ""),
      h("td", { class: "worker" }, a?.worker_id ? h("code", { title: a.lease_until ? `lease until ${when(a.lease_until)}` : null }, a.worker_id) : ""));
  }));
}

async function watch(ctx, tid, run, live) {
  const events = h("ol", { id: "live-events", class: "events" });
  const state = h("span", { id: "live-state" }, "streaming");
  live.replaceChildren(h("h3", {}, "Live: run ", h("code", {}, short(run.run_id)), " ", state), events);
  await stream(`/threads/${tid}/runs/${run.run_id}/stream`, (event, data) => {
    const body = typeof data === "string" ? data : JSON.stringify(data);
    events.append(h("li", { dataset: { event } }, h("b", {}, event), " ", body.length > 400 ? `${body.slice(0, 400)}…` : body));
    while (events.children.length > 200) events.firstChild.remove();
  }, ctx.signal);
  state.textContent = "ended";
}
