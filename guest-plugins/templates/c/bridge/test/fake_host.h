/* fake_host.h: a stand-in for the gateway, for native unit tests of policy.c.
 *
 * fake_host.c defines every import declared in gen/bridge.h (the methods of `request`,
 * `identity` and `event`), answering from `fake_req`, `fake_who` and `fake_ev`, which
 * each test fills in. Like the real gateway it hands the policy fresh heap copies that
 * the policy owns: exactly `len` bytes with no NUL after them, and (void *)1 for an
 * empty string (what the guest's allocator gives for zero bytes). So under
 * AddressSanitizer a policy that reads past `len`, frees what it does not own, or
 * forgets to free, fails the tests.
 */
#ifndef FAKE_HOST_H
#define FAKE_HOST_H

#include "gen/bridge.h"

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

typedef struct {
    isthmus_policy_bridging_event_kind_t kind; /* ISTHMUS_POLICY_BRIDGING_EVENT_KIND_* */
    const char *name, *payload_json, *route, *query;
    const char *traceparent; /* NULL: none */
} fake_event;

extern fake_request fake_req;
extern fake_identity fake_who;
extern fake_event fake_ev;

/* Sets fake_req to the handshake `GET /_event/`, fake_ev to a client event
 * `state.hydrate` from the page `/`, and fake_who to an anonymous visitor. */
void fake_reset(void);

/* Calls setup as the gateway does, with `json` as a heap copy that the policy must
 * free. Returns NULL when setup succeeds, else its error text (a heap copy: free it). */
char *fake_setup(const char *json);

/* Call on-connect (with fake_req and fake_who) or on-event (with fake_ev and fake_who)
 * and return the verdict as text (heap: free it): "allow[]",
 * "allow[username: ann]", "refuse.login-required(/admin/login/)",
 * "refuse.forbidden(...)" or "close(...)". The verdict itself is freed as the
 * generated post-return function frees it. */
char *fake_on_connect(void);
char *fake_on_event(void);

/* Counts a failure of the current test; the fakes call it when the policy misuses the
 * contract (e.g. passes the identity's handle to an event method). */
void fake_fail(const char *what);
extern int fake_failures;

#endif
