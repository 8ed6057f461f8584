// The component's entry point: build.mjs hands this module to componentize-js, which
// turns its exports into the exports of the WIT world `bridge` (wit/policy.wit):
//
//   export setup: func(config-json: string) -> result<_, string>;
//   export on-connect: func(handshake: borrow<request>, who: borrow<identity>) -> verdict;
//   export on-event: func(ev: borrow<event>, who: borrow<identity>) -> verdict;
//
// WIT names become camelCase JavaScript names (`on-connect` is `onConnect`).
// The logic lives in ./policy.js, which `npm test` runs under plain Node.

import * as policy from './policy.js';

/**
 * `result<_, string>`: returning is `ok`. For `err`, componentize-js takes the thrown
 * value's own `payload` property, or the thrown value itself when it is not an Error;
 * an Error thrown as it is traps instead (the gateway then logs a trap, not your
 * message). So every exception of setup becomes `err` with its message here.
 *
 * @param {string} configJson
 * @returns {void}
 */
export function setup(configJson) {
  try {
    policy.setup(configJson);
  } catch (e) {
    throw { payload: e instanceof Error ? e.message : String(e) };
  }
}

// An exception thrown by these traps: the gateway discards the instance and applies the
// plugin's failure mode (`fail = "closed"`: a refused event). Its message goes to the log.
export const onConnect = policy.onConnect;
export const onEvent = policy.onEvent;
