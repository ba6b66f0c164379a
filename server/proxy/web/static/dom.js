// Building DOM without markup strings: every piece of text goes in through a text node or
// textContent, never innerHTML, because names, labels and audit fields come from users.

/**
 * h("button", {class: "x", dataset: {node: n}, onclick: fn, disabled: true}, "text", child)
 * Attributes: "class" -> className; "dataset" -> data-*; "on<event>" functions ->
 * addEventListener; value/checked/disabled/hidden/selected/readOnly -> properties;
 * anything else -> setAttribute (skipped when null/undefined/false).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (PROPS.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

const PROPS = new Set(["value", "checked", "disabled", "hidden", "selected", "readOnly"]);

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace el's children (text or nodes) */
export function setChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Show a message (or clear it with "") in an element that is hidden when empty. */
export function say(el, message) {
  el.textContent = message || "";
  el.hidden = !message;
}

function pad(n) {
  return String(n).padStart(2, "0");
}

/** Epoch seconds as local "YYYY-MM-DD hh:mm:ss". */
export function formatTime(epoch) {
  if (!epoch && epoch !== 0) return "";
  const d = new Date(Number(epoch) * 1000);
  if (Number.isNaN(d.getTime())) return String(epoch);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** "in 3h 12m" / "5m ago" relative to now. */
export function relativeTime(epoch) {
  const delta = Math.round(Number(epoch) - Date.now() / 1000);
  const abs = Math.abs(delta);
  let text;
  if (abs < 60) text = `${abs}s`;
  else if (abs < 3600) text = `${Math.floor(abs / 60)}m`;
  else if (abs < 86400) text = `${Math.floor(abs / 3600)}h ${Math.floor((abs % 3600) / 60)}m`;
  else text = `${Math.floor(abs / 86400)}d ${Math.floor((abs % 86400) / 3600)}h`;
  return delta >= 0 ? `in ${text}` : `${text} ago`;
}

/** Parse "k=v, k2=v2" (commas or spaces) into [[k, v], ...]; throws on a term without "=". */
export function parseLabels(text) {
  const out = [];
  for (const term of text.split(/[\s,]+/)) {
    if (!term) continue;
    const eq = term.indexOf("=");
    if (eq <= 0) throw new Error(`label filter "${term}" is not key=value`);
    out.push([term.slice(0, eq), term.slice(eq + 1)]);
  }
  return out;
}

/** Split "a, b c" into ["a", "b", "c"]. */
export function parseList(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

/** Chips for a {key: value} map. */
export function labelChips(labels) {
  const pairs = Array.isArray(labels)
    ? labels.map((l) => String(l).split(/=(.*)/s, 2))
    : Object.entries(labels && typeof labels === "object" ? labels : {});
  const entries = pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return h(
    "span",
    { class: "labels" },
    entries.map(([k, v = ""]) => h("span", { class: "label", dataset: { key: k } }, `${k}=${v}`)),
  );
}

/** A copy-to-clipboard box: a read-only field with the value and a Copy button. */
export function copyBox(id, value, copyId) {
  // A read-only textarea, so a long join command shows whole (wrapped) instead of cut off.
  const field = h("textarea", {
    id,
    class: "copy-field",
    readOnly: true,
    rows: String(Math.min(4, Math.max(1, Math.ceil(String(value).length / 90)))),
    spellcheck: "false",
  });
  field.value = value;
  const status = h("span", { class: "copy-status", role: "status" });
  const button = h(
    "button",
    {
      type: "button",
      id: copyId,
      class: "secondary",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(value);
          status.textContent = "Copied";
        } catch {
          field.select();
          status.textContent = "Press Ctrl+C to copy";
        }
      },
    },
    "Copy",
  );
  field.addEventListener("focus", () => field.select());
  return h("div", { class: "copy-box" }, field, button, status);
}

/** Ask for confirmation with the page's <dialog id="confirm-dialog">; resolves true/false. */
export function confirmAction(message, okText = "Remove") {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-message").textContent = message;
  document.getElementById("confirm-ok").textContent = okText;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}
