// Constructors for the router's `decision` (interface `isthmus:policy/routing` in
// wit/policy.wit). A WIT variant is a JavaScript object `{ tag, val }` whose tag is the
// case's WIT name (`serve-static`, `login-required`: kebab-case, as in the WIT); a WIT
// record is an object with camelCase fields (`set-headers` is `setHeaders`); an
// `option` is a value or `undefined`; `list<u8>` is a Uint8Array. A wrong tag or a
// missing field traps at run time, so build decisions here rather than by hand.
//
// Nothing here imports from the component world: the module runs under plain Node.

/** @typedef {import('isthmus:policy/routing@0.3.0').Decision} Decision */
/** @typedef {import('isthmus:policy/http@0.3.0').Fields} Fields */

/**
 * Send the request to the upstream named `upstream` (a name from `[upstreams]`).
 *
 * @param {string} upstream
 * @param {{ path?: string, setHeaders?: Fields, removeHeaders?: string[] }} [options]
 *   `path`: replacement origin-form path (may carry `?query`); left out, the
 *   canonical path and query are kept. `setHeaders` replace any header of the same
 *   name on the forwarded request; `removeHeaders` are removed from it.
 * @returns {Decision}
 */
export function forward(upstream, { path, setHeaders = [], removeHeaders = [] } = {}) {
  return { tag: 'forward', val: { upstream, path, setHeaders, removeHeaders } };
}

/**
 * Serve the request path from the `[static]` mount named `mount`.
 *
 * @param {string} mount
 * @returns {Decision}
 */
export function serveStatic(mount) {
  return { tag: 'serve-static', val: mount };
}

/**
 * Answer directly, without any upstream. `status` must be 100..=599 and the body at
 * most 1 MiB, or the gateway counts the call as a policy failure.
 *
 * @param {number} status
 * @param {string | Uint8Array} [body]
 * @param {Fields} [headers]
 * @returns {Decision}
 */
export function reply(status, body = '', headers = []) {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  return { tag: 'reply', val: { status, headers, body: bytes } };
}

/**
 * Refuse: the client is redirected (302) to `loginUrl` with `next=<path and query>`
 * appended, as Django's `redirect_to_login` does.
 *
 * @param {string} loginUrl
 * @returns {Decision}
 */
export function loginRequired(loginUrl) {
  return { tag: 'refuse', val: { tag: 'login-required', val: loginUrl } };
}

/**
 * Refuse with 403 Forbidden. The reason is logged: put nothing secret in it.
 *
 * @param {string} reason
 * @returns {Decision}
 */
export function forbidden(reason) {
  return { tag: 'refuse', val: { tag: 'forbidden', val: reason } };
}

/**
 * No opinion: the next router in the chain decides (after the last one, 404).
 *
 * @returns {Decision}
 */
export function pass() {
  return { tag: 'pass' };
}
