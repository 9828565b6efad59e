// Threads: search by status and metadata, newest first.
import { post } from "../api.js";
import { h, table, badge, when, short, readJson } from "../ui.js";

const PAGE = 50;

export async function threads(ctx) {
  const status = h("select", { name: "status" }, h("option", { value: "" }, "any status"),
    ["idle", "busy", "interrupted", "error"].map((s) => h("option", { value: s }, s)));
  const metadata = h("textarea", { name: "metadata", rows: 2, placeholder: '{"graph_id": "chat"}' }, "{}");
  const problem = h("span", { class: "error" });
  const results = h("div", { id: "thread-results" });
  let offset = 0;
  const search = async () => {
    const meta = readJson(metadata, problem);
    if (meta === undefined) return;
    const body = { metadata: meta, limit: PAGE, offset, sort_by: "created_at", sort_order: "desc" };
    if (status.value) body.status = status.value;
    try {
      results.replaceChildren(render(await post("/threads/search", body), offset, (to) => { offset = to; search(); }));
    } catch (err) {
      ctx.fail(err);
    }
  };
  const form = h("form", { class: "filters" },
    h("label", {}, "Status ", status), h("label", {}, "Metadata ", metadata),
    h("button", { type: "submit" }, "Search"), problem);
  form.addEventListener("submit", (e) => { e.preventDefault(); offset = 0; search(); });
  ctx.root.append(h("h1", {}, "Threads"), form, results);
  await search();
}

function render(list, offset, go) {
  const rows = list.map((t) => h("tr", {},
    h("td", {}, h("a", { href: `#/threads/${t.thread_id}` }, short(t.thread_id))),
    h("td", {}, badge(t.status)),
    h("td", {}, t.metadata?.graph_id || ""),
    h("td", {}, when(t.created_at)),
    h("td", {}, when(t.updated_at))));
  return h("div", {},
    list.length ? table(["thread", "status", "graph", "created", "updated"], rows) : h("p", { class: "muted" }, "No threads."),
    h("div", { class: "pager" },
      offset > 0 ? h("button", { type: "button", onclick: () => go(Math.max(0, offset - PAGE)) }, "Newer") : null,
      list.length === PAGE ? h("button", { type: "button", onclick: () => go(offset + PAGE) }, "Older") : null));
}
