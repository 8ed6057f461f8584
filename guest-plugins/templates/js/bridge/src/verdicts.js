// Constructors for the bridge's `verdict` (interface `isthmus:policy/bridging` in
// wit/policy.wit). A WIT variant is a JavaScript object `{ tag, val }` whose tag is the
// case's WIT name (`login-required`: kebab-case, as in the WIT); `fields` is an array
// of [name, value] pairs of strings. A wrong tag or shape traps at run time, so build
// verdicts here rather than by hand.
//
// Nothing here imports from the component world: the module runs under plain Node.

/** @typedef {import('isthmus:policy/bridging@0.3.0').Verdict} Verdict */
/** @typedef {import('isthmus:policy/http@0.3.0').Fields} Fields */

/**
 * Run the event (or let the connection in). `fields` are added to the context signed
 * into the event, which the Reflex handler reads (`isthmus_reflex`).
 *
 * @param {Fields} [fields]
 * @returns {Verdict}
 */
export function allow(fields = []) {
  return { tag: 'allow', val: fields };
}

/**
 * Do not run the event: the page loads `loginUrl` with the page the event came from as
 * `next`. On connect: Socket.IO's CONNECT_ERROR.
 *
 * @param {string} loginUrl
 * @returns {Verdict}
 */
export function loginRequired(loginUrl) {
  return { tag: 'refuse', val: { tag: 'login-required', val: loginUrl } };
}

/**
 * Do not run the event; the page's console shows `reason`, which is also logged: put
 * nothing secret in it. The connection stays open.
 *
 * @param {string} reason
 * @returns {Verdict}
 */
export function forbidden(reason) {
  return { tag: 'refuse', val: { tag: 'forbidden', val: reason } };
}

/**
 * Close the WebSocket (code 1008) with `reason`. A WebSocket close reason holds at most
 * 123 bytes: keep it short.
 *
 * @param {string} reason
 * @returns {Verdict}
 */
export function close(reason) {
  return { tag: 'close', val: reason };
}
