// Store browser: namespaces, the items of one, and semantic search with scores.
import { post } from "../api.js";
import { h, json, table, when } from "../ui.js";

export async function store(ctx) {
  const spaces = h("ul", { id: "namespaces", class: "namespaces" });
  const items = h("div", { id: "items" });
  const prefix = h("input", { name: "namespace", placeholder: "namespace, dot.separated" });
  const query = h("input", { name: "query", placeholder: "semantic query (optional)" });
  const form = h("form", { class: "filters" }, h("label", {}, "Namespace ", prefix),
    h("label", {}, "Query ", query), h("button", { type: "submit" }, "Search"));
  const search = async () => {
    const body = { namespace_prefix: prefix.value ? prefix.value.split(".") : [], limit: 50 };
    if (query.value) body.query = query.value;
    try {
      items.replaceChildren(renderItems((await post("/store/items/search", body)).items, Boolean(query.value)));
    } catch (err) {
      ctx.fail(err);
    }
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); search(); });
  ctx.root.append(h("h1", {}, "Store"), h("div", { class: "split" },
    h("aside", {}, h("h2", {}, "Namespaces"), spaces), h("div", {}, form, items)));
  const { namespaces } = await post("/store/namespaces", { limit: 100 });
  spaces.replaceChildren(...namespaces.map((ns) => h("li", {}, h("a", {
    href: "#/store", onclick: (e) => { e.preventDefault(); prefix.value = ns.join("."); search(); },
  }, ns.join(".")))));
  if (!namespaces.length) spaces.append(h("li", { class: "muted" }, "none"));
  await search();
}

function renderItems(list, scored) {
  if (!list.length) return h("p", { class: "muted" }, "No items.");
  const head = ["namespace", "key", ...(scored ? ["score"] : []), "value", "updated"];
  return table(head, list.map((item) => h("tr", {},
    h("td", {}, item.namespace.join(".")), h("td", {}, h("code", {}, item.key)),
    scored ? h("td", { class: "score" }, item.score == null ? "–" : Number(item.score).toFixed(3)) : null,
    h("td", {}, json(item.value)), h("td", {}, when(item.updated_at)))));
}
