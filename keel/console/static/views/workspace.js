// A thread's sandbox workspace (GET /threads/{id}/workspace): directories, files to download.
import { blob, get } from "../api.js";
import { h, table, when } from "../ui.js";

export async function workspace(ctx, tid) {
  const box = h("div", { id: "workspace" });
  ctx.root.append(h("h1", {}, "Workspace of ", h("a", { href: `#/threads/${tid}` }, h("code", {}, tid))), box);
  const open = async (path) => {
    const listing = await get(`/threads/${tid}/workspace${path ? `?path=${encodeURIComponent(path)}` : ""}`);
    const up = path ? path.split("/").slice(0, -1).join("/") : null;
    box.replaceChildren(h("p", {}, h("code", {}, `/${listing.path || path}`), up !== null ? h("button", { type: "button", onclick: () => open(up).catch(ctx.fail) }, "Up") : null),
      listing.entries.length ? table(["name", "type", "size", "modified"], listing.entries.map((e) => h("tr", {},
        h("td", {}, h("a", { href: `#/threads/${tid}/workspace`, onclick: (ev) => { ev.preventDefault(); (e.type === "dir" || e.type === "directory" ? open(e.path) : download(tid, e)).catch(ctx.fail); } }, e.name)),
        h("td", {}, e.type), h("td", {}, e.size ?? ""), h("td", {}, when(e.modified_at))))) : h("p", { class: "muted" }, "Empty."),
      listing.truncated ? h("p", { class: "muted" }, "Listing truncated.") : null);
  };
  const info = await get("/info");
  if (!info.flags?.workspaces) {
    box.replaceChildren(h("p", { class: "muted" }, "No sandbox configured on this server: threads have no workspace."));
    return;
  }
  await open("");
}

async function download(tid, entry) {
  const data = await blob(`/threads/${tid}/workspace/${entry.path.split("/").map(encodeURIComponent).join("/")}`);
  const url = URL.createObjectURL(data);
  const link = h("a", { href: url, download: entry.name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
