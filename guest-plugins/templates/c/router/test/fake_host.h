/* fake_host.h: a stand-in for the gateway, for native unit tests of policy.c.
 *
 * fake_host.c defines every import declared in gen/router.h (the methods of `request`
 * and `identity`), answering from `fake_req` and `fake_who`, which each test fills in.
 * Like the real gateway it hands the policy fresh heap copies that the policy owns:
 * exactly `len` bytes with no NUL after them, and (void *)1 for an empty string (what
 * the guest's allocator gives for zero bytes). So under AddressSanitizer a policy that
 * reads past `len`, frees what it does not own, or forgets to free, fails the tests.
 */
#ifndef FAKE_HOST_H
#define FAKE_HOST_H

#include "gen/router.h"

#define FAKE_MAX 16

typedef struct {
    const char *method, *scheme, *authority, *path, *query, *client_ip;
    const char *traceparent;          /* NULL: none */
    const char *headers[FAKE_MAX][2]; /* {name, value} in order, names lower-case */
} fake_request;

typedef struct {
    bool authenticated;
    const char *user_id; /* NULL: none */
    const char *username, *email, *first_name, *last_name;
    bool is_staff, is_superuser;
    const char *groups[FAKE_MAX];      /* NULL-terminated */
    const char *permissions[FAKE_MAX]; /* NULL-terminated */
    const char *session[FAKE_MAX][2];  /* {key, JSON value} */
} fake_identity;

extern fake_request fake_req;
extern fake_identity fake_who;

/* Sets fake_req to `GET /` over https from 127.0.0.1 and fake_who to an anonymous
 * visitor. */
void fake_reset(void);

/* Calls setup as the gateway does, with `json` as a heap copy that the policy must
 * free. Returns NULL when setup succeeds (and fills *needs), else its error text
 * (a heap copy: free it). */
char *fake_setup(const char *json, router_needs_t *needs);

/* Calls route with fake_req and fake_who and returns the decision as text (heap: free
 * it), e.g. "forward(upstream=django path=none set=[] remove=[x-staff-user])",
 * "serve-static(frontend)", "reply(status=503 headers=[] body=...)",
 * "refuse.login-required(/admin/login/)", "refuse.forbidden(...)" or "pass". The
 * decision itself is freed as the generated post-return function frees it. */
char *fake_route(void);

/* Counts a failure of the current test; the fakes call it when the policy misuses the
 * contract (e.g. uses `who` without having declared needs.identity). */
void fake_fail(const char *what);
extern int fake_failures;

#endif
