// The audit log: newest first (order=desc), filters by type/user/node/time, "Load more"
// through next_page_token, and a row's full JSON shown as text when it is clicked.

import { api } from "./api.js";
import { h, say, formatTime, parseList } from "./dom.js";

const PAGE = 50;

function toEpoch(value) {
  if (!value) return "";
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? "" : String(Math.floor(ms / 1000));
}

// The proxy gives an event's fields as an object ("fields"); a "fields_json" string (the
// RPC's form) is parsed too, so either shape shows as one pretty-printed object.
function fieldsOf(event) {
  if (event.fields && typeof event.fields === "object") return event.fields;
  if (typeof event.fields_json === "string") {
    try {
      return JSON.parse(event.fields_json);
    } catch {
      return event.fields_json;
    }
  }
  return undefined;
}

function fullEvent(event) {
  const out = { ...event };
  const fields = fieldsOf(event);
  delete out.fields_json;
  if (fields !== undefined) out.fields = fields;
  return out;
}

function nodeOf(event) {
  const f = fieldsOf(event);
  const v = f && typeof f === "object" ? f.node || f.server_hostname || f.node_name : "";
  return typeof v === "string" ? v : "";
}

export function auditPage() {
  let events = [];
  let nextToken = "";
  let generation = 0;
  let selected = null;

  const field = (label, input) => h("label", { class: "field" }, h("span", {}, label), input);
  const type = h("input", { id: "audit-type", placeholder: "user.login session.start", spellcheck: "false" });
  const user = h("input", { id: "audit-user", spellcheck: "false" });
  const node = h("input", { id: "audit-node", spellcheck: "false" });
  const since = h("input", { id: "audit-since", type: "datetime-local", step: "1" });
  const until = h("input", { id: "audit-until", type: "datetime-local", step: "1" });
  const error = h("p", { id: "audit-error", class: "error", role: "alert", hidden: true });
  const tbody = h("tbody", { id: "audit-rows" });
  const empty = h("p", { id: "audit-empty", class: "muted", hidden: true });
  const detail = h("pre", { id: "audit-detail", class: "json", tabindex: "0" });
  const detailTitle = h("h2", { id: "audit-detail-title" }, "Event");
  const detailBox = h(
    "aside",
    { id: "audit-detail-box", class: "card detail", hidden: true, "aria-labelledby": "audit-detail-title" },
    h(
      "div",
      { class: "page-head" },
      detailTitle,
      h(
        "button",
        {
          type: "button",
          id: "audit-detail-close",
          class: "secondary",
          onclick: () => select(null),
        },
        "Close",
      ),
    ),
    detail,
  );
  const more = h(
    "button",
    { type: "button", id: "audit-more", class: "secondary", hidden: true, onclick: () => load(true) },
    "Load more",
  );

  const form = h(
    "form",
    {
      id: "audit-filters",
      class: "toolbar",
      role: "search",
      onsubmit: (ev) => {
        ev.preventDefault();
        load(false);
      },
    },
    field("Type", type),
    field("User", user),
    field("Node", node),
    field("Since", since),
    field("Until", until),
    h("button", { type: "submit", id: "audit-search" }, "Search"),
    h(
      "button",
      {
        type: "button",
        id: "audit-reset",
        class: "secondary",
        onclick: () => {
          for (const input of [type, user, node, since, until]) input.value = "";
          load(false);
        },
      },
      "Reset",
    ),
  );

  function select(event) {
    selected = event;
    for (const row of tbody.children) row.classList.toggle("selected", row._event === event);
    if (!event) {
      detailBox.hidden = true;
      return;
    }
    detailTitle.textContent = `${event.type} · ${formatTime(event.time)}`;
    detail.textContent = JSON.stringify(fullEvent(event), null, 2);
    detailBox.hidden = false;
  }

  async function load(append) {
    const mine = ++generation;
    say(error, "");
    const params = [["order", "desc"], ["limit", String(PAGE)]];
    for (const t of parseList(type.value)) params.push(["type", t]);
    params.push(["user", user.value.trim()], ["node", node.value.trim()]);
    params.push(["since", toEpoch(since.value)], ["until", toEpoch(until.value)]);
    if (append && nextToken) params.push(["page_token", nextToken]);
    try {
      const res = await api("GET", "/audit/events", { params });
      if (mine !== generation) return;
      const got = Array.isArray(res.events) ? res.events : [];
      events = append ? events.concat(got) : got;
      nextToken = res.next_page_token || "";
    } catch (err) {
      if (mine !== generation) return;
      say(error, err.message);
      if (!append) events = [];
      nextToken = "";
    }
    if (!append) select(null);
    render();
  }

  function render() {
    tbody.replaceChildren(
      ...events.map((ev) => {
        const row = h(
          "tr",
          {
            class: `audit-row${ev.success === false ? " failed" : ""}`,
            tabindex: "0",
            dataset: { eventId: ev.id, type: ev.type },
            onclick: () => select(ev),
            onkeydown: (e) => {
              if (e.key === "Enter" || e.key === " ") {
                e.preventDefault();
                select(ev);
              }
            },
          },
          h("td", { class: "audit-time mono" }, formatTime(ev.time)),
          h("td", { class: "audit-type" }, ev.type),
          h("td", { class: "audit-code mono" }, ev.code),
          h("td", { class: "audit-user" }, ev.user),
          h("td", { class: "audit-node" }, nodeOf(ev)),
          h(
            "td",
            { class: "audit-success" },
            h("span", { class: `state ${ev.success === false ? "failed" : "online"}` }, ev.success === false ? "failed" : "ok"),
          ),
        );
        row._event = ev;
        if (ev === selected) row.classList.add("selected");
        return row;
      }),
    );
    say(empty, events.length ? "" : "No events match.");
    more.hidden = !nextToken;
  }

  const table = h(
    "table",
    { id: "audit-table", class: "data clickable" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Time", "Type", "Code", "User", "Node", "Result"].map((t) => h("th", { scope: "col" }, t)),
      ),
    ),
    tbody,
  );

  load(false);
  const el = h(
    "section",
    { class: "page", id: "page-audit" },
    h("h1", { tabindex: "-1" }, "Audit log"),
    form,
    error,
    h(
      "div",
      { class: "split" },
      h("div", { class: "split-main" }, h("div", { class: "table-wrap" }, table), empty, more),
      detailBox,
    ),
  );
  return { el, cleanup: () => (generation += 1) };
}
