// The node list: server-side label filter (label=k=v params), client-side name filter,
// a login picker from /me's logins, and a Connect button per node.

import { api } from "./api.js";
import { h, say, labelChips, parseLabels, formatTime, relativeTime } from "./dom.js";

const ONLINE_SECONDS = 60;
const PAGE = 200;
let remembered = { name: "", labels: "", login: "" };

export function nodesPage({ me, openTerminal }) {
  let nodes = [];
  let nextToken = "";
  let labelTerms = [];
  let generation = 0;

  const error = h("p", { id: "nodes-error", class: "error", role: "alert", hidden: true });
  const nameFilter = h("input", {
    id: "node-filter-name",
    type: "search",
    placeholder: "name contains…",
    value: remembered.name,
    "data-autofocus": true,
    spellcheck: "false",
  });
  const labelFilter = h("input", {
    id: "node-filter-labels",
    type: "search",
    placeholder: "env=prod team=db",
    value: remembered.labels,
    spellcheck: "false",
  });
  const login = h(
    "select",
    { id: "node-login", disabled: me.logins.length === 0 },
    me.logins.length
      ? me.logins.map((l) => h("option", { value: l, selected: l === remembered.login }, l))
      : h("option", { value: "" }, "no logins"),
  );
  const count = h("span", { id: "nodes-count", class: "muted", role: "status" });
  const tbody = h("tbody", { id: "node-rows" });
  const empty = h("p", { id: "nodes-empty", class: "muted", hidden: true });
  const more = h(
    "button",
    { type: "button", id: "nodes-more", class: "secondary", hidden: true, onclick: () => load(true) },
    "Load more",
  );

  const form = h(
    "form",
    {
      id: "node-filters",
      class: "toolbar",
      role: "search",
      onsubmit: (ev) => {
        ev.preventDefault();
        applyLabels();
      },
    },
    h(
      "label",
      { class: "field" },
      h("span", {}, "Name"),
      nameFilter,
    ),
    h("label", { class: "field" }, h("span", {}, "Labels"), labelFilter),
    h("label", { class: "field" }, h("span", {}, "Login as"), login),
    h("button", { type: "submit", id: "node-search" }, "Filter"),
    h(
      "button",
      { type: "button", id: "node-refresh", class: "secondary", onclick: () => load(false) },
      "Refresh",
    ),
  );
  nameFilter.addEventListener("input", () => {
    remembered.name = nameFilter.value;
    render();
  });
  labelFilter.addEventListener("input", () => (remembered.labels = labelFilter.value));
  login.addEventListener("change", () => (remembered.login = login.value));

  const table = h(
    "table",
    { id: "node-table", class: "data" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Name"),
        h("th", { scope: "col" }, "Address"),
        h("th", { scope: "col" }, "Labels"),
        h("th", { scope: "col" }, "State"),
        h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")),
      ),
    ),
    tbody,
  );

  function applyLabels() {
    say(error, "");
    try {
      labelTerms = parseLabels(labelFilter.value);
    } catch (err) {
      say(error, err.message);
      return;
    }
    load(false);
  }

  async function load(append) {
    const mine = ++generation;
    say(error, "");
    const params = labelTerms.map(([k, v]) => ["label", `${k}=${v}`]);
    params.push(["limit", String(PAGE)]);
    if (append && nextToken) params.push(["page_token", nextToken]);
    try {
      const res = await api("GET", "/nodes", { params });
      if (mine !== generation) return;
      const got = Array.isArray(res.nodes) ? res.nodes : [];
      nodes = append ? nodes.concat(got) : got;
      nextToken = res.next_page_token || "";
    } catch (err) {
      if (mine !== generation) return;
      say(error, err.message);
      if (!append) nodes = [];
      nextToken = "";
    }
    render();
  }

  function render() {
    const needle = nameFilter.value.trim().toLowerCase();
    const shown = needle ? nodes.filter((n) => String(n.name).toLowerCase().includes(needle)) : nodes;
    const now = Date.now() / 1000;
    tbody.replaceChildren(
      ...shown.map((n) => {
        const online = now - Number(n.last_seen) < ONLINE_SECONDS;
        const connect = h(
          "button",
          {
            type: "button",
            class: "connect-button",
            dataset: { node: n.name },
            disabled: me.logins.length === 0,
            "aria-label": `Connect to ${n.name}`,
            onclick: () => {
              remembered.login = login.value;
              openTerminal(n.name, login.value);
            },
          },
          "Connect",
        );
        return h(
          "tr",
          { class: "node-row", dataset: { node: n.name, state: online ? "online" : "offline" } },
          h("td", { class: "node-name" }, n.name),
          h("td", { class: "node-addr mono" }, n.addr || ""),
          h("td", { class: "node-labels" }, labelChips(n.labels)),
          h(
            "td",
            { class: "node-state" },
            h(
              "span",
              {
                class: `state ${online ? "online" : "offline"}`,
                title: n.last_seen ? `last seen ${formatTime(n.last_seen)} (${relativeTime(n.last_seen)})` : "",
              },
              online ? "online" : "offline",
            ),
          ),
          h("td", { class: "actions" }, connect),
        );
      }),
    );
    table.hidden = shown.length === 0;
    const filtered = needle || labelTerms.length;
    say(
      empty,
      shown.length
        ? ""
        : nodes.length || filtered
          ? "No nodes match the filter."
          : "No nodes have joined yet. An admin can make a join token under Admin → Join tokens.",
    );
    count.textContent =
      shown.length === nodes.length ? `${nodes.length} nodes` : `${shown.length} of ${nodes.length} nodes`;
    more.hidden = !nextToken;
  }

  try {
    labelTerms = parseLabels(labelFilter.value);
  } catch {
    labelTerms = [];
  }
  load(false);

  const noLogins =
    me.logins.length === 0
      ? h(
          "p",
          { id: "nodes-no-logins", class: "notice" },
          "Your roles allow no logins, so you cannot connect to nodes.",
        )
      : null;

  const el = h(
    "section",
    { class: "page", id: "page-nodes" },
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Nodes"), count),
    form,
    noLogins,
    error,
    h("div", { class: "table-wrap" }, table),
    empty,
    more,
  );
  return { el, cleanup: () => (generation += 1) };
}
