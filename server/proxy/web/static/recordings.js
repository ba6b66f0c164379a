// Session recordings: the list (#/recordings, filters by user/node/since) and the player
// (#/recordings/<SESSION_ID>), which replays the asciicast v2 file into an xterm.js
// terminal through term.write only: the recorded bytes never reach the DOM as markup.

import { api, ApiError, unauthenticated } from "./api.js";
import { h, say, formatTime } from "./dom.js";
import { loadXterm } from "./terminal.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAX_CAST_BYTES = 50 * 1024 * 1024;
const SPEEDS = ["0.5", "1", "2", "4", "8"];
const IDLE_CAP = 1; // seconds, with "skip idle"
const TICK_MS = 100; // how often the time text moves while playing

// The listing's rows by session id, so the player can show what the list knew.
const known = new Map();

export function isSessionId(text) {
  return typeof text === "string" && UUID.test(text);
}

function toEpoch(value) {
  if (!value) return "";
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? "" : String(Math.floor(ms / 1000));
}

function duration(rec) {
  const d = Number(rec.ended) - Number(rec.started);
  return Number.isFinite(d) && d > 0 ? d : 0;
}

/** 75.3 -> "1:15"; with tenths "1:15.3". */
export function clock(seconds, tenths = false) {
  const s = Math.max(0, Number(seconds) || 0);
  const whole = tenths ? Math.floor(s * 10) / 10 : Math.floor(s);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const rest = whole % 60;
  const sec = tenths ? rest.toFixed(1).padStart(4, "0") : String(Math.floor(rest)).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

function bytes(n) {
  const v = Number(n) || 0;
  if (v < 1024) return `${v} B`;
  if (v < 1024 * 1024) return `${(v / 1024).toFixed(1)} KiB`;
  return `${(v / 1024 / 1024).toFixed(1)} MiB`;
}

// ---- the list ----------------------------------------------------------------------

export function recordingsPage({ go }) {
  let generation = 0;
  const field = (label, input) => h("label", { class: "field" }, h("span", {}, label), input);
  const user = h("input", { id: "recordings-user", spellcheck: "false" });
  const node = h("input", { id: "recordings-node", spellcheck: "false" });
  const since = h("input", { id: "recordings-since", type: "datetime-local", step: "1" });
  const error = h("p", { id: "recordings-error", class: "error", role: "alert", hidden: true });
  const empty = h("p", { id: "recordings-empty", class: "muted", hidden: true });
  const count = h("span", { id: "recordings-count", class: "muted" });
  const tbody = h("tbody", { id: "recordings-rows" });

  const form = h(
    "form",
    {
      id: "recordings-filters",
      class: "toolbar",
      role: "search",
      onsubmit: (ev) => {
        ev.preventDefault();
        load();
      },
    },
    field("User", user),
    field("Node", node),
    field("Since", since),
    h("button", { type: "submit", id: "recordings-search" }, "Search"),
    h(
      "button",
      {
        type: "button",
        id: "recordings-reset",
        class: "secondary",
        onclick: () => {
          for (const input of [user, node, since]) input.value = "";
          load();
        },
      },
      "Reset",
    ),
  );

  async function load() {
    const mine = ++generation;
    say(error, "");
    const params = [
      ["user", user.value.trim()],
      ["node", node.value.trim()],
      ["since", toEpoch(since.value)],
    ];
    let rows = [];
    try {
      const res = await api("GET", "/recordings", { params });
      if (mine !== generation) return;
      rows = Array.isArray(res && res.recordings) ? res.recordings : [];
    } catch (err) {
      if (mine !== generation) return;
      say(error, err.message);
    }
    rows.sort((a, b) => Number(b.started) - Number(a.started));
    for (const rec of rows) known.set(rec.session_id, rec);
    render(rows);
  }

  function render(rows) {
    tbody.replaceChildren(
      ...rows.map((rec) => {
        const id = String(rec.session_id || "");
        const playable = isSessionId(id);
        return h(
          "tr",
          { class: "recording-row", dataset: { sessionId: id, truncated: rec.truncated ? "true" : "false" } },
          h("td", { class: "recording-started mono" }, formatTime(rec.started)),
          h("td", { class: "recording-user" }, rec.user),
          h("td", { class: "recording-login mono" }, rec.login),
          h("td", { class: "recording-node" }, rec.node_name || rec.node || rec.node_id),
          h("td", { class: "recording-duration mono" }, clock(duration(rec))),
          h("td", { class: "recording-size mono" }, bytes(rec.size)),
          h(
            "td",
            { class: "recording-truncated" },
            rec.truncated ? h("span", { class: "state failed" }, "truncated") : "",
          ),
          h(
            "td",
            { class: "actions" },
            h(
              "button",
              {
                type: "button",
                class: "play-button",
                dataset: { sessionId: id },
                disabled: !playable,
                "aria-label": `Play the session of ${rec.user} on ${rec.node_name || rec.node || ""}`,
                onclick: () => playable && go(`#/recordings/${id}`),
              },
              "Play",
            ),
          ),
        );
      }),
    );
    count.textContent = rows.length === 1 ? "1 recording" : `${rows.length} recordings`;
    say(empty, rows.length ? "" : "No recordings match.");
  }

  const table = h(
    "table",
    { id: "recordings-table", class: "data" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Started", "User", "Login", "Node", "Duration", "Size", "Truncated", ""].map((t) => h("th", { scope: "col" }, t)),
      ),
    ),
    tbody,
  );

  load();
  const el = h(
    "section",
    { class: "page", id: "page-recordings" },
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Session recordings"), count),
    form,
    error,
    h("div", { class: "table-wrap" }, table),
    empty,
  );
  return { el, cleanup: () => (generation += 1) };
}

// ---- the cast ----------------------------------------------------------------------

class TooBig extends Error {}

/**
 * Read the cast line by line as it streams in: the header (the first JSON object) and the
 * events ([seconds, code, data] arrays; other lines are skipped). Stops at MAX_CAST_BYTES.
 */
async function readCast(response, signal, onProgress) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder("utf-8");
  const cast = { header: null, events: [], cut: false };
  let pending = "";
  let total = 0;
  const take = (line) => {
    if (!line.trim()) return;
    let value;
    try {
      value = JSON.parse(line);
    } catch {
      return;
    }
    if (cast.header === null && value && typeof value === "object" && !Array.isArray(value)) {
      cast.header = value;
      return;
    }
    if (!Array.isArray(value) || value.length < 3) return;
    const [at, code, data] = value;
    if (typeof at !== "number" || !Number.isFinite(at) || typeof code !== "string") return;
    cast.events.push({ at: Math.max(0, at), code, data: String(data) });
  };
  for (;;) {
    if (signal.aborted) throw new DOMException("aborted", "AbortError");
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > MAX_CAST_BYTES) {
      cast.cut = true;
      reader.cancel().catch(() => {});
      break;
    }
    pending += decoder.decode(value, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop();
    for (const line of lines) take(line);
    onProgress(total);
  }
  if (!cast.cut) {
    pending += decoder.decode();
    take(pending);
  }
  if (cast.header === null && cast.cut) throw new TooBig();
  // Out-of-order times would make seeking wrong: keep the file's order, times never going back.
  let last = 0;
  for (const ev of cast.events) {
    if (ev.at < last) ev.at = last;
    last = ev.at;
  }
  return cast;
}

async function refusal(response) {
  let message = `HTTP ${response.status}`;
  let type = "Error";
  try {
    const data = await response.json();
    if (data && data.error && typeof data.error.message === "string" && data.error.message) {
      message = data.error.message;
      if (typeof data.error.type === "string") type = data.error.type;
    }
  } catch {
    /* not JSON */
  }
  return new ApiError(response.status, type, message);
}

function parseSize(text) {
  const m = /^\s*(\d+)\s*x\s*(\d+)\s*$/.exec(String(text));
  if (!m) return null;
  const cols = Number(m[1]);
  const rows = Number(m[2]);
  return cols > 0 && rows > 0 && cols <= 1000 && rows <= 500 ? { cols, rows } : null;
}

// ---- the player --------------------------------------------------------------------

export function playerPage(sessionId) {
  const abort = new AbortController();
  const error = h("p", { id: "player-error", class: "error", role: "alert", hidden: true });
  const notice = h("p", { id: "player-notice", class: "warn-box", role: "status", hidden: true });
  const truncated = h("p", { id: "player-truncated", class: "warn-box", hidden: true });
  const status = h("p", { id: "player-status", class: "muted" }, "Loading the recording…");
  const fact = (label, id) => [h("dt", {}, label), h("dd", { id })];
  const meta = h(
    "dl",
    { id: "player-meta", class: "facts", hidden: true },
    fact("User", "player-user"),
    fact("Login", "player-login"),
    fact("Node", "player-node"),
    fact("Started", "player-started"),
  );
  const setFact = (id, text) => {
    const el = meta.querySelector(`#${id}`);
    if (el) el.textContent = text || "";
  };

  const play = h(
    "button",
    { type: "button", id: "player-play", disabled: true, dataset: { state: "paused" }, "aria-keyshortcuts": "Space" },
    "Play",
  );
  const speed = h(
    "select",
    { id: "player-speed", "aria-label": "Speed" },
    SPEEDS.map((s) => h("option", { value: s, selected: s === "1" }, `${s}×`)),
  );
  const skipIdle = h("input", { id: "player-skip-idle", type: "checkbox" });
  const timeline = h("input", {
    id: "player-timeline",
    type: "range",
    min: "0",
    max: "0",
    step: "any",
    value: "0",
    disabled: true,
    "aria-label": "Position",
  });
  const time = h("span", { id: "player-time", class: "mono", "aria-live": "off" }, "0:00.0 / 0:00.0");
  const host = h("div", { id: "player-terminal", class: "player-terminal", hidden: true });
  const controls = h(
    "div",
    { class: "player-controls", id: "player-controls" },
    play,
    h("label", { class: "inline" }, "Speed ", speed),
    timeline,
    time,
    h("label", { class: "inline" }, skipIdle, " Skip idle"),
  );

  const el = h(
    "section",
    { class: "page", id: "page-player" },
    h(
      "div",
      { class: "page-head" },
      h("h1", { tabindex: "-1" }, "Session recording"),
      h("a", { href: "#/recordings", id: "player-back" }, "All recordings"),
    ),
    h("p", { class: "muted mono", id: "player-session" }, sessionId),
    meta,
    error,
    truncated,
    notice,
    status,
    controls,
    host,
  );

  // Playback state. `pos` is the cast time shown; `next` the first event not yet written.
  const p = {
    term: null,
    cast: null,
    header: { cols: 80, rows: 24 },
    total: 0,
    pos: 0,
    next: 0,
    playing: false,
    speed: 1,
    baseWall: 0,
    basePos: 0,
    timer: 0,
    disposed: false,
  };

  function showInfo(rec) {
    if (!rec) return;
    meta.hidden = false;
    setFact("player-user", rec.user);
    setFact("player-login", rec.login);
    setFact("player-node", rec.node_name || rec.node || rec.node_id);
    setFact("player-started", formatTime(rec.started));
    if (rec.truncated) say(truncated, "This recording is truncated: the node cut it at its size cap.");
  }

  function showTime() {
    time.textContent = `${clock(p.pos, true)} / ${clock(p.total, true)}`;
    timeline.value = String(p.pos);
  }

  function setPlaying(on) {
    p.playing = on;
    play.textContent = on ? "Pause" : "Play";
    play.dataset.state = on ? "playing" : p.pos >= p.total && p.total > 0 ? "ended" : "paused";
    play.setAttribute("aria-pressed", on ? "true" : "false");
    window.clearTimeout(p.timer);
    p.timer = 0;
    if (on) {
      p.baseWall = performance.now();
      p.basePos = p.pos;
      tick();
    }
  }

  // Write events [p.next, upTo) in order: output through term.write, resizes queued
  // behind the output before them (write's callback), so the order is the file's.
  function writeUpTo(t) {
    const events = p.cast.events;
    let out = "";
    while (p.next < events.length && events[p.next].at <= t) {
      const ev = events[p.next++];
      if (ev.code === "o") out += ev.data;
      else if (ev.code === "r") {
        const size = parseSize(ev.data);
        if (size) {
          if (out) p.term.write(out);
          out = "";
          p.term.write("", () => !p.disposed && p.term.resize(size.cols, size.rows));
        }
      }
    }
    if (out) p.term.write(out);
  }

  function resetTerminal() {
    // RIS (ESC c) through write, so it is ordered after anything still queued.
    p.term.write("\x1bc", () => !p.disposed && p.term.resize(p.header.cols, p.header.rows));
    p.next = 0;
  }

  function seek(t) {
    const to = Math.min(Math.max(0, t), p.total);
    if (to < p.pos || to === 0) resetTerminal();
    p.pos = to;
    writeUpTo(to);
    p.baseWall = performance.now();
    p.basePos = to;
    showTime();
    if (!p.playing) play.dataset.state = to >= p.total && p.total > 0 ? "ended" : "paused";
  }

  function tick() {
    if (!p.playing || p.disposed) return;
    let pos = p.basePos + ((performance.now() - p.baseWall) / 1000) * p.speed;
    const events = p.cast.events;
    if (skipIdle.checked && p.next < events.length && events[p.next].at - pos > IDLE_CAP) {
      // Jump over the idle stretch, leaving a second of it.
      pos = events[p.next].at - IDLE_CAP;
      p.baseWall = performance.now();
      p.basePos = pos;
    }
    p.pos = Math.min(pos, p.total);
    writeUpTo(p.pos);
    showTime();
    if (p.pos >= p.total) {
      setPlaying(false);
      return;
    }
    const untilNext = p.next < events.length ? ((events[p.next].at - p.pos) / p.speed) * 1000 : TICK_MS;
    p.timer = window.setTimeout(tick, Math.max(4, Math.min(TICK_MS, untilNext)));
  }

  function toggle() {
    if (!p.cast || play.disabled) return;
    if (p.playing) setPlaying(false);
    else {
      if (p.pos >= p.total) seek(0);
      setPlaying(true);
    }
  }

  play.addEventListener("click", toggle);
  speed.addEventListener("change", () => {
    const s = Number(speed.value);
    p.speed = Number.isFinite(s) && s > 0 ? s : 1;
    p.baseWall = performance.now();
    p.basePos = p.pos;
  });
  timeline.addEventListener("input", () => {
    if (p.cast) seek(Number(timeline.value));
  });

  // Space plays/pauses, except where Space means something else (buttons, fields).
  const onKey = (ev) => {
    if (ev.key !== " " || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const target = ev.target;
    if (
      target instanceof Element &&
      target.closest("button, select, a, input:not([type=range]), textarea:not(.xterm-helper-textarea), [contenteditable]")
    ) {
      return;
    }
    ev.preventDefault();
    ev.stopPropagation();
    toggle();
  };
  document.addEventListener("keydown", onKey, true);

  async function start() {
    if (!isSessionId(sessionId)) {
      status.hidden = true;
      say(error, "This is not a session id (a UUID).");
      return;
    }
    showInfo(known.get(sessionId));
    if (!known.has(sessionId)) {
      // Opened directly: the listing has the metadata (best effort; the cast is what counts).
      api("GET", "/recordings", { quiet401: true })
        .then((res) => {
          const rec = (res && Array.isArray(res.recordings) ? res.recordings : []).find(
            (r) => r.session_id === sessionId,
          );
          if (rec && !p.disposed) {
            known.set(sessionId, rec);
            showInfo(rec);
          }
        })
        .catch(() => {});
    }
    let cast;
    try {
      const [response, lib] = await Promise.all([
        fetch(`/v1/webapi/sessions/${sessionId}/recording`, {
          credentials: "same-origin",
          cache: "no-store",
          signal: abort.signal,
          headers: { Accept: "application/x-asciicast, application/json" },
        }),
        loadXterm(),
      ]);
      if (!response.ok) {
        const err = await refusal(response);
        if (err.status === 401) unauthenticated(err);
        throw err;
      }
      cast = await readCast(response, abort.signal, (n) => {
        status.textContent = `Loading the recording… ${bytes(n)}`;
      });
      if (p.disposed) return;
      if (cast.header === null) throw new Error("This is not an asciicast v2 file (no header line).");
      const cols = Math.floor(Number(cast.header.width));
      const rows = Math.floor(Number(cast.header.height));
      p.header = {
        cols: cols > 0 && cols <= 1000 ? cols : 80,
        rows: rows > 0 && rows <= 500 ? rows : 24,
      };
      p.cast = cast;
      p.term = new lib.Terminal({
        cols: p.header.cols,
        rows: p.header.rows,
        disableStdin: true,
        cursorBlink: false,
        convertEol: false,
        scrollback: 2000,
        fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
        fontSize: 14,
        theme: { background: "#0f1419", foreground: "#e6e1cf", cursor: "#f0b429" },
      });
      host.hidden = false;
      p.term.open(host);
    } catch (err) {
      if (p.disposed || (err && err.name === "AbortError")) return;
      status.hidden = true;
      if (err instanceof TooBig) say(error, "The recording is larger than 50 MB and has no header in it.");
      else if (err instanceof ApiError && err.status === 0) say(error, "cannot reach the proxy");
      else say(error, err && err.message ? err.message : String(err));
      return;
    }
    const last = cast.events.length ? cast.events[cast.events.length - 1].at : 0;
    p.total = last;
    timeline.max = String(p.total);
    timeline.disabled = false;
    play.disabled = false;
    status.hidden = true;
    if (cast.events.some((ev) => ev.code === "m")) {
      say(truncated, "This recording is truncated: the node marked where it cut it.");
    }
    if (cast.cut) {
      say(notice, "This recording is larger than 50 MB: only its first 50 MB are played.");
    }
    if (cast.header.timestamp && !meta.querySelector("#player-started").textContent) {
      setFact("player-started", formatTime(cast.header.timestamp));
      meta.hidden = false;
    }
    showTime();
  }

  start();
  return {
    el,
    cleanup: () => {
      p.disposed = true;
      p.playing = false;
      window.clearTimeout(p.timer);
      abort.abort();
      document.removeEventListener("keydown", onKey, true);
      if (p.term) p.term.dispose();
    },
  };
}
