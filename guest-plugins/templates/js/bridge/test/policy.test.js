// npm test: the bridge's logic under plain Node (no WebAssembly), with fakes of the
// lent resources. Verdicts are compared whole: variant tag and value.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as component from '../src/component.js';
import { globMatches, onConnect, onEvent, setup } from '../src/policy.js';
import { FakeEvent, FakeIdentity, FakeRequest, anonymous, untouchableIdentity, user } from './fakes.js';

const STATE = 'reflex___state____state.shop___state';
const CONFIG = {
  staff_only: [`*____admin_state.*`, `*.delete_product`],
  banned: [`*.debug_dump`],
  public: [`reflex___state____state.hydrate`, `*____login_state.*`],
  login_url: '/accounts/login/',
  allowed_origins: ['https://shop.example.com'],
};

/** @param {string} handler @param {Partial<ConstructorParameters<typeof FakeEvent>[0]>} [init] */
const event = (handler, init = {}) => new FakeEvent({ name: `${STATE}${handler}`, route: '/shop', ...init });

const staff = () => user({ isStaff: true, username: 'sam' });
const mustLogIn = { tag: 'refuse', val: { tag: 'login-required', val: '/accounts/login/' } };
/** @param {string} rule */
const allowedBy = (rule) => ({ tag: 'allow', val: [['rule', rule]] });

describe('setup', () => {
  test('accepts the config and an empty one', () => {
    assert.equal(setup(JSON.stringify(CONFIG)), undefined);
    assert.equal(setup('{}'), undefined);
  });

  test('refuses an unknown key, naming it', () => {
    assert.throws(() => setup('{"staff": ["*"]}'), {
      message: 'config: unknown key `staff` (known keys: staff_only, banned, public, login_url, allowed_origins)',
    });
  });

  test('refuses values of the wrong type, naming the key', () => {
    assert.throws(() => setup('{"staff_only": "*.x"}'), { message: 'staff_only: expected a list of strings' });
    assert.throws(() => setup('{"banned": ["*.x", ""]}'), { message: 'banned[1]: expected a non-empty string' });
    assert.throws(() => setup('{"public": [7]}'), { message: 'public[0]: expected a non-empty string' });
    assert.throws(() => setup('{"allowed_origins": {}}'), { message: 'allowed_origins: expected a list of strings' });
    assert.throws(() => setup('{"login_url": ""}'), { message: 'login_url: expected a non-empty string' });
    assert.throws(() => setup('"x"'), { message: 'config: expected a table' });
  });

  test("the component's setup turns the error into result's err (a thrown payload)", () => {
    assert.throws(() => component.setup('{"staff": []}'), {
      payload: 'config: unknown key `staff` (known keys: staff_only, banned, public, login_url, allowed_origins)',
    });
    assert.throws(() => component.setup('{'), (/** @type {any} */ e) => typeof e.payload === 'string' && e.payload.length > 0);
    assert.equal(component.setup('{}'), undefined);
  });
});

describe('onConnect', () => {
  test('lets anyone in from an allowed origin', () => {
    setup(JSON.stringify(CONFIG));
    const handshake = new FakeRequest({ path: '/_event/', headers: [['origin', 'https://shop.example.com']] });
    assert.deepEqual(onConnect(handshake, anonymous()), { tag: 'allow', val: [] });
    assert.deepEqual(onConnect(handshake, staff()), { tag: 'allow', val: [] });
  });

  test('refuses another origin, or none', () => {
    setup(JSON.stringify(CONFIG));
    const evil = new FakeRequest({ path: '/_event/', headers: [['Origin', 'https://evil.example']] });
    assert.deepEqual(onConnect(evil, staff()), {
      tag: 'refuse', val: { tag: 'forbidden', val: 'origin https://evil.example may not connect' },
    });
    assert.deepEqual(onConnect(new FakeRequest({ path: '/_event/' }), staff()), {
      tag: 'refuse', val: { tag: 'forbidden', val: 'origin (none) may not connect' },
    });
  });

  test('checks no origin when allowed_origins is empty', () => {
    setup('{}');
    assert.deepEqual(onConnect(new FakeRequest({ path: '/_event/' }), untouchableIdentity()), { tag: 'allow', val: [] });
  });
});

describe('onEvent', () => {
  test('closes the connection for a banned handler, whoever sends it, and logs it', (t) => {
    setup(JSON.stringify(CONFIG));
    const log = t.mock.method(console, 'log', () => {});
    const ev = event('____shop_state.debug_dump', { route: '/shop/cart', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    assert.deepEqual(onEvent(ev, untouchableIdentity()), { tag: 'close', val: 'banned event handler' });
    assert.deepEqual(log.mock.calls.map((call) => call.arguments), [[
      `closing: banned handler ${STATE}____shop_state.debug_dump sent from page /shop/cart (traceparent 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01)`,
    ]]);
    assert.deepEqual(onEvent(event('____admin_state.debug_dump'), staff()), { tag: 'close', val: 'banned event handler' });
  });

  test('always runs the identity-change event', () => {
    setup(JSON.stringify(CONFIG));
    const ev = event('____shop_state.on_identity_change', { kind: 'identity-change' });
    assert.deepEqual(onEvent(ev, untouchableIdentity()), allowedBy('identity_change'));
  });

  test('runs staff-only handlers for staff members only', () => {
    setup(JSON.stringify(CONFIG));
    assert.deepEqual(onEvent(event('____admin_state.restock'), staff()), allowedBy('staff_only'));
    assert.deepEqual(onEvent(event('____shop_state.delete_product'), staff()), allowedBy('staff_only'));
    assert.deepEqual(onEvent(event('____admin_state.restock'), user()), {
      tag: 'refuse', val: { tag: 'forbidden', val: `${STATE}____admin_state.restock is for staff members` },
    });
    assert.deepEqual(onEvent(event('____admin_state.restock'), anonymous()), mustLogIn);
  });

  test('does not trust a staff flag without a login', () => {
    setup(JSON.stringify(CONFIG));
    assert.deepEqual(onEvent(event('____admin_state.restock'), anonymous()), mustLogIn);
    const odd = new FakeIdentity({ authenticated: false, isStaff: true });
    assert.deepEqual(onEvent(event('____admin_state.restock'), odd), mustLogIn);
  });

  test('runs everything else for logged-in users, uploads included', () => {
    setup(JSON.stringify(CONFIG));
    assert.deepEqual(onEvent(event('____shop_state.add_to_cart'), user()), allowedBy('authenticated'));
    assert.deepEqual(onEvent(event('____shop_state.upload_avatar', { kind: 'upload' }), user()), allowedBy('authenticated'));
  });

  test('runs public handlers for anonymous visitors', () => {
    setup(JSON.stringify(CONFIG));
    assert.deepEqual(onEvent(new FakeEvent({ name: 'reflex___state____state.hydrate' }), anonymous()), allowedBy('public'));
    assert.deepEqual(onEvent(event('____login_state.submit', { route: '/login' }), anonymous()), allowedBy('public'));
  });

  test('sends anonymous visitors to the login page for anything else', () => {
    setup(JSON.stringify(CONFIG));
    assert.deepEqual(onEvent(event('____shop_state.add_to_cart'), anonymous()), mustLogIn);
    // The page claims the route: a public-looking page grants nothing.
    assert.deepEqual(onEvent(event('____shop_state.add_to_cart', { route: '/login' }), anonymous()), mustLogIn);
    setup('{"login_url": "/admin/login/"}');
    assert.deepEqual(onEvent(event('____shop_state.upload_avatar', { kind: 'upload' }), anonymous()), {
      tag: 'refuse', val: { tag: 'login-required', val: '/admin/login/' },
    });
  });
});

describe('globMatches', () => {
  test('matches whole names, `*` across dots', () => {
    assert.equal(globMatches('*.delete_product', `${STATE}____shop_state.delete_product`), true);
    assert.equal(globMatches('*.delete_product', `${STATE}____shop_state.delete_products`), false);
    assert.equal(globMatches('state.a.*', 'state.a'), false);
    assert.equal(globMatches('state.a.*', 'state.a.'), true);
    assert.equal(globMatches('state.a.*', 'xstate.a.b'), false);
    assert.equal(globMatches('a*b*c', 'aXbYbZc'), true);
    assert.equal(globMatches('a*b*c', 'aXbYbZ'), false);
    assert.equal(globMatches('**', ''), true);
    assert.equal(globMatches('exact', 'exact'), true);
    assert.equal(globMatches('exact', 'Exact'), false);
  });

  test('stays fast on a long name that almost matches', () => {
    const name = 'a'.repeat(4096);
    const started = performance.now();
    assert.equal(globMatches('*a*a*a*a*a*b', name), false);
    assert.ok(performance.now() - started < 1000);
  });
});
