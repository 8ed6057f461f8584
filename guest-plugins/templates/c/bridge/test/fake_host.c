/* fake_host.c: see fake_host.h. */
#include "fake_host.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REQUEST_HANDLE 1
#define IDENTITY_HANDLE 2
#define EVENT_HANDLE 3

fake_request fake_req;
fake_identity fake_who;
fake_event fake_ev;
int fake_failures;

void fake_fail(const char *what) {
    fprintf(stderr, "    fake host: %s\n", what);
    fake_failures++;
}

void fake_reset(void) {
    memset(&fake_req, 0, sizeof fake_req);
    memset(&fake_who, 0, sizeof fake_who);
    memset(&fake_ev, 0, sizeof fake_ev);
    fake_req = (fake_request){.method = "GET", .scheme = "https", .authority = "example.com",
                              .path = "/_event/", .query = "EIO=4&transport=websocket", .client_ip = "127.0.0.1"};
    fake_ev = (fake_event){.kind = ISTHMUS_POLICY_BRIDGING_EVENT_KIND_CLIENT, .name = "state.hydrate",
                           .payload_json = "{}", .route = "/", .query = ""};
    fake_who.username = fake_who.email = fake_who.first_name = fake_who.last_name = "";
}

/* A string the way the gateway lowers one into the guest: a heap block of exactly
 * `len` bytes, or (void *)1 when empty. */
static void give(bridge_string_t *ret, const char *s) {
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0) {
        ret->ptr = (uint8_t *)1;
        ret->len = 0;
        return;
    }
    ret->ptr = malloc(n);
    if (ret->ptr == NULL) abort();
    memcpy(ret->ptr, s, n);
    ret->len = n;
}

static bool give_option(bridge_string_t *ret, const char *s) {
    if (s == NULL) return false; /* like the bindings, *ret is left untouched */
    give(ret, s);
    return true;
}

static void give_list(bridge_list_string_t *ret, const char *const *items) {
    size_t n = 0;
    while (n < FAKE_MAX && items[n] != NULL) n++;
    ret->len = n;
    ret->ptr = n ? malloc(n * sizeof *ret->ptr) : (bridge_string_t *)sizeof(void *);
    for (size_t k = 0; k < n; k++) give(&ret->ptr[k], items[k]);
}

static void give_fields(isthmus_policy_http_fields_t *ret, const char *const (*pairs)[2]) {
    size_t n = 0;
    while (n < FAKE_MAX && pairs[n][0] != NULL) n++;
    ret->len = n;
    ret->ptr = n ? malloc(n * sizeof *ret->ptr) : (bridge_tuple2_string_string_t *)sizeof(void *);
    for (size_t k = 0; k < n; k++) {
        give(&ret->ptr[k].f0, pairs[k][0]);
        give(&ret->ptr[k].f1, pairs[k][1]);
    }
}

/* A borrowed argument (a header name, ...) as a C string, for lookups. */
static char *arg(const bridge_string_t *s) {
    char *c = malloc(s->len + 1);
    if (c == NULL) abort();
    memcpy(c, s->ptr, s->len);
    c[s->len] = 0;
    return c;
}

static bool in_list(const char *const *items, const bridge_string_t *s) {
    char *want = arg(s);
    bool found = false;
    for (size_t k = 0; !found && k < FAKE_MAX && items[k] != NULL; k++) found = strcmp(items[k], want) == 0;
    free(want);
    return found;
}

static void req_check(isthmus_policy_http_borrow_request_t self) {
    if (self.__handle != REQUEST_HANDLE) fake_fail("a request method got a handle that is not the request");
}

static void who_check(isthmus_policy_users_borrow_identity_t self) {
    if (self.__handle != IDENTITY_HANDLE) fake_fail("an identity method got a handle that is not the identity");
}

/* ---- isthmus:policy/http: request ---------------------------------------------------- */

void isthmus_policy_http_method_request_method(isthmus_policy_http_borrow_request_t self, bridge_string_t *ret) {
    req_check(self);
    give(ret, fake_req.method);
}
void isthmus_policy_http_method_request_scheme(isthmus_policy_http_borrow_request_t self, bridge_string_t *ret) {
    req_check(self);
    give(ret, fake_req.scheme);
}
void isthmus_policy_http_method_request_authority(isthmus_policy_http_borrow_request_t self, bridge_string_t *ret) {
    req_check(self);
    give(ret, fake_req.authority);
}
void isthmus_policy_http_method_request_path(isthmus_policy_http_borrow_request_t self, bridge_string_t *ret) {
    req_check(self);
    give(ret, fake_req.path);
}
void isthmus_policy_http_method_request_query(isthmus_policy_http_borrow_request_t self, bridge_string_t *ret) {
    req_check(self);
    give(ret, fake_req.query);
}
void isthmus_policy_http_method_request_client_ip(isthmus_policy_http_borrow_request_t self, bridge_string_t *ret) {
    req_check(self);
    give(ret, fake_req.client_ip);
}
bool isthmus_policy_http_method_request_traceparent(isthmus_policy_http_borrow_request_t self, bridge_string_t *ret) {
    req_check(self);
    return give_option(ret, fake_req.traceparent);
}
void isthmus_policy_http_method_request_headers(isthmus_policy_http_borrow_request_t self, isthmus_policy_http_fields_t *ret) {
    req_check(self);
    give_fields(ret, (const char *const (*)[2])fake_req.headers);
}

/* Every field named `name` (any case) joined with `sep`; NULL when there is none. */
static char *joined_header(const char *name, const char *sep) {
    char *out = NULL;
    for (size_t k = 0; k < FAKE_MAX && fake_req.headers[k][0] != NULL; k++) {
        if (strcasecmp(fake_req.headers[k][0], name) != 0) continue;
        const char *v = fake_req.headers[k][1], *s = out != NULL ? sep : "";
        size_t old = out != NULL ? strlen(out) : 0, more = strlen(s) + strlen(v);
        out = realloc(out, old + more + 1);
        if (out == NULL) abort();
        snprintf(out + old, more + 1, "%s%s", s, v);
    }
    return out;
}

bool isthmus_policy_http_method_request_header(isthmus_policy_http_borrow_request_t self, bridge_string_t *name, bridge_string_t *ret) {
    req_check(self);
    char *n = arg(name);
    char *v = joined_header(n, strcasecmp(n, "cookie") == 0 ? "; " : ", ");
    bool some = give_option(ret, v);
    free(v);
    free(n);
    return some;
}

bool isthmus_policy_http_method_request_cookie(isthmus_policy_http_borrow_request_t self, bridge_string_t *name, bridge_string_t *ret) {
    req_check(self);
    char *want = arg(name), *all = joined_header("cookie", "; "), *found = NULL;
    for (char *save = NULL, *kv = all ? strtok_r(all, ";", &save) : NULL; kv; kv = strtok_r(NULL, ";", &save)) {
        while (*kv == ' ') kv++;
        char *eq = strchr(kv, '=');
        if (eq != NULL && (size_t)(eq - kv) == strlen(want) && strncmp(kv, want, eq - kv) == 0)
            found = eq + 1; /* the last of duplicates wins, as in Django */
    }
    bool some = give_option(ret, found);
    free(all);
    free(want);
    return some;
}

/* ---- isthmus:policy/users: identity -------------------------------------------------- */

bool isthmus_policy_users_method_identity_authenticated(isthmus_policy_users_borrow_identity_t self) {
    who_check(self);
    return fake_who.authenticated;
}
bool isthmus_policy_users_method_identity_user_id(isthmus_policy_users_borrow_identity_t self, bridge_string_t *ret) {
    who_check(self);
    return give_option(ret, fake_who.user_id);
}
void isthmus_policy_users_method_identity_username(isthmus_policy_users_borrow_identity_t self, bridge_string_t *ret) {
    who_check(self);
    give(ret, fake_who.username);
}
void isthmus_policy_users_method_identity_email(isthmus_policy_users_borrow_identity_t self, bridge_string_t *ret) {
    who_check(self);
    give(ret, fake_who.email);
}
void isthmus_policy_users_method_identity_first_name(isthmus_policy_users_borrow_identity_t self, bridge_string_t *ret) {
    who_check(self);
    give(ret, fake_who.first_name);
}
void isthmus_policy_users_method_identity_last_name(isthmus_policy_users_borrow_identity_t self, bridge_string_t *ret) {
    who_check(self);
    give(ret, fake_who.last_name);
}
bool isthmus_policy_users_method_identity_is_staff(isthmus_policy_users_borrow_identity_t self) {
    who_check(self);
    return fake_who.is_staff;
}
bool isthmus_policy_users_method_identity_is_superuser(isthmus_policy_users_borrow_identity_t self) {
    who_check(self);
    return fake_who.is_superuser;
}
void isthmus_policy_users_method_identity_groups(isthmus_policy_users_borrow_identity_t self, bridge_list_string_t *ret) {
    who_check(self);
    give_list(ret, fake_who.groups);
}
bool isthmus_policy_users_method_identity_in_group(isthmus_policy_users_borrow_identity_t self, bridge_string_t *name) {
    who_check(self);
    return in_list(fake_who.groups, name);
}
void isthmus_policy_users_method_identity_permissions(isthmus_policy_users_borrow_identity_t self, bridge_list_string_t *ret) {
    who_check(self);
    give_list(ret, fake_who.permissions);
}
bool isthmus_policy_users_method_identity_has_permission(isthmus_policy_users_borrow_identity_t self, bridge_string_t *perm) {
    who_check(self);
    return in_list(fake_who.permissions, perm);
}
void isthmus_policy_users_method_identity_session(isthmus_policy_users_borrow_identity_t self, isthmus_policy_users_fields_t *ret) {
    who_check(self);
    give_fields(ret, (const char *const (*)[2])fake_who.session);
}
bool isthmus_policy_users_method_identity_session_value(isthmus_policy_users_borrow_identity_t self, bridge_string_t *key, bridge_string_t *ret) {
    who_check(self);
    char *k = arg(key);
    const char *v = NULL;
    for (size_t n = 0; n < FAKE_MAX && fake_who.session[n][0] != NULL; n++)
        if (strcmp(fake_who.session[n][0], k) == 0) v = fake_who.session[n][1];
    free(k);
    return give_option(ret, v);
}

/* ---- isthmus:policy/bridging: event ------------------------------------------------- */

static void ev_check(isthmus_policy_bridging_borrow_event_t self) {
    if (self.__handle != EVENT_HANDLE) fake_fail("an event method got a handle that is not the event");
}

isthmus_policy_bridging_event_kind_t isthmus_policy_bridging_method_event_kind(isthmus_policy_bridging_borrow_event_t self) {
    ev_check(self);
    return fake_ev.kind;
}
void isthmus_policy_bridging_method_event_name(isthmus_policy_bridging_borrow_event_t self, bridge_string_t *ret) {
    ev_check(self);
    give(ret, fake_ev.name);
}
void isthmus_policy_bridging_method_event_payload_json(isthmus_policy_bridging_borrow_event_t self, bridge_string_t *ret) {
    ev_check(self);
    give(ret, fake_ev.payload_json);
}
void isthmus_policy_bridging_method_event_route(isthmus_policy_bridging_borrow_event_t self, bridge_string_t *ret) {
    ev_check(self);
    give(ret, fake_ev.route);
}
void isthmus_policy_bridging_method_event_query(isthmus_policy_bridging_borrow_event_t self, bridge_string_t *ret) {
    ev_check(self);
    give(ret, fake_ev.query);
}
bool isthmus_policy_bridging_method_event_traceparent(isthmus_policy_bridging_borrow_event_t self, bridge_string_t *ret) {
    ev_check(self);
    return give_option(ret, fake_ev.traceparent);
}

/* ---- calling the exports --------------------------------------------------------------- */

char *fake_setup(const char *json) {
    bridge_string_t config;
    give(&config, json); /* the policy owns it now */
    bridge_string_t err = {0};
    if (exports_bridge_setup(&config, &err)) return NULL;
    char *text = arg(&err);
    bridge_string_free(&err); /* as the post-return does: it must be heap memory */
    return text;
}

/* A growing text buffer. */
typedef struct {
    char *s;
    size_t len;
} text;

static void add(text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    t->s = realloc(t->s, t->len + (size_t)n + 1);
    if (t->s == NULL) abort();
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* Returns len, after checking that ptr was set: the gateway checks a string's or a
 * list's pointer even when its length is 0, and traps on garbage. */
static int checked(const void *ptr, size_t len, const char *what) {
    if ((uintptr_t)ptr == (uintptr_t)0xABABABABABABABABull || (ptr == NULL && len > 0)) {
        fprintf(stderr, "    fake host: %s was left unset\n", what);
        fake_failures++;
        return 0;
    }
    return (int)len;
}

#define S(str) checked((str).ptr, (str).len, #str), (const char *)(str).ptr

static void add_fields(text *t, const isthmus_policy_http_fields_t *f) {
    add(t, "[");
    if (checked(f->ptr, f->len, "a list of fields") == 0) {
        add(t, "]");
        return;
    }
    for (size_t k = 0; k < f->len; k++) add(t, "%s%.*s: %.*s", k ? ", " : "", S(f->ptr[k].f0), S(f->ptr[k].f1));
    add(t, "]");
}

static void add_refusal(text *t, const isthmus_policy_refusals_refusal_t *r) {
    switch (r->tag) {
    case ISTHMUS_POLICY_REFUSALS_REFUSAL_LOGIN_REQUIRED: add(t, "refuse.login-required(%.*s)", S(r->val.login_required)); break;
    case ISTHMUS_POLICY_REFUSALS_REFUSAL_FORBIDDEN: add(t, "refuse.forbidden(%.*s)", S(r->val.forbidden)); break;
    default: add(t, "refuse.<bad tag %d>", r->tag);
    }
}

/* The verdict as text; then frees it as the generated post-return does. */
static char *describe(bridge_verdict_t *v) {
    text t = {0};
    switch (v->tag) {
    case ISTHMUS_POLICY_BRIDGING_VERDICT_ALLOW:
        add(&t, "allow");
        add_fields(&t, &v->val.allow);
        break;
    case ISTHMUS_POLICY_BRIDGING_VERDICT_REFUSE: add_refusal(&t, &v->val.refuse); break;
    case ISTHMUS_POLICY_BRIDGING_VERDICT_CLOSE: add(&t, "close(%.*s)", S(v->val.close)); break;
    default: add(&t, "<bad verdict tag %d>", v->tag); return t.s; /* nothing sane to free */
    }
    bridge_verdict_free(v); /* frees exactly what the post-return frees */
    return t.s;
}

char *fake_on_connect(void) {
    bridge_verdict_t v;
    memset(&v, 0xAB, sizeof v); /* garbage, as on the wasm stack: the policy must fill it */
    exports_bridge_on_connect((bridge_borrow_request_t){REQUEST_HANDLE}, (bridge_borrow_identity_t){IDENTITY_HANDLE}, &v);
    return describe(&v);
}

char *fake_on_event(void) {
    bridge_verdict_t v;
    memset(&v, 0xAB, sizeof v);
    exports_bridge_on_event((bridge_borrow_event_t){EVENT_HANDLE}, (bridge_borrow_identity_t){IDENTITY_HANDLE}, &v);
    return describe(&v);
}
