// The component's entry point: build.mjs hands this module to componentize-js, which
// turns its exports into the exports of the WIT world `router` (wit/policy.wit):
//
//   export setup: func(config-json: string) -> result<needs, string>;
//   export route: func(req: borrow<request>, who: borrow<identity>) -> decision;
//
// WIT names become camelCase JavaScript names (`on-connect` would be `onConnect`).
// The logic lives in ./policy.js, which `npm test` runs under plain Node.

import * as policy from './policy.js';

/** @typedef {import('isthmus:policy/routing@0.3.0').Needs} Needs */

/**
 * `result<needs, string>`: returning a value is `ok`. For `err`, componentize-js takes
 * the thrown value's own `payload` property, or the thrown value itself when it is not
 * an Error; an Error thrown as it is traps instead (the gateway then logs a trap, not
 * your message). So every exception of setup becomes `err` with its message here.
 *
 * @param {string} configJson
 * @returns {Needs}
 */
export function setup(configJson) {
  try {
    return policy.setup(configJson);
  } catch (e) {
    throw { payload: e instanceof Error ? e.message : String(e) };
  }
}

// An exception thrown by `route` traps: the gateway discards the instance and applies
// the plugin's failure mode (`fail = "closed"`: 503). Its message goes to the log.
export const route = policy.route;
