// Admin pages: users (add / reset -> invite URL, remove), join tokens (add -> join command,
// remove) and roles (list, edit YAML, save with the server's 400 message beside the editor).

import { api, seg } from "./api.js";
import { h, say, formatTime, relativeTime, labelChips, parseLabels, parseList, copyBox, confirmAction } from "./dom.js";

function chips(items) {
  return h(
    "span",
    { class: "labels" },
    (items || []).map((x) => h("span", { class: "label" }, x)),
  );
}

function head(...cells) {
  return h("thead", {}, h("tr", {}, cells.map((c) => h("th", { scope: "col" }, c))));
}

function field(label, input, hint) {
  return h(
    "label",
    { class: "field" },
    h("span", {}, label),
    input,
    hint ? h("small", { class: "muted" }, hint) : null,
  );
}

// ---- users --------------------------------------------------------------------------

export function usersPage() {
  let alive = true;
  const error = h("p", { id: "users-error", class: "error", role: "alert", hidden: true });
  const tbody = h("tbody", { id: "user-rows" });
  const result = h("div", { id: "invite-result", class: "card result", hidden: true });

  function showInvite(title, res) {
    result.replaceChildren(
      h("h2", {}, title),
      h("p", {}, `Send this link to the user. It works once and expires ${formatTime(res.invite_expires)} (${relativeTime(res.invite_expires)}).`),
      copyBox("invite-url", res.invite_url, "invite-copy"),
    );
    result.hidden = false;
    result.querySelector("#invite-url").focus();
  }

  async function load() {
    try {
      const res = await api("GET", "/users");
      if (!alive) return;
      render(Array.isArray(res.users) ? res.users : []);
    } catch (err) {
      if (alive) say(error, err.message);
    }
  }

  function render(users) {
    tbody.replaceChildren(
      ...users.map((u) =>
        h(
          "tr",
          { class: "user-row", dataset: { user: u.name } },
          h("td", { class: "user-name" }, u.name),
          h("td", { class: "user-roles" }, chips(u.roles)),
          h("td", { class: "user-logins" }, chips(u.logins)),
          h("td", { class: "user-password" }, u.has_password ? "set" : "invited"),
          h("td", { class: "user-created mono" }, formatTime(u.created)),
          h(
            "td",
            { class: "actions" },
            h(
              "button",
              {
                type: "button",
                class: "user-reset secondary",
                dataset: { user: u.name },
                onclick: async () => {
                  say(error, "");
                  try {
                    const res = await api("POST", `/users/${seg(u.name)}/reset`);
                    showInvite(`Reset link for ${u.name}`, res);
                    load();
                  } catch (err) {
                    say(error, err.message);
                  }
                },
              },
              "Reset",
            ),
            h(
              "button",
              {
                type: "button",
                class: "user-remove danger",
                dataset: { user: u.name },
                onclick: async () => {
                  say(error, "");
                  if (!(await confirmAction(`Remove user ${u.name}? Their sessions end.`))) return;
                  try {
                    await api("DELETE", `/users/${seg(u.name)}`);
                    result.hidden = true;
                    load();
                  } catch (err) {
                    say(error, err.message);
                  }
                },
              },
              "Remove",
            ),
          ),
        ),
      ),
    );
  }

  const name = h("input", { id: "user-add-name", required: true, spellcheck: "false", autocapitalize: "none" });
  const roles = h("input", { id: "user-add-roles", placeholder: "access", spellcheck: "false" });
  const logins = h("input", { id: "user-add-logins", placeholder: "alice, ubuntu", spellcheck: "false" });
  const addError = h("p", { id: "user-add-error", class: "error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", id: "user-add-submit" }, "Add user");
  const form = h(
    "form",
    {
      id: "user-add-form",
      class: "card toolbar",
      onsubmit: async (ev) => {
        ev.preventDefault();
        say(addError, "");
        submit.disabled = true;
        try {
          const res = await api("POST", "/users", {
            body: { name: name.value.trim(), roles: parseList(roles.value), logins: parseList(logins.value) },
          });
          showInvite(`Invite for ${name.value.trim()}`, res);
          name.value = roles.value = logins.value = "";
          load();
        } catch (err) {
          say(addError, err.message);
        } finally {
          submit.disabled = false;
        }
      },
    },
    field("Name", name),
    field("Roles", roles, "comma separated"),
    field("Logins", logins, "comma separated"),
    submit,
    addError,
  );

  load();
  const el = h(
    "section",
    { class: "page", id: "page-users" },
    h("h1", { tabindex: "-1" }, "Users"),
    form,
    result,
    error,
    h(
      "div",
      { class: "table-wrap" },
      h("table", { id: "users-table", class: "data" }, head("Name", "Roles", "Logins", "Password", "Created", h("span", { class: "sr-only" }, "Actions")), tbody),
    ),
  );
  return { el, cleanup: () => (alive = false) };
}

// ---- tokens -------------------------------------------------------------------------

export function tokensPage() {
  let alive = true;
  const error = h("p", { id: "tokens-error", class: "error", role: "alert", hidden: true });
  const tbody = h("tbody", { id: "token-rows" });
  const empty = h("p", { id: "tokens-empty", class: "muted", hidden: true }, "No join tokens.");
  const result = h("div", { id: "join-result", class: "card result", hidden: true });

  async function load() {
    try {
      const res = await api("GET", "/tokens");
      if (!alive) return;
      render(Array.isArray(res.tokens) ? res.tokens : []);
    } catch (err) {
      if (alive) say(error, err.message);
    }
  }

  function render(tokens) {
    empty.hidden = tokens.length > 0;
    tbody.replaceChildren(
      ...tokens.map((t) =>
        h(
          "tr",
          { class: "token-row", dataset: { token: t.name } },
          h("td", { class: "token-name mono" }, t.name),
          h("td", { class: "token-type" }, t.type),
          h("td", { class: "token-method" }, t.join_method || "token"),
          h("td", { class: "token-labels" }, labelChips(t.labels)),
          h("td", { class: "token-expires mono" }, t.expires ? `${formatTime(t.expires)} (${relativeTime(t.expires)})` : ""),
          h(
            "td",
            { class: "actions" },
            h(
              "button",
              {
                type: "button",
                class: "token-remove danger",
                dataset: { token: t.name },
                onclick: async () => {
                  say(error, "");
                  if (!(await confirmAction(`Remove join token ${t.name}?`))) return;
                  try {
                    await api("DELETE", `/tokens/${seg(t.name)}`);
                    load();
                  } catch (err) {
                    say(error, err.message);
                  }
                },
              },
              "Remove",
            ),
          ),
        ),
      ),
    );
  }

  const type = h(
    "select",
    { id: "token-add-type" },
    h("option", { value: "node" }, "node"),
    h("option", { value: "proxy" }, "proxy"),
  );
  const ttl = h("input", { id: "token-add-ttl", type: "number", min: "60", step: "60", value: "1800", required: true });
  const labels = h("input", { id: "token-add-labels", placeholder: "env=prod team=db", spellcheck: "false" });
  const addError = h("p", { id: "token-add-error", class: "error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", id: "token-add-submit" }, "Add token");
  const form = h(
    "form",
    {
      id: "token-add-form",
      class: "card toolbar",
      onsubmit: async (ev) => {
        ev.preventDefault();
        say(addError, "");
        // The backend takes labels as "k=v" strings (server/proxy/specs.py TOKEN_BODY).
        let labelPairs;
        try {
          labelPairs = parseLabels(labels.value).map(([k, v]) => `${k}=${v}`);
        } catch (err) {
          say(addError, err.message);
          return;
        }
        submit.disabled = true;
        try {
          const res = await api("POST", "/tokens", {
            body: { type: type.value, ttl_seconds: Number.parseInt(ttl.value, 10), labels: labelPairs },
          });
          result.replaceChildren(
            h("h2", {}, `Join token ${res.name}`),
            h("p", {}, `Run this on the new ${type.value}. The token is shown only now; it expires ${formatTime(res.expires)} (${relativeTime(res.expires)}).`),
            copyBox("join-command", res.join_command, "join-copy"),
          );
          result.hidden = false;
          result.querySelector("#join-command").focus();
          labels.value = "";
          load();
        } catch (err) {
          say(addError, err.message);
        } finally {
          submit.disabled = false;
        }
      },
    },
    field("Type", type),
    field("TTL (seconds)", ttl),
    field("Labels", labels, "key=value, for nodes"),
    submit,
    addError,
  );

  load();
  const el = h(
    "section",
    { class: "page", id: "page-tokens" },
    h("h1", { tabindex: "-1" }, "Join tokens"),
    form,
    result,
    error,
    h(
      "div",
      { class: "table-wrap" },
      h("table", { id: "tokens-table", class: "data" }, head("Name", "Type", "Method", "Labels", "Expires", h("span", { class: "sr-only" }, "Actions")), tbody),
    ),
    empty,
  );
  return { el, cleanup: () => (alive = false) };
}

// ---- roles --------------------------------------------------------------------------

const NEW_ROLE = `kind: role
version: v1
metadata:
  name: NAME
spec:
  allow:
    logins: []
`;

export function rolesPage() {
  let alive = true;
  let roles = [];
  let current = null;
  const error = h("p", { id: "roles-error", class: "error", role: "alert", hidden: true });
  const list = h("ul", { id: "roles-list", class: "pick-list" });
  const name = h("input", { id: "role-name", required: true, spellcheck: "false", autocapitalize: "none" });
  const yaml = h("textarea", {
    id: "role-yaml",
    class: "mono",
    rows: "20",
    spellcheck: "false",
    autocapitalize: "none",
    "aria-describedby": "role-error",
  });
  const editError = h("p", { id: "role-error", class: "error", role: "alert", hidden: true });
  const saved = h("p", { id: "role-saved", class: "notice", role: "status", hidden: true });
  const save = h("button", { type: "submit", id: "role-save" }, "Save");
  const title = h("h2", { id: "role-editor-title" }, "Role");

  function pick(role) {
    current = role;
    say(editError, "");
    say(saved, "");
    if (role) {
      name.value = role.name;
      name.readOnly = true;
      yaml.value = role.yaml;
      title.textContent = `Role ${role.name}`;
    } else {
      name.value = "";
      name.readOnly = false;
      yaml.value = NEW_ROLE;
      title.textContent = "New role";
    }
    for (const li of list.children) {
      const btn = li.firstChild;
      btn.setAttribute("aria-current", role && btn.dataset.role === role.name ? "true" : "false");
    }
  }

  async function load(selectName) {
    try {
      const res = await api("GET", "/roles");
      if (!alive) return;
      roles = Array.isArray(res.roles) ? res.roles : [];
    } catch (err) {
      if (alive) say(error, err.message);
      return;
    }
    list.replaceChildren(
      ...roles.map((r) =>
        h(
          "li",
          {},
          h(
            "button",
            { type: "button", class: "role-item", dataset: { role: r.name }, onclick: () => pick(r) },
            r.name,
          ),
        ),
      ),
    );
    const want = roles.find((r) => r.name === selectName) || (current && roles.find((r) => r.name === current.name));
    pick(want || roles[0] || null);
  }

  const editor = h(
    "form",
    {
      id: "role-editor",
      class: "card editor",
      onsubmit: async (ev) => {
        ev.preventDefault();
        say(editError, "");
        say(saved, "");
        const roleName = name.value.trim();
        if (!roleName) return say(editError, "The role needs a name.");
        save.disabled = true;
        try {
          const res = await api("PUT", `/roles/${seg(roleName)}`, { body: { yaml: yaml.value } });
          await load(roleName);
          say(saved, res && res.created ? `Role ${roleName} created.` : `Role ${roleName} saved.`);
        } catch (err) {
          say(editError, err.message);
        } finally {
          save.disabled = false;
        }
      },
    },
    title,
    h("label", { class: "field" }, h("span", {}, "Name"), name),
    h("label", { for: "role-yaml" }, "YAML"),
    h("div", { class: "editor-row" }, yaml, h("div", { class: "editor-side" }, editError, saved)),
    h(
      "div",
      { class: "buttons" },
      save,
      h("button", { type: "button", id: "role-revert", class: "secondary", onclick: () => pick(current) }, "Revert"),
    ),
  );
  name.addEventListener("input", () => {
    if (!current) yaml.value = yaml.value.replace(/^(metadata:\n  name:).*$/m, `$1 ${name.value.trim() || "NAME"}`);
  });
  // Ctrl/Cmd+Enter saves from inside the textarea (plain Enter is a newline there).
  yaml.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      editor.requestSubmit();
    }
  });

  load(null);
  const el = h(
    "section",
    { class: "page", id: "page-roles" },
    h("h1", { tabindex: "-1" }, "Roles"),
    error,
    h(
      "div",
      { class: "roles-layout" },
      h(
        "div",
        { class: "card" },
        list,
        h("button", { type: "button", id: "role-new", class: "secondary", onclick: () => pick(null) }, "New role"),
      ),
      editor,
    ),
  );
  return { el, cleanup: () => (alive = false) };
}
