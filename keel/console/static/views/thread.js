// One thread: messages as a chat, state JSON, history with fork/replay, its runs (runs.js) and
// a live view of the running one.
import { get, post } from "../api.js";
import { h, json, section, table, badge, when, short, readJson } from "../ui.js";
import { runsPanel } from "./runs.js";
import { interruptForms } from "./interrupts.js";

export async function thread(ctx, tid) {
  const head = h("div", { id: "thread-head" });
  const chat = h("div", { id: "chat", class: "chat" });
  const stateBox = h("div", { id: "state" });
  const historyBox = h("div", { id: "history" });
  const runsBox = h("div", { id: "runs" });
  const pending = h("div", { id: "thread-interrupts" });
  ctx.root.append(h("h1", {}, "Thread ", h("code", {}, tid)), head, pending,
    section("Messages", chat), section("Runs", runsBox),
    section("History", historyBox), h("details", {}, h("summary", {}, "State JSON"), stateBox));
  let pokeRuns = async () => {};
  const refresh = async () => {
    const [t, state, history] = await Promise.all([
      get(`/threads/${tid}`), get(`/threads/${tid}/state`), post(`/threads/${tid}/history`, { limit: 50 }),
    ]);
    head.replaceChildren(renderHead(t));
    pending.replaceChildren(...(t.status === "interrupted" ? [interruptForms(ctx, t, reread)] : []));
    chat.replaceChildren(...renderMessages(state.values?.messages));
    stateBox.replaceChildren(json(state));
    historyBox.replaceChildren(renderHistory(ctx, t, history, reread));
  };
  // After the view's own actions: the thread and its runs both re-read.
  const reread = async () => {
    await refresh();
    await pokeRuns();
  };
  await refresh();
  pokeRuns = await runsPanel(ctx, tid, runsBox, () => refresh().catch(ctx.fail));
}

function renderHead(t) {
  return h("p", {}, badge(t.status), " graph ", h("code", {}, t.metadata?.graph_id || "?"),
    " · created ", when(t.created_at), " · updated ", when(t.updated_at), " · ",
    h("a", { href: `#/threads/${t.thread_id}/workspace` }, "workspace files"));
}

function text(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((part) => (typeof part === "string" ? part : part.text ?? JSON.stringify(part))).join("\n");
  }
  return JSON.stringify(content);
}

function renderMessages(messages) {
  if (!Array.isArray(messages) || !messages.length) return [h("p", { class: "muted" }, "No messages in this thread's state.")];
  return messages.map((m) => {
    const kind = m.type || m.role || "message";
    const calls = (m.tool_calls || []).map((c) => h("div", { class: "toolcall" }, `→ ${c.name}(${JSON.stringify(c.args)})`));
    return h("div", { class: `msg msg-${kind}` },
      h("span", { class: "who" }, m.name ? `${kind} · ${m.name}` : kind),
      h("div", { class: "body" }, text(m.content)), calls);
  });
}

const cid = (s) => s.checkpoint?.checkpoint_id;

// The checkpoints as a tree, oldest first: a checkpoint's first child continues its line, each
// later child (a fork or a replay) starts a branch one level in. Checkpoint ids sort by time.
export function branchTree(history) {
  const ids = new Set(history.map(cid));
  const children = new Map();
  const roots = [];
  for (const s of history) {
    const parent = s.parent_checkpoint?.checkpoint_id;
    if (parent && ids.has(parent)) children.set(parent, [...(children.get(parent) || []), s]);
    else roots.push(s);
  }
  const older = (a, b) => (cid(a) < cid(b) ? -1 : 1);
  const out = [];
  const visit = (s, depth, fork) => {
    out.push({ s, depth, fork, branches: (children.get(cid(s)) || []).length });
    (children.get(cid(s)) || []).sort(older).forEach((c, i) => visit(c, depth + (i ? 1 : 0), i > 0));
  };
  roots.sort(older).forEach((r) => visit(r, 0, false));
  return out;
}

function renderHistory(ctx, t, history, refresh) {
  const rows = branchTree(history).map(({ s, depth, fork, branches }) => {
    const cell = h("td", {});
    const open = () => cell.replaceChildren(forkForm(ctx, t, s, refresh));
    return h("tr", { dataset: { depth } },
      h("td", { style: `padding-left: ${0.5 + depth * 1.5}rem` }, fork ? "⑂ " : "", s.metadata?.step ?? ""),
      h("td", {}, s.metadata?.source ?? ""),
      h("td", {}, h("code", { title: cid(s) }, short(cid(s))), branches > 1 ? h("span", { class: "badge" }, `${branches} branches`) : null),
      h("td", {}, (s.next || []).join(", ")), h("td", {}, when(s.created_at)),
      h("td", {}, h("button", { type: "button", class: "fork", onclick: open }, "Fork from here")), cell);
  });
  return history.length
    ? table(["step", "source", "checkpoint", "next", "created", "", ""], rows)
    : h("p", { class: "muted" }, "No checkpoints yet.");
}

// Fork: a state update at this checkpoint (a new branch); replay: a run from this checkpoint.
function forkForm(ctx, t, s, refresh) {
  const id = cid(s);
  const values = h("textarea", { rows: 3, name: "values" }, "{}");
  const asNode = h("input", { name: "as_node", placeholder: "as node (optional)" });
  const problem = h("span", { class: "error" });
  const act = (fn) => async () => {
    try {
      await fn();
      await refresh();
    } catch (err) {
      problem.textContent = err.message;
      ctx.fail(err);
    }
  };
  const fork = act(async () => {
    const v = readJson(values, problem);
    if (v === undefined) return;
    await post(`/threads/${t.thread_id}/state`, { values: v, checkpoint_id: id, ...(asNode.value ? { as_node: asNode.value } : {}) });
  });
  const replay = act(() => post(`/threads/${t.thread_id}/runs`, { assistant_id: t.metadata?.assistant_id || t.metadata?.graph_id, input: null, checkpoint_id: id }));
  return h("div", { class: "fork-form" }, values, asNode,
    h("button", { type: "button", onclick: fork }, "Fork with these values"),
    h("button", { type: "button", onclick: replay }, "Replay from here"), problem);
}
