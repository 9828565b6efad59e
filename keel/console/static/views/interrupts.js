// Answering a thread's interrupts: approve/edit/reject forms for HITLRequest-shaped ones
// (langchain's HumanInTheLoopMiddleware: action_requests + review_configs), a button per option
// for `{options: [...]}` ones (examples/agents/approval.py), and a JSON resume box for any.
import { post } from "../api.js";
import { h, json, readJson } from "../ui.js";

export function pendingInterrupts(t) {
  return Object.values(t.interrupts || {}).flat();
}

export function interruptForms(ctx, t, done) {
  const all = pendingInterrupts(t);
  const resume = async (interrupt, value) => {
    const answer = all.length > 1 && interrupt.id ? { [interrupt.id]: value } : value;
    await post(`/threads/${t.thread_id}/runs`, { assistant_id: t.metadata?.assistant_id || t.metadata?.graph_id, command: { resume: answer } });
    await done();
  };
  return h("div", { class: "interrupts" }, all.map((i) => oneInterrupt(ctx, i, (v) => resume(i, v).catch(ctx.fail))));
}

function oneInterrupt(ctx, interrupt, resume) {
  const value = interrupt.value;
  const parts = [h("h3", {}, "Waiting for a human")];
  if (value && Array.isArray(value.action_requests)) {
    parts.push(hitlForm(value, resume), h("details", {}, h("summary", {}, "Request JSON"), json(value)));
  } else {
    parts.push(json(value));
    if (value && Array.isArray(value.options)) parts.push(optionButtons(value, resume));
  }
  parts.push(jsonResume(resume));
  return h("div", { class: "interrupt", dataset: { interrupt: interrupt.id || "" } }, parts);
}

function optionButtons(value, resume) {
  const edited = h("input", { name: "action", value: value.action ?? "", placeholder: "edited action" });
  return h("div", { class: "options" }, value.options.map((option) => h("button", {
    type: "button", class: `option-${option}`,
    onclick: () => resume(option === "edit" ? { type: option, action: edited.value } : { type: option }),
  }, option)), value.options.includes("edit") ? edited : null);
}

function hitlForm(value, resume) {
  const configs = Object.fromEntries((value.review_configs || []).map((c) => [c.action_name, c]));
  const rows = value.action_requests.map((action) => hitlAction(action, configs[action.name]));
  const problem = h("span", { class: "error" });
  const submit = () => {
    const decisions = rows.map((r) => r.decision(problem));
    if (!decisions.includes(undefined)) resume({ decisions });
  };
  return h("div", { class: "hitl" }, rows.map((r) => r.el),
    h("button", { type: "button", class: "submit-decisions", onclick: submit }, "Send decisions"), problem);
}

function hitlAction(action, config) {
  const allowed = config?.allowed_decisions || ["approve", "edit", "reject"];
  const choice = h("select", { name: "decision" }, allowed.map((d) => h("option", { value: d }, d)));
  const args = h("textarea", { name: "args", rows: 3 }, JSON.stringify(action.args ?? {}, null, 2));
  const message = h("input", { name: "message", placeholder: "message (reject: the reason; respond: the tool's answer)" });
  const el = h("div", { class: "hitl-action" },
    h("p", {}, h("b", {}, action.name), action.description ? ` — ${action.description}` : ""),
    h("label", {}, "Decision ", choice), h("label", { class: "stack" }, "Arguments (edit) ", args), message);
  const decision = (problem) => {
    if (choice.value === "edit") {
      const edited = readJson(args, problem);
      return edited === undefined ? undefined : { type: "edit", edited_action: { name: action.name, args: edited } };
    }
    if (choice.value === "respond") return { type: "respond", message: message.value };
    if (choice.value === "reject") return message.value ? { type: "reject", message: message.value } : { type: "reject" };
    return { type: choice.value };
  };
  return { el, decision };
}

function jsonResume(resume) {
  const box = h("textarea", { name: "resume", rows: 2 }, "null");
  const problem = h("span", { class: "error" });
  const send = () => {
    const value = readJson(box, problem);
    if (value !== undefined) resume(value);
  };
  return h("details", { class: "json-resume" }, h("summary", {}, "Resume with JSON"), box,
    h("button", { type: "button", onclick: send }, "Resume"), problem);
}
