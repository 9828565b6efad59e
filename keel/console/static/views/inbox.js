// Interrupts inbox: every thread waiting for a human, newest change first, with its forms.
import { post } from "../api.js";
import { h, section, when, short } from "../ui.js";
import { interruptForms } from "./interrupts.js";

export async function inbox(ctx) {
  const list = h("div", { id: "inbox" });
  // Re-read on demand: a timer would replace a form someone is filling in.
  const again = h("button", { type: "button", id: "inbox-refresh", onclick: () => refresh().catch(ctx.fail) }, "Refresh");
  ctx.root.append(h("h1", {}, "Interrupts inbox ", again), list);
  const refresh = async () => {
    const waiting = await post("/threads/search", { status: "interrupted", limit: 50, sort_by: "updated_at", sort_order: "desc" });
    if (!waiting.length) {
      list.replaceChildren(h("p", { class: "muted", id: "inbox-empty" }, "Nothing is waiting for a human."));
      return;
    }
    list.replaceChildren(...waiting.map((t) => section(
      h("span", {}, h("a", { href: `#/threads/${t.thread_id}` }, short(t.thread_id)), ` · ${t.metadata?.graph_id || ""} · ${when(t.updated_at)}`),
      interruptForms(ctx, t, refresh))));
  };
  await refresh();
}
