// Assistants: the list, one's versions, and a line diff of two versions' settings.
import { post } from "../api.js";
import { h, table, when, short } from "../ui.js";

export async function assistants(ctx) {
  const detail = h("div", { id: "assistant" });
  const list = await post("/assistants/search", { limit: 100 });
  ctx.root.append(h("h1", {}, "Assistants"),
    table(["assistant", "name", "graph", "version", "updated"], list.map((a) => h("tr", {},
      h("td", {}, h("a", { href: "#/assistants", onclick: (e) => { e.preventDefault(); versions(ctx, a, detail); } }, short(a.assistant_id))),
      h("td", {}, a.name), h("td", {}, a.graph_id), h("td", {}, a.version), h("td", {}, when(a.updated_at))))),
    detail);
}

async function versions(ctx, a, box) {
  try {
    const all = await post(`/assistants/${a.assistant_id}/versions`, { limit: 100 });
    const pick = (name, i) => h("select", { name }, all.map((v, j) => h("option", { value: j, selected: i === j }, `v${v.version} · ${when(v.created_at)}`)));
    const left = pick("left", Math.min(1, all.length - 1));
    const right = pick("right", 0);
    const out = h("div", { id: "diff" });
    const show = () => out.replaceChildren(diff(settings(all[left.value]), settings(all[right.value])));
    left.addEventListener("change", show);
    right.addEventListener("change", show);
    box.replaceChildren(h("h2", {}, `${a.name}: ${all.length} version(s)`), h("p", {}, "Compare ", left, " with ", right), out);
    show();
  } catch (err) {
    ctx.fail(err);
  }
}

function settings(v) {
  const { config, context, metadata, name, description, graph_id } = v;
  return JSON.stringify({ name, description, graph_id, config, context, metadata }, null, 2).split("\n");
}

// A longest-common-subsequence line diff: unchanged lines plain, removed "-", added "+".
export function diff(a, b) {
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const lines = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { lines.push(h("div", {}, `  ${a[i]}`)); i++; j++; }
    else if (i < n && (j === m || lcs[i + 1][j] >= lcs[i][j + 1])) { lines.push(h("div", { class: "del" }, `- ${a[i]}`)); i++; }
    else { lines.push(h("div", { class: "add" }, `+ ${b[j]}`)); j++; }
  }
  return h("pre", { class: "diff" }, lines);
}
