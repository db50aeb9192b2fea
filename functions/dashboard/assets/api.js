// The API client and the session. The key lives in this tab's sessionStorage (and in memory):
// never in a URL, never in a log, gone when the tab closes or on sign-out.

const STORAGE_KEY = 'edgecert.session';

/** An API error: the status, the API's code and its message, verbatim. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

function load() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null');
    if (stored && typeof stored.key === 'string' && (stored.role === 'account' || stored.role === 'admin')) {
      return stored;
    }
  } catch {
    // A damaged entry is as good as none.
  }
  return null;
}

let current = load();

/** The signed-in session: `{key, role}` or null. */
export function session() {
  return current;
}

export function signIn(key, role) {
  current = { key, role };
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(current));
}

export function signOut() {
  current = null;
  sessionStorage.removeItem(STORAGE_KEY);
}

let onUnauthorized = () => {};

/** What to do when the API no longer accepts the session's key (401). */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/**
 * Calls the API on this origin. Resolves with the JSON body (null for 204); rejects with an
 * ApiError carrying the API's message as it sent it.
 */
export async function call(method, path, body, key = current && current.key) {
  const headers = { Accept: 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (failure) {
    throw new ApiError(0, 'network_error', `The API could not be reached (${failure.message}).`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = data && data.error;
    // API Gateway answers some refusals itself, as {"message": "..."}.
    const message = (error && error.message) || (data && data.message) || `The API answered HTTP ${response.status}.`;
    const failure = new ApiError(response.status, (error && error.code) || `http_${response.status}`, message);
    if (response.status === 401 && key && current && key === current.key) onUnauthorized(failure);
    throw failure;
  }
  return data;
}

/** Every item of a paginated list (`{<field>: [...], next_cursor}`), up to `maxPages` pages. */
export async function listAll(path, field, maxPages = 20) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < maxPages; page += 1) {
    const separator = path.includes('?') ? '&' : '?';
    const query = `${separator}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const data = await call('GET', path + query);
    items.push(...(data[field] || []));
    cursor = data.next_cursor;
    if (!cursor) break;
  }
  return items;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body);
export const patch = (path, body) => call('PATCH', path, body);
export const del = (path) => call('DELETE', path);
