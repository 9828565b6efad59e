// Crons: schedule, next fire, enable/disable (PATCH /runs/crons/{id} {"enabled": ...}).
import { patch, post } from "../api.js";
import { h, table, when, short } from "../ui.js";

export async function crons(ctx) {
  const box = h("div", { id: "crons" });
  ctx.root.append(h("h1", {}, "Crons"), box);
  const refresh = async () => {
    const list = await post("/runs/crons/search", { limit: 100, sort_by: "next_run_date", sort_order: "asc" });
    if (!list.length) return box.replaceChildren(h("p", { class: "muted" }, "No crons."));
    box.replaceChildren(table(["cron", "schedule", "timezone", "thread", "next run", "enabled", ""], list.map((c) => h("tr", { dataset: { cron: c.cron_id } },
      h("td", {}, h("code", { title: c.cron_id }, short(c.cron_id))), h("td", {}, h("code", {}, c.schedule)),
      h("td", {}, c.timezone || "UTC"),
      h("td", {}, c.thread_id ? h("a", { href: `#/threads/${c.thread_id}` }, short(c.thread_id)) : "stateless"),
      h("td", {}, when(c.next_run_date)), h("td", {}, c.enabled === false ? "no" : "yes"),
      h("td", {}, h("button", { type: "button", class: "toggle", onclick: () => toggle(c) }, c.enabled === false ? "Enable" : "Disable"))))));
  };
  const toggle = (c) => patch(`/runs/crons/${c.cron_id}`, { enabled: c.enabled === false }).then(refresh).catch(ctx.fail);
  await refresh();
  ctx.every(10000, () => refresh().catch(ctx.fail));
}
