// Fakes of the resources the gateway lends a call (interfaces `http` and `users` of
// wit/policy.wit), with the gateway's semantics, so the policy runs under plain Node.
// Each method has the name and the return type of the JavaScript binding: camelCase
// names, `undefined` for a WIT `none`, arrays of [name, value] for `fields`.

/** @typedef {import('isthmus:policy/http@0.3.0').Fields} Fields */

/**
 * An incoming request. Header names are matched in any case; several fields of one
 * name are joined with ", " ("; " for cookie), as the gateway does.
 */
export class FakeRequest {
  /**
   * @param {{ method?: string, scheme?: string, authority?: string, path?: string,
   *   query?: string, headers?: Fields, clientIp?: string, traceparent?: string }} [init]
   */
  constructor({
    method = 'GET',
    scheme = 'https',
    authority = 'example.test',
    path = '/',
    query = '',
    headers = [],
    clientIp = '203.0.113.7',
    traceparent = undefined,
  } = {}) {
    this.fields = {
      method, scheme, authority, path, query, clientIp, traceparent,
      headers: headers.map(([name, value]) => /** @type {[string, string]} */ ([name.toLowerCase(), value])),
    };
  }

  method() { return this.fields.method; }
  scheme() { return this.fields.scheme; }
  authority() { return this.fields.authority; }
  path() { return this.fields.path; }
  query() { return this.fields.query; }

  /** @param {string} name */
  header(name) {
    const lower = name.toLowerCase();
    const values = this.fields.headers.filter(([n]) => n === lower).map(([, v]) => v);
    return values.length === 0 ? undefined : values.join(lower === 'cookie' ? '; ' : ', ');
  }

  /** @returns {Fields} */
  headers() { return this.fields.headers.map(([n, v]) => [n, v]); }

  /** The last of duplicates, as Django reads it. @param {string} name */
  cookie(name) {
    let found;
    for (const pair of (this.header('cookie') ?? '').split(';')) {
      const eq = pair.indexOf('=');
      if (eq !== -1 && pair.slice(0, eq).trim() === name) found = pair.slice(eq + 1).trim();
    }
    return found;
  }

  clientIp() { return this.fields.clientIp; }
  traceparent() { return this.fields.traceparent; }
  /** The bindings' resource classes have it; a policy never calls it on a lent handle. */
  [Symbol.dispose]() {}
}

/**
 * A Django user. `new FakeIdentity()` is an anonymous visitor: not authenticated, no
 * user id, empty strings and lists.
 */
export class FakeIdentity {
  /**
   * @param {{ authenticated?: boolean, userId?: string, username?: string, email?: string,
   *   firstName?: string, lastName?: string, isStaff?: boolean, isSuperuser?: boolean,
   *   groups?: string[], permissions?: string[], session?: Fields }} [init]
   */
  constructor({
    authenticated = false,
    userId = undefined,
    username = '',
    email = '',
    firstName = '',
    lastName = '',
    isStaff = false,
    isSuperuser = false,
    groups = [],
    permissions = [],
    session = [],
  } = {}) {
    this.fields = {
      authenticated, userId, username, email, firstName, lastName, isStaff, isSuperuser,
      groups, permissions, session,
    };
  }

  authenticated() { return this.fields.authenticated; }
  userId() { return this.fields.userId; }
  username() { return this.fields.username; }
  email() { return this.fields.email; }
  firstName() { return this.fields.firstName; }
  lastName() { return this.fields.lastName; }
  isStaff() { return this.fields.isStaff; }
  isSuperuser() { return this.fields.isSuperuser; }
  groups() { return [...this.fields.groups]; }
  /** @param {string} name */
  inGroup(name) { return this.fields.groups.includes(name); }
  permissions() { return [...this.fields.permissions]; }
  /** @param {string} perm */
  hasPermission(perm) { return this.fields.permissions.includes(perm); }
  /** @returns {Fields} */
  session() { return this.fields.session.map(([k, v]) => [k, v]); }
  /** @param {string} key */
  sessionValue(key) { return this.fields.session.find(([k]) => k === key)?.[1]; }
  /** The bindings' resource classes have it; a policy never calls it on a lent handle. */
  [Symbol.dispose]() {}
}

/** A logged-in user; `init` overrides any field. @param {ConstructorParameters<typeof FakeIdentity>[0]} [init] */
export function user(init = {}) {
  return new FakeIdentity({ authenticated: true, userId: '42', username: 'ann', ...init });
}

/** An anonymous visitor. */
export function anonymous() {
  return new FakeIdentity();
}

/**
 * The gateway hands a router that did not declare `needs.identity` an identity whose
 * every method traps; this one throws likewise, to check a path never consults `who`.
 *
 * @returns {FakeIdentity}
 */
export function untouchableIdentity() {
  return /** @type {FakeIdentity} */ (new Proxy({}, {
    get(_, method) {
      return () => { throw new Error(`who.${String(method)}() called`); };
    },
  }));
}
