// npm test: the router's logic under plain Node (no WebAssembly), with fakes of the
// lent resources. Decisions are compared whole: variant tag and value.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as component from '../src/component.js';
import { route, setup } from '../src/policy.js';
import { FakeRequest, anonymous, untouchableIdentity, user } from './fakes.js';

const CONFIG = { prefixes: ['/api', '/webhooks'], login_url: '/accounts/login/' };

/** @param {string} path @param {string} [method] */
const get = (path, method = 'GET') => new FakeRequest({ method, path, headers: [['cookie', 'sessionid=abc']] });

const toDjango = { tag: 'forward', val: { upstream: 'django', path: undefined, setHeaders: [], removeHeaders: [] } };
const passed = { tag: 'pass' };
const mustLogIn = { tag: 'refuse', val: { tag: 'login-required', val: '/accounts/login/' } };
const staffOnly = { tag: 'refuse', val: { tag: 'forbidden', val: 'the staff area is for staff members' } };

describe('setup', () => {
  test('declares that route needs the identity', () => {
    assert.deepEqual(setup(JSON.stringify(CONFIG)), { identity: true });
  });

  test('accepts an empty config', () => {
    assert.deepEqual(setup('{}'), { identity: true });
  });

  test('refuses an unknown key, naming it', () => {
    assert.throws(() => setup('{"prefix": ["/api"]}'), {
      message: 'config: unknown key `prefix` (known keys: prefixes, upstream, login_url)',
    });
  });

  test('refuses a prefix that could never match', () => {
    assert.throws(() => setup('{"prefixes": ["/api", "api/"]}'), {
      message: 'prefixes[1]: `api/` must start with "/" and not end with "/" (write "/api", not "/api/")',
    });
    assert.throws(() => setup('{"prefixes": ["/"]}'), /^Error: prefixes\[0\]: `\/` must start/);
  });

  test('refuses values of the wrong type', () => {
    assert.throws(() => setup('{"prefixes": "/api"}'), { message: 'prefixes: expected a list of strings' });
    assert.throws(() => setup('{"prefixes": [1]}'), { message: 'prefixes[0]: expected a string' });
    assert.throws(() => setup('{"upstream": ""}'), { message: 'upstream: expected a non-empty string' });
    assert.throws(() => setup('{"login_url": false}'), { message: 'login_url: expected a non-empty string' });
    assert.throws(() => setup('[]'), { message: 'config: expected a table' });
  });

  test("the component's setup turns the error into result's err (a thrown payload)", () => {
    assert.throws(() => component.setup('{"prefix": []}'), {
      payload: 'config: unknown key `prefix` (known keys: prefixes, upstream, login_url)',
    });
    assert.throws(() => component.setup('not json'), (/** @type {any} */ e) => typeof e.payload === 'string' && e.payload.length > 0);
    assert.deepEqual(component.setup('{}'), { identity: true });
  });
});

describe('route', () => {
  test('sends /admin and everything under it to Django, whoever asks', () => {
    setup(JSON.stringify(CONFIG));
    for (const path of ['/admin', '/admin/', '/admin/shop/product/1/change/']) {
      assert.deepEqual(route(get(path), anonymous()), toDjango, path);
    }
    assert.deepEqual(route(get('/admin/', 'POST'), user()), toDjango);
  });

  test('sends the configured prefixes to Django without looking at the user', () => {
    setup(JSON.stringify(CONFIG));
    assert.deepEqual(route(get('/api/products'), untouchableIdentity()), toDjango);
    assert.deepEqual(route(get('/webhooks'), untouchableIdentity()), toDjango);
  });

  test('honours `upstream`', () => {
    setup('{"upstream": "backend"}');
    assert.deepEqual(route(get('/admin/'), anonymous()), {
      tag: 'forward', val: { upstream: 'backend', path: undefined, setHeaders: [], removeHeaders: [] },
    });
  });

  test('matches whole segments only', () => {
    setup(JSON.stringify(CONFIG));
    assert.deepEqual(route(get('/administrator'), anonymous()), passed);
    assert.deepEqual(route(get('/apis'), anonymous()), passed);
    assert.deepEqual(route(get('/staffroom'), anonymous()), passed);
  });

  test('without prefixes, only /admin goes to Django', () => {
    setup('{}');
    assert.deepEqual(route(get('/api/products'), anonymous()), passed);
  });

  test('sends anonymous visitors of /staff to the login page', () => {
    setup(JSON.stringify(CONFIG));
    assert.deepEqual(route(get('/staff'), anonymous()), mustLogIn);
    assert.deepEqual(route(get('/staff/reports'), anonymous()), mustLogIn);
    setup('{"login_url": "/admin/login/"}');
    assert.deepEqual(route(get('/staff/'), anonymous()), {
      tag: 'refuse', val: { tag: 'login-required', val: '/admin/login/' },
    });
  });

  test('refuses /staff to logged-in users who are not staff', () => {
    setup(JSON.stringify(CONFIG));
    assert.deepEqual(route(get('/staff/reports'), user()), staffOnly);
    // As with Django's staff_member_required, a superuser needs is_staff too.
    assert.deepEqual(route(get('/staff/reports'), user({ isSuperuser: true })), staffOnly);
  });

  test('lets staff members through /staff to the next router', () => {
    setup(JSON.stringify(CONFIG));
    assert.deepEqual(route(get('/staff/reports'), user({ isStaff: true })), passed);
  });

  test('guards /staff even when it is also a Django prefix', () => {
    setup('{"prefixes": ["/staff"]}');
    assert.deepEqual(route(get('/staff/x'), anonymous()), mustLogIn);
    assert.deepEqual(route(get('/staff/x'), user({ isStaff: true })), passed);
  });

  test('passes everything else', () => {
    setup(JSON.stringify(CONFIG));
    assert.deepEqual(route(get('/'), untouchableIdentity()), passed);
    assert.deepEqual(route(get('/shop/cart'), untouchableIdentity()), passed);
  });
});

describe('fakes', () => {
  test('behave like the gateway', () => {
    const req = new FakeRequest({ headers: [['Cookie', 'a=1; sessionid=old'], ['cookie', 'sessionid=new'], ['Accept', 'a'], ['accept', 'b']] });
    assert.equal(req.header('COOKIE'), 'a=1; sessionid=old; sessionid=new');
    assert.equal(req.header('accept'), 'a, b');
    assert.equal(req.header('x-missing'), undefined);
    assert.equal(req.cookie('sessionid'), 'new');
    assert.equal(req.cookie('nope'), undefined);
    assert.equal(anonymous().userId(), undefined);
    assert.equal(user({ groups: ['editors'] }).inGroup('editors'), true);
  });
});
