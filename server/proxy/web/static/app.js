// Mezite web UI: the shell (header, navigation, hash routing) and the small pages
// (login, invite, account). Other pages live in their own modules.

import { api, ApiError, setUnauthenticatedHandler } from "./api.js";
import { h, say, formatTime, relativeTime } from "./dom.js";
import { nodesPage } from "./nodes.js";
import { auditPage } from "./audit.js";
import { recordingsPage, playerPage } from "./recordings.js";
import { usersPage, tokensPage, rolesPage } from "./admin.js";
import { terminals } from "./terminal.js";

// meAnswered: /me said 401 since the last login or logout, so #/login need not ask again.
const state = { me: null, meAnswered: false, cleanup: null, notice: "", cluster: "" };

// The cluster's name, from ping (which needs no session); the host until it answers.
function clusterLabel() {
  return state.cluster || window.location.host;
}

const content = () => document.getElementById("content");

export function isAdmin() {
  return !!state.me && state.me.roles.includes("admin");
}

function canAudit() {
  return !!state.me && (state.me.roles.includes("admin") || state.me.roles.includes("auditor"));
}

export function me() {
  return state.me;
}

export function go(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

// ---- header -------------------------------------------------------------------------

function renderHeader() {
  const header = document.getElementById("app-header");
  const loggedIn = !!state.me;
  header.hidden = !loggedIn;
  document.getElementById("header-cluster").textContent = clusterLabel();
  document.getElementById("header-user").textContent = loggedIn ? state.me.username : "";
  document.getElementById("nav-audit").hidden = !canAudit();
  document.getElementById("nav-admin").hidden = !isAdmin();
  const count = terminals.count();
  const badge = document.getElementById("nav-terminal-count");
  badge.textContent = String(count);
  badge.hidden = count === 0;
  const current = currentSection();
  for (const link of header.querySelectorAll("nav a[data-section]")) {
    if (link.dataset.section === current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function currentSection() {
  const path = parseHash().path;
  return path.split("/")[1] || "nodes";
}

// ---- routing ------------------------------------------------------------------------

function parseHash() {
  const raw = window.location.hash.replace(/^#/, "") || "/nodes";
  return { path: raw.startsWith("/") ? raw : `/${raw}` };
}

async function loadMe() {
  try {
    const m = await api("GET", "/me", { quiet401: true });
    m.roles = Array.isArray(m.roles) ? m.roles : [];
    m.logins = Array.isArray(m.logins) ? m.logins : [];
    state.me = m;
    state.meAnswered = false;
  } catch (err) {
    state.me = null;
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
    state.meAnswered = true;
  }
}

let routing = Promise.resolve();

function route() {
  routing = routing.then(doRoute, doRoute);
  return routing;
}

async function doRoute() {
  const { path } = parseHash();
  if (state.cleanup) {
    state.cleanup();
    state.cleanup = null;
  }
  const parts = path.split("/").filter(Boolean);
  const terminalPage = document.getElementById("terminal-page");

  if (parts[0] === "invite") {
    terminalPage.hidden = true;
    show(invitePage(decodeURIComponent(parts.slice(1).join("/"))));
    renderHeader();
    return;
  }
  if (parts[0] === "login") {
    if (state.me === null && !state.meAnswered) {
      try {
        await loadMe();
      } catch {
        /* the login page shows errors of its own */
      }
    }
    if (state.me) {
      go("#/nodes");
      return;
    }
    terminalPage.hidden = true;
    show(loginPage());
    renderHeader();
    return;
  }
  if (state.me === null) {
    try {
      await loadMe();
    } catch (err) {
      terminalPage.hidden = true;
      show(errorPage(err.message));
      renderHeader();
      return;
    }
    if (state.me === null) {
      go("#/login");
      return;
    }
  }

  const pages = {
    nodes: () => nodesPage({ me: state.me, openTerminal }),
    audit: () => (canAudit() ? auditPage() : forbidden()),
    recordings: () => (parts.length > 1 ? playerPage(decodedSegment(parts.slice(1).join("/"))) : recordingsPage({ go })),
    account: () => accountPage(),
    admin: () => adminPage(parts[1] || "users"),
  };
  if (parts[0] === "terminal") {
    content().hidden = true;
    content().replaceChildren();
    terminalPage.hidden = false;
    terminals.shown();
  } else {
    terminalPage.hidden = true;
    const make = pages[parts[0]] || (() => notFound());
    const page = make();
    state.cleanup = page.cleanup || null;
    show(page.el || page);
  }
  renderHeader();
}

function decodedSegment(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function show(el) {
  const main = content();
  main.hidden = false;
  main.replaceChildren(el);
  const focus = el.querySelector("[data-autofocus]") || el.querySelector("h1");
  if (focus) focus.focus({ preventScroll: true });
}

function openTerminal(node, login) {
  terminals.open(node, login);
  go("#/terminal");
}

function page(title, ...children) {
  return h("section", { class: "page" }, h("h1", { tabindex: "-1" }, title), ...children);
}

function notFound() {
  return page("Not found", h("p", {}, "There is no such page. "), h("a", { href: "#/nodes" }, "Nodes"));
}

function forbidden() {
  return page(
    "Access denied",
    h("p", { id: "page-forbidden" }, "Your roles do not allow this page."),
  );
}

function errorPage(message) {
  return page(
    "Cannot load",
    h("p", { id: "page-error", class: "error" }, message),
    h("button", { type: "button", onclick: () => route() }, "Retry"),
  );
}

// ---- login --------------------------------------------------------------------------

function loginPage() {
  const error = h("p", { id: "login-error", class: "error", role: "alert", hidden: true });
  const notice = h("p", { id: "login-notice", class: "notice", role: "status", hidden: true });
  say(notice, state.notice);
  state.notice = "";
  const username = h("input", {
    id: "login-username",
    name: "username",
    autocomplete: "username",
    required: true,
    "data-autofocus": true,
    spellcheck: "false",
    autocapitalize: "none",
  });
  const password = h("input", {
    id: "login-password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const submit = h("button", { id: "login-submit", type: "submit" }, "Log in");
  const form = h(
    "form",
    {
      id: "login-form",
      class: "card narrow",
      onsubmit: async (ev) => {
        ev.preventDefault();
        say(error, "");
        submit.disabled = true;
        try {
          await api("POST", "/login", {
            body: { username: username.value, password: password.value },
            quiet401: true,
          });
          password.value = "";
          await loadMe();
          if (!state.me) throw new Error("logged in, but the session was not accepted");
          go("#/nodes");
        } catch (err) {
          say(error, err.message);
          password.select();
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("h1", { tabindex: "-1" }, "Log in to Mezite"),
    h("p", { class: "muted", id: "login-cluster" }, clusterLabel()),
    notice,
    h("label", { for: "login-username" }, "Username"),
    username,
    h("label", { for: "login-password" }, "Password"),
    password,
    error,
    submit,
  );
  return h("section", { class: "page center", id: "page-login" }, form);
}

// ---- invite -------------------------------------------------------------------------

function invitePage(token) {
  const error = h("p", { id: "invite-error", class: "error", role: "alert", hidden: true });
  const password = h("input", {
    id: "invite-password",
    type: "password",
    autocomplete: "new-password",
    required: true,
    "data-autofocus": true,
  });
  const confirm = h("input", {
    id: "invite-confirm",
    type: "password",
    autocomplete: "new-password",
    required: true,
  });
  const submit = h("button", { id: "invite-submit", type: "submit" }, "Set password");
  const form = h(
    "form",
    {
      id: "invite-form",
      class: "card narrow",
      onsubmit: async (ev) => {
        ev.preventDefault();
        say(error, "");
        if (!token) return say(error, "This invite link has no token.");
        if (password.value !== confirm.value) return say(error, "The passwords do not match.");
        submit.disabled = true;
        try {
          const res = await api("POST", "/invite", {
            body: { token, password: password.value },
            quiet401: true,
          });
          password.value = confirm.value = "";
          state.notice = `Password set for ${res && res.username ? res.username : "your user"}. Log in.`;
          state.me = null;
          go("#/login");
        } catch (err) {
          say(error, err.message);
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("h1", { tabindex: "-1" }, "Accept invite"),
    h("p", { class: "muted" }, "Choose a password for your Mezite user."),
    h("label", { for: "invite-password" }, "New password"),
    password,
    h("label", { for: "invite-confirm" }, "Confirm password"),
    confirm,
    error,
    submit,
  );
  return h("section", { class: "page center", id: "page-invite" }, form);
}

// ---- account ------------------------------------------------------------------------

function accountPage() {
  const m = state.me;
  const row = (label, id, ...value) => [h("dt", {}, label), h("dd", { id }, ...value)];
  const list = (items) =>
    items.length ? h("span", { class: "labels" }, items.map((x) => h("span", { class: "label" }, x))) : "none";
  const error = h("p", { id: "account-error", class: "error", hidden: true });
  const el = page(
    "Account",
    h(
      "dl",
      { class: "facts" },
      row("User", "account-username", m.username),
      row("Roles", "account-roles", list(m.roles)),
      row("Logins", "account-logins", list(m.logins)),
      row(
        "Session expires",
        "account-expires",
        `${formatTime(m.session_expires)} (${relativeTime(m.session_expires)})`,
      ),
    ),
    error,
    h(
      "button",
      { type: "button", id: "account-logout", onclick: () => logout(error) },
      "Log out",
    ),
  );
  el.id = "page-account";
  return el;
}

async function logout(errorEl) {
  try {
    await api("DELETE", "/session", { quiet401: true });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) {
      if (errorEl) say(errorEl, err.message);
      else window.alert(err.message);
      return;
    }
  }
  signedOut("Logged out.");
}

function signedOut(notice) {
  state.me = null;
  state.meAnswered = true;
  state.notice = notice;
  terminals.closeAll();
  go("#/login");
}

// ---- admin --------------------------------------------------------------------------

function adminPage(sub) {
  if (!isAdmin()) return forbidden();
  const tabs = [
    ["users", "Users"],
    ["tokens", "Join tokens"],
    ["roles", "Roles"],
  ];
  const nav = h(
    "nav",
    { class: "subnav", "aria-label": "Admin" },
    tabs.map(([key, label]) =>
      h(
        "a",
        {
          href: `#/admin/${key}`,
          id: `nav-admin-${key}`,
          "aria-current": key === sub ? "page" : undefined,
        },
        label,
      ),
    ),
  );
  const pages = { users: usersPage, tokens: tokensPage, roles: rolesPage };
  const inner = (pages[sub] || notFound)();
  const el = h("div", { class: "admin" }, nav, inner.el || inner);
  return { el, cleanup: inner.cleanup };
}

// ---- start --------------------------------------------------------------------------

function start() {
  setUnauthenticatedHandler(() => {
    if (state.me !== null) signedOut("Your session has ended. Log in again.");
    else go("#/login");
  });
  terminals.onChange(renderHeader);
  terminals.onUnauthenticated(() => signedOut("Your session has ended. Log in again."));
  document.getElementById("logout").addEventListener("click", () => logout(null));
  window.addEventListener("hashchange", () => route());
  route();
  api("GET", "/ping", { quiet401: true })
    .then((ping) => {
      state.cluster = String(ping.cluster_name || "");
      renderHeader();
      const shown = document.getElementById("login-cluster");
      if (shown) shown.textContent = clusterLabel();
    })
    .catch(() => {});
}

start();
