// The router's logic. It imports nothing from the component world (only ./decisions.js),
// so `npm test` runs it under plain Node with fakes of the request and the identity;
// src/component.js is what the gateway calls.
//
// Rules, first match wins (paths are the gateway's canonical paths; a path is "under"
// a prefix P when it is P or starts with P + "/", so /administrator is not under /admin):
//   1. under /staff: anonymous visitors must log in; logged-in users who are not staff
//      are refused (403); staff members pass (the next router, e.g. the Reflex app,
//      serves the page). Checked first so that no prefix below can bypass it.
//   2. under /admin or under one of `prefixes`: forward to `upstream` (Django).
//   3. anything else: pass, the next router decides.
//
// Config (the plugin's `config` table in isthmus.toml, handed to setup as JSON); every
// key is optional and an unknown key is an error naming it:
//   prefixes   list of path prefixes Django answers besides /admin   default []
//   upstream   name of the Django upstream in [upstreams]            default "django"
//   login_url  where anonymous visitors of /staff are sent           default "/accounts/login/"

import { forward, forbidden, loginRequired, pass } from './decisions.js';

/** @typedef {import('isthmus:policy/http@0.3.0').Request} Request */
/** @typedef {import('isthmus:policy/users@0.3.0').Identity} Identity */
/** @typedef {import('isthmus:policy/routing@0.3.0').Decision} Decision */
/** @typedef {import('isthmus:policy/routing@0.3.0').Needs} Needs */

/** @typedef {{ prefixes: string[], upstream: string, loginUrl: string }} Config */

const ADMIN = '/admin';
const STAFF_AREA = '/staff';

/**
 * The config of this instance, set by `setup`. Globals survive between the calls of
 * one instance, but the gateway may replace the instance at any time: keep nothing
 * here that a fresh instance could not rebuild from the config.
 *
 * @type {Config}
 */
let config = parseConfig({});

/**
 * Called once per instance, before any `route`. Throws an Error naming the offending
 * key when the config is invalid; the gateway then shows that text to the operator
 * and does not use the plugin.
 *
 * @param {string} configJson the plugin's `config` table as JSON (`{}` when absent)
 * @returns {Needs}
 */
export function setup(configJson) {
  config = parseConfig(JSON.parse(configJson));
  // `route` reads `who`, so ask the gateway to resolve the Django user of each request
  // (one cached lookup per session). Without this, every method of `who` traps.
  return { identity: true };
}

/**
 * Decides where one request goes. `req` and `who` are lent for this call only: ask
 * them for what you need, and do not keep them.
 *
 * @param {Request} req
 * @param {Identity} who
 * @returns {Decision}
 */
export function route(req, who) {
  const path = req.path();

  if (isUnder(path, STAFF_AREA)) {
    if (!who.authenticated()) return loginRequired(config.loginUrl);
    if (!who.isStaff()) return forbidden('the staff area is for staff members');
    return pass();
  }

  if (isUnder(path, ADMIN) || config.prefixes.some((prefix) => isUnder(path, prefix))) {
    return forward(config.upstream);
  }

  return pass();
}

/**
 * Whether `path` is `prefix` itself or below it.
 *
 * @param {string} path
 * @param {string} prefix
 */
function isUnder(path, prefix) {
  return path === prefix || path.startsWith(prefix + '/');
}

/**
 * Validates the config object; every error names the key.
 *
 * @param {unknown} raw
 * @returns {Config}
 */
export function parseConfig(raw) {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Error('config: expected a table');
  }
  const known = ['prefixes', 'upstream', 'login_url'];
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) {
      throw new Error(`config: unknown key \`${key}\` (known keys: ${known.join(', ')})`);
    }
  }
  const { prefixes = [], upstream = 'django', login_url: loginUrl = '/accounts/login/' } =
    /** @type {Record<string, unknown>} */ (raw);

  if (!Array.isArray(prefixes)) throw new Error('prefixes: expected a list of strings');
  prefixes.forEach((prefix, i) => {
    if (typeof prefix !== 'string') throw new Error(`prefixes[${i}]: expected a string`);
    if (!prefix.startsWith('/') || prefix === '/' || prefix.endsWith('/')) {
      throw new Error(`prefixes[${i}]: \`${prefix}\` must start with "/" and not end with "/" (write "/api", not "/api/")`);
    }
  });
  if (typeof upstream !== 'string' || upstream === '') {
    throw new Error('upstream: expected a non-empty string');
  }
  if (typeof loginUrl !== 'string' || loginUrl === '') {
    throw new Error('login_url: expected a non-empty string');
  }
  return { prefixes, upstream, loginUrl };
}
