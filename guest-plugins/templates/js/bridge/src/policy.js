// The bridge's logic. It imports nothing from the component world (only ./verdicts.js),
// so `npm test` runs it under plain Node with fakes of the handshake, the identity and
// the event; src/component.js is what the gateway calls.
//
// onConnect (the WebSocket handshake): refused (forbidden) when `allowed_origins` is set
// and the handshake's Origin header is not in it; otherwise allowed, for anonymous
// visitors too: each event is judged on its own.
//
// onEvent, first match wins:
//   1. a handler matching `banned`: close the socket (and log where it came from);
//   2. the identity-change event the gateway sends after a login or logout: allow, so
//      the page can follow the new identity;
//   3. a handler matching `staff_only`: allow for staff members; refuse logged-in users
//      who are not staff (forbidden) and anonymous visitors (login required);
//   4. a logged-in user: allow;
//   5. a handler matching `public`: allow, for anonymous visitors too;
//   6. anything else: the visitor must log in.
// Allowed events carry `rule` (which of the above let them through) in their context.
//
// Handler patterns are globs over the full Reflex handler name, e.g.
// `reflex___state____state.shop___state____admin_state.delete_all`: `*` matches any run
// of characters (dots included), every other character matches itself, and the
// pattern must match the whole name. `*____admin_state.*` is every handler of any
// state class named AdminState.
//
// Trust: the handler name decides what runs, so rules are made of names and of the
// identity. The page sends `route`, `query` and the payload, and may lie about them:
// use them to log or to refuse, never to allow.
//
// Config (the plugin's `config` table, handed to setup as JSON); every key is optional
// and an unknown key is an error naming it:
//   staff_only       handler globs only staff members may run          default []
//   banned           handler globs that close the connection          default []
//   public           handler globs anonymous visitors may run         default []
//   login_url        where anonymous visitors are sent                default "/accounts/login/"
//   allowed_origins  origins (scheme://host[:port]) that may connect; [] for any   default []

import { allow, close, forbidden, loginRequired } from './verdicts.js';

/** @typedef {import('isthmus:policy/http@0.3.0').Request} Request */
/** @typedef {import('isthmus:policy/users@0.3.0').Identity} Identity */
/** @typedef {import('isthmus:policy/bridging@0.3.0').Event} Event */
/** @typedef {import('isthmus:policy/bridging@0.3.0').Verdict} Verdict */

/**
 * @typedef {{ staffOnly: string[], banned: string[], public: string[], loginUrl: string,
 *   allowedOrigins: string[] }} Config
 */

/**
 * The config of this instance, set by `setup`. Globals survive between the calls of
 * one instance, but the gateway may replace the instance at any time: keep nothing
 * here that a fresh instance could not rebuild from the config.
 *
 * @type {Config}
 */
let config = parseConfig({});

/**
 * Called once per instance, before any other call. Throws an Error naming the
 * offending key when the config is invalid; the gateway then shows that text to the
 * operator and does not use the plugin.
 *
 * @param {string} configJson the plugin's `config` table as JSON (`{}` when absent)
 * @returns {void}
 */
export function setup(configJson) {
  config = parseConfig(JSON.parse(configJson));
}

/**
 * The WebSocket handshake. `handshake` and `who` are lent for this call only.
 *
 * @param {Request} handshake
 * @param {Identity} who
 * @returns {Verdict}
 */
export function onConnect(handshake, who) {
  if (config.allowedOrigins.length > 0) {
    const origin = handshake.header('origin');
    if (origin === undefined || !config.allowedOrigins.includes(origin)) {
      return forbidden(`origin ${origin ?? '(none)'} may not connect`);
    }
  }
  return allow();
}

/**
 * One Reflex event. `ev` and `who` are lent for this call only: ask them for what you
 * need, and do not keep them.
 *
 * @param {Event} ev
 * @param {Identity} who
 * @returns {Verdict}
 */
export function onEvent(ev, who) {
  const name = ev.name();

  if (matchesAny(config.banned, name)) {
    // stdout goes to the gateway's log under the plugin's name, one line per line.
    console.log(`closing: banned handler ${name} sent from page ${ev.route()} (traceparent ${ev.traceparent() ?? '-'})`);
    return close('banned event handler');
  }

  if (ev.kind() === 'identity-change') return allow([['rule', 'identity_change']]);

  if (matchesAny(config.staffOnly, name)) {
    if (who.authenticated() && who.isStaff()) return allow([['rule', 'staff_only']]);
    if (who.authenticated()) return forbidden(`${name} is for staff members`);
    return loginRequired(config.loginUrl);
  }

  if (who.authenticated()) return allow([['rule', 'authenticated']]);

  if (matchesAny(config.public, name)) return allow([['rule', 'public']]);

  return loginRequired(config.loginUrl);
}

/**
 * @param {string[]} patterns
 * @param {string} name
 */
function matchesAny(patterns, name) {
  return patterns.some((pattern) => globMatches(pattern, name));
}

/**
 * Whether `pattern` matches the whole of `name`, `*` matching any run of characters.
 * Iterative (backtracks only to the last `*`): at worst pattern length × name length
 * steps, never exponential, so a long name cannot blow the call's deadline.
 *
 * @param {string} pattern
 * @param {string} name
 */
export function globMatches(pattern, name) {
  let p = 0;
  let n = 0;
  let star = -1; // position of the last `*` seen in pattern
  let resume = 0; // where in name that `*` match would resume
  while (n < name.length) {
    if (pattern[p] === '*') {
      star = p++;
      resume = n;
    } else if (p < pattern.length && pattern[p] === name[n]) {
      p++;
      n++;
    } else if (star !== -1) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
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
  const known = ['staff_only', 'banned', 'public', 'login_url', 'allowed_origins'];
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) {
      throw new Error(`config: unknown key \`${key}\` (known keys: ${known.join(', ')})`);
    }
  }
  const {
    staff_only: staffOnly = [],
    banned = [],
    public: publicHandlers = [],
    login_url: loginUrl = '/accounts/login/',
    allowed_origins: allowedOrigins = [],
  } = /** @type {Record<string, unknown>} */ (raw);
  if (typeof loginUrl !== 'string' || loginUrl === '') {
    throw new Error('login_url: expected a non-empty string');
  }
  return {
    staffOnly: stringList('staff_only', staffOnly),
    banned: stringList('banned', banned),
    public: stringList('public', publicHandlers),
    loginUrl,
    allowedOrigins: stringList('allowed_origins', allowedOrigins),
  };
}

/**
 * @param {string} key
 * @param {unknown} value
 * @returns {string[]}
 */
function stringList(key, value) {
  if (!Array.isArray(value)) throw new Error(`${key}: expected a list of strings`);
  value.forEach((item, i) => {
    if (typeof item !== 'string' || item === '') throw new Error(`${key}[${i}]: expected a non-empty string`);
  });
  return value;
}
