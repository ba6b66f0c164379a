// Terminal tabs: one xterm.js terminal and one WebSocket per tab. xterm.js (~490 KB) is
// loaded the first time a terminal opens, by adding <script src> elements (script-src 'self').

import { h } from "./dom.js";

const VENDOR = "/web/static/vendor/xterm/";
const MAX_FRAME = 64 * 1024;
const CLOSE_REASONS = {
  1000: "session ended",
  1006: "connection lost",
  1009: "message too big",
  1011: "proxy error",
  4400: "bad request",
  4401: "not authenticated",
  4403: "access denied",
  4404: "no such node",
  4408: "idle timeout",
  4502: "node unreachable",
};

let loading = null;

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const el = h("script", { src });
    el.addEventListener("load", resolve, { once: true });
    el.addEventListener("error", () => reject(new Error(`cannot load ${src}`)), { once: true });
    document.head.append(el);
  });
}

/** Load xterm.js and the fit addon once; resolves {Terminal, FitAddon}. */
export function loadXterm() {
  if (!loading) {
    loading = loadScript(`${VENDOR}xterm.js`)
      .then(() => loadScript(`${VENDOR}addon-fit.js`))
      .then(() => ({ Terminal: window.Terminal, FitAddon: window.FitAddon.FitAddon }))
      .catch((err) => {
        loading = null;
        throw err;
      });
  }
  return loading;
}

const encoder = new TextEncoder();

function nextFrame() {
  return new Promise((resolve) => requestAnimationFrame(resolve));
}

/** Send bytes in frames of at most 64 KiB. */
function sendBytes(ws, bytes) {
  if (ws.readyState !== WebSocket.OPEN) return;
  for (let i = 0; i < bytes.length; i += MAX_FRAME) ws.send(bytes.subarray(i, i + MAX_FRAME));
}

function binaryStringBytes(str) {
  const out = new Uint8Array(str.length);
  for (let i = 0; i < str.length; i++) out[i] = str.charCodeAt(i) & 0xff;
  return out;
}

class Tab {
  constructor(manager, id, node, login) {
    this.manager = manager;
    this.id = id;
    this.node = node;
    this.login = login;
    this.state = "connecting";
    this.exitStatus = null;
    this.ws = null;
    this.term = null;
    this.fit = null;

    this.statusEl = h("span", { class: "terminal-status" }, "connecting");
    this.selectEl = h(
      "button",
      {
        type: "button",
        class: "terminal-tab-select",
        role: "tab",
        id: `terminal-tab-${id}`,
        "aria-controls": `terminal-panel-${id}`,
        onclick: () => manager.select(this),
      },
      h("span", { class: "terminal-tab-title" }, `${login}@${node}`),
      this.statusEl,
    );
    this.closeEl = h(
      "button",
      {
        type: "button",
        class: "terminal-tab-close",
        "aria-label": `Close ${login}@${node}`,
        title: "Close",
        onclick: () => manager.close(this),
      },
      "×",
    );
    this.tabEl = h(
      "div",
      { class: "terminal-tab", dataset: { tabId: id, node, login, state: "connecting" } },
      this.selectEl,
      this.closeEl,
    );
    this.bannerEl = h("div", { class: "terminal-banner", role: "status", hidden: true });
    this.hostEl = h("div", { class: "terminal-host" });
    this.panelEl = h(
      "div",
      {
        class: "terminal-panel",
        id: `terminal-panel-${id}`,
        role: "tabpanel",
        "aria-labelledby": `terminal-tab-${id}`,
        dataset: { tabId: id, node, login },
        hidden: true,
      },
      this.bannerEl,
      this.hostEl,
    );
  }

  setState(state, text) {
    this.state = state;
    this.tabEl.dataset.state = state;
    this.statusEl.textContent = text;
    this.manager.changed();
  }

  banner(text, kind) {
    this.bannerEl.textContent = text;
    this.bannerEl.className = `terminal-banner ${kind || ""}`;
    this.bannerEl.hidden = !text;
  }

  async start() {
    let lib;
    try {
      lib = await loadXterm();
    } catch (err) {
      this.setState("closed", "failed");
      this.banner(err.message, "error");
      return;
    }
    if (this.state === "disposed") return;
    // Open the terminal once its panel has a size, so the first cols/rows are the real ones.
    for (let i = 0; i < 30 && this.hostEl.clientWidth === 0; i++) await nextFrame();
    if (this.state === "disposed") return;
    this.term = new lib.Terminal({
      cursorBlink: true,
      convertEol: false,
      scrollback: 5000,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      theme: { background: "#0f1419", foreground: "#e6e1cf", cursor: "#f0b429" },
    });
    this.fit = new lib.FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open(this.hostEl);
    this.refit();
    this.term.onData((data) => this.ws && sendBytes(this.ws, encoder.encode(data)));
    this.term.onBinary((data) => this.ws && sendBytes(this.ws, binaryStringBytes(data)));
    this.term.onResize(({ cols, rows }) => this.sendResize(cols, rows));
    this.connect();
    if (this.manager.active === this) this.term.focus();
  }

  connect() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const cols = this.term.cols;
    const rows = this.term.rows;
    const url =
      `${scheme}//${window.location.host}/v1/webapi/nodes/${encodeURIComponent(this.node)}` +
      `/terminal?login=${encodeURIComponent(this.login)}&cols=${cols}&rows=${rows}`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      this.setState("closed", "failed");
      this.banner(err.message, "error");
      return;
    }
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.addEventListener("open", () => {
      this.setState("open", "connected");
      this.sendResize(this.term.cols, this.term.rows);
    });
    ws.addEventListener("message", (ev) => {
      if (typeof ev.data !== "string") {
        this.term.write(new Uint8Array(ev.data));
        return;
      }
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg && msg.type === "exit") {
        this.exitStatus = Number(msg.status);
        const text = `[session ended: exit status ${this.exitStatus}]`;
        this.term.write(`\r\n${text}\r\n`);
        this.banner(text, this.exitStatus === 0 ? "" : "warn");
        this.setState("closed", `exit ${this.exitStatus}`);
      } else if (msg && msg.type === "error") {
        const text = String(msg.message || "error");
        this.term.write(`\r\n[error: ${text}]\r\n`);
        this.banner(text, "error");
      }
    });
    ws.addEventListener("close", (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.state === "disposed") return;
      if (ev.code === 1000) {
        if (this.exitStatus === null) {
          this.term.write("\r\n[session ended]\r\n");
          this.banner("[session ended]", "");
          this.setState("closed", "ended");
        }
      } else {
        const what = CLOSE_REASONS[ev.code] || "closed";
        const text = ev.reason ? `${ev.reason}` : what;
        const line = `[connection closed: ${text} (code ${ev.code})]`;
        this.term.write(`\r\n${line}\r\n`);
        this.banner(line, "error");
        this.setState("closed", what);
        if (ev.code === 4401) this.manager.unauthenticated();
      }
      this.term.options.cursorBlink = false;
    });
  }

  sendResize(cols, rows) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: "resize", cols, rows }));
    }
  }

  refit() {
    if (!this.fit || this.panelEl.hidden || this.hostEl.clientWidth === 0) return;
    try {
      this.fit.fit();
      this.term.refresh(0, this.term.rows - 1);
    } catch {
      /* not measurable yet */
    }
  }

  dispose() {
    this.state = "disposed";
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "tab closed");
    }
    if (this.term) this.term.dispose();
    this.tabEl.remove();
    this.panelEl.remove();
  }
}

class Terminals {
  constructor() {
    this.tabs = [];
    this.active = null;
    this.nextId = 1;
    this.listeners = [];
    this.unauthListeners = [];
    let pending = false;
    window.addEventListener("resize", () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        if (this.active) this.active.refit();
      });
    });
  }

  el(id) {
    return document.getElementById(id);
  }

  count() {
    return this.tabs.length;
  }

  onChange(fn) {
    this.listeners.push(fn);
  }

  onUnauthenticated(fn) {
    this.unauthListeners.push(fn);
  }

  changed() {
    this.el("terminal-empty").hidden = this.tabs.length > 0;
    for (const fn of this.listeners) fn();
  }

  unauthenticated() {
    for (const fn of this.unauthListeners) fn();
  }

  open(node, login) {
    const tab = new Tab(this, String(this.nextId++), node, login);
    this.tabs.push(tab);
    this.el("terminal-tabs").append(tab.tabEl);
    this.el("terminal-panels").append(tab.panelEl);
    this.select(tab);
    this.changed();
    tab.start();
    return tab;
  }

  select(tab, focusTerminal = true) {
    this.active = tab;
    for (const t of this.tabs) {
      const on = t === tab;
      t.panelEl.hidden = !on;
      t.tabEl.classList.toggle("active", on);
      t.selectEl.setAttribute("aria-selected", on ? "true" : "false");
      t.selectEl.tabIndex = on ? 0 : -1;
    }
    requestAnimationFrame(() => {
      tab.refit();
      if (focusTerminal && tab.term) tab.term.focus();
    });
  }

  close(tab) {
    const i = this.tabs.indexOf(tab);
    if (i < 0) return;
    tab.dispose();
    this.tabs.splice(i, 1);
    if (this.active === tab) {
      this.active = null;
      const next = this.tabs[Math.min(i, this.tabs.length - 1)];
      if (next) this.select(next);
    }
    this.changed();
  }

  closeAll() {
    for (const tab of [...this.tabs]) this.close(tab);
  }

  /** The terminal page became visible. */
  shown() {
    this.changed();
    if (this.active) this.select(this.active);
  }
}

export const terminals = new Terminals();

// Arrow keys move between tabs in the tab bar (the ARIA tabs pattern).
document.addEventListener("keydown", (ev) => {
  const target = ev.target;
  if (!(target instanceof HTMLElement) || !target.classList.contains("terminal-tab-select")) return;
  if (ev.key !== "ArrowRight" && ev.key !== "ArrowLeft") return;
  const tabs = terminals.tabs;
  const i = tabs.findIndex((t) => t.selectEl === target);
  if (i < 0) return;
  const next = tabs[(i + (ev.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
  terminals.select(next, false);
  next.selectEl.focus();
  ev.preventDefault();
});
