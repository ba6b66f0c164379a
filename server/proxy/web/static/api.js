// The JSON API client: same-origin fetch, the CSRF header on every state-changing request,
// errors turned into ApiError carrying the server's {"error": {"type", "message"}}.

export class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

let onUnauthenticated = () => {};

/** Called when any request (other than the login itself) comes back 401. */
export function setUnauthenticatedHandler(fn) {
  onUnauthenticated = fn;
}

/** Report a 401 that came some other way than api() (a streamed download). */
export function unauthenticated(error) {
  onUnauthenticated(error);
}

/**
 * api("GET", "/nodes", {params: [["label", "a=b"]]}) or api("POST", "/users", {body: {...}}).
 * Resolves the parsed JSON (null for 204); rejects with ApiError.
 */
export async function api(method, path, { body, params, quiet401 = false } = {}) {
  const url = new URL(`/v1/webapi${path}`, window.location.origin);
  for (const [key, value] of params || []) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.append(key, value);
  }
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-Mezite-CSRF"] = "1";
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch {
    throw new ApiError(0, "ConnectionProblem", "cannot reach the proxy");
  }
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = data && typeof data === "object" && data.error ? data.error : {};
    const error = new ApiError(
      res.status,
      typeof err.type === "string" ? err.type : "Error",
      typeof err.message === "string" && err.message ? err.message : `HTTP ${res.status}`,
    );
    if (res.status === 401 && !quiet401) onUnauthenticated(error);
    throw error;
  }
  return data;
}

/** "/users/" + the name, escaped as one path segment. */
export function seg(name) {
  return encodeURIComponent(name);
}
