/* policy.c: an isthmus bridge policy in C (world `bridge` of isthmus:policy@0.3.0).
 *
 * on-connect: every WebSocket is let in; each event is judged on its own.
 * on-event, first match wins:
 *   handler in `banned`                  -> close the WebSocket
 *   kind identity-change                 -> allow (the gateway's own notice that the
 *                                           browser's Django session changed)
 *   handler starts with a `staff_only`
 *   prefix:  anonymous                   -> refuse login-required(login_url)
 *            signed in, not staff        -> refuse forbidden
 *   anonymous: an upload                 -> refuse login-required(login_url)
 *              from a page under a
 *              `public_routes` entry     -> allow
 *              otherwise                 -> refuse login-required(login_url)
 *   signed in                            -> allow, with username = <username> in the
 *                                           context the Reflex handler reads
 * A page route is under an entry P when it is P or starts with P + "/"; the entry "/"
 * matches the home page only.
 *
 * Config, the plugin's `config` table from isthmus.toml as JSON (every key optional):
 *   staff_only     handler-name prefixes only staff may run, e.g. ["state.admin_state."]
 *   banned         handler names that close the connection, e.g. ["state.debug.reset_db"]
 *   public_routes  pages where anonymous visitors may run events, e.g. ["/", "/blog"]
 *   login_url      where anonymous visitors are sent (default /admin/login/)
 *
 * OWNERSHIP: the rules of wit-bindgen's C bindings, which this file follows.
 *  1. Strings and lists passed INTO your exports (setup's `config_json`) are yours:
 *     free them (bridge_string_free) before you return, or the instance leaks.
 *  2. Borrowed handles (`handshake`, `ev`, `who`) are plain numbers valid for this call
 *     only. Do not drop them and do not keep them in globals: the Makefile generates
 *     the bindings with --autodrop-borrows=yes, so the generated glue drops them after
 *     your function returns. (Without that flag you must drop each one yourself, and
 *     forgetting one traps: "borrow handles still remain at the end of the call".)
 *  3. Whatever an import RETURNS (a string, an option, a list, fields) was allocated in
 *     your memory and is yours: free it, or move it into your result.
 *     Functions returning option<T> return a bool and fill `ret` only when true: when
 *     they return false, `ret` holds garbage, so never free it then.
 *  4. What you RETURN (the verdict, setup's error string) is freed with free() by the
 *     generated post-return function once the gateway has copied it. So every string
 *     and list in it must be freshly heap-allocated (bridge_string_dup, malloc) and
 *     owned by nothing else: bridge_string_set() on a literal only points at it, and
 *     free() of a literal or of a string your globals still use breaks the instance.
 *  5. Strings you pass TO imports (a header name, a permission) are only read during
 *     the call: bridge_string_set() on a literal is fine there.
 *  6. Strings are UTF-8 (ptr, len), NOT NUL-terminated, and an empty one may have
 *     ptr == (void *)1: compare with len (never strlen) and free with
 *     bridge_string_free, which skips empty strings.
 */
#include <stdlib.h>
#include <string.h>

#include "gen/bridge.h"
#include "json.h"

#define DEFAULT_LOGIN_URL "/admin/login/"
#define KNOWN_KEYS "staff_only, banned, public_routes, login_url"
#define CLOSE_REASON "this action is not allowed" /* keep it short: a close frame holds 123 bytes */

/* ------------------------------------------------------------------ helpers */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (p == NULL) abort(); /* a trap: the gateway applies the plugin's failure mode */
    return p;
}

/* A heap copy of a + b + c (NULL counts as ""). */
static char *concat3(const char *a, const char *b, const char *c) {
    a = a ? a : "", b = b ? b : "", c = c ? c : "";
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = xmalloc(la + lb + lc + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc);
    s[la + lb + lc] = 0;
    return s;
}

static bool equals(const bridge_string_t *s, const char *c) {
    size_t n = strlen(c);
    return s->len == n && memcmp(s->ptr, c, n) == 0;
}

static bool starts_with(const bridge_string_t *s, const char *prefix) {
    size_t n = strlen(prefix);
    return s->len >= n && memcmp(s->ptr, prefix, n) == 0;
}

/* Whether page route `r` is `entry` or under it ("/" matches "/" only). */
static bool route_under(const bridge_string_t *r, const char *entry) {
    size_t n = strlen(entry);
    if (equals(r, entry)) return true;
    return n > 1 && r->len > n && memcmp(r->ptr, entry, n) == 0 && r->ptr[n] == '/';
}

/* -------------------------------------------------------------------- config */

typedef struct {
    char **items;
    size_t n;
} list;

typedef struct {
    list staff_only, banned, public_routes;
    char *login_url;
} config;

static config cfg; /* set by setup; lives as long as the instance */

static void list_free(list *l) {
    for (size_t k = 0; k < l->n; k++) free(l->items[k]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static void config_free(config *c) {
    list_free(&c->staff_only);
    list_free(&c->banned);
    list_free(&c->public_routes);
    free(c->login_url);
    memset(c, 0, sizeof *c);
}

/* Checks an item of `key`; NULL when fine, else a heap message. */
static char *check_item(const char *key, const char *v) {
    if (v[0] == 0) return concat3(key, ": entries must not be empty", NULL);
    if (strcmp(key, "public_routes") == 0 && (v[0] != '/' || (v[1] != 0 && v[strlen(v) - 1] == '/'))) {
        char *head = concat3(key, ": `", v);
        char *msg = concat3(head, "` must start with `/` and not end with `/` (except `/` itself)", NULL);
        free(head);
        return msg;
    }
    return NULL;
}

/* Reads a list of strings for `key` into *l; NULL when fine, else a heap message. On
 * a JSON error it returns NULL and the caller reports j->error. */
static char *read_list(json_reader *j, const char *key, list *l) {
    size_t i = 0;
    if (!json_array_begin(j)) return NULL;
    while (json_array_next(j, &i)) {
        char *v;
        if (!json_string(j, &v)) return NULL;
        char *bad = check_item(key, v);
        if (bad != NULL) {
            free(v);
            return bad;
        }
        l->items = realloc(l->items, (l->n + 1) * sizeof *l->items);
        if (l->items == NULL) abort();
        l->items[l->n++] = v;
    }
    return NULL;
}

/* Parses the config JSON into *c. Returns NULL on success, else a heap message
 * naming the key at fault. *c holds what was read either way: free it. */
static char *config_parse(const uint8_t *text, size_t len, config *c) {
    static const char *const keys[] = {"staff_only", "banned", "public_routes", "login_url"};
    list *lists[] = {&c->staff_only, &c->banned, &c->public_routes};
    bool seen[4] = {false};
    json_reader j;
    json_init(&j, text, len);
    size_t i = 0;
    char *key, *bad = NULL;
    json_object_begin(&j);
    while (bad == NULL && json_object_next(&j, &i, &key)) {
        size_t k = 0;
        while (k < 4 && strcmp(key, keys[k]) != 0) k++;
        if (k == 4) bad = concat3("unknown key `", key, "` (known keys: " KNOWN_KEYS ")");
        else if (seen[k]) bad = concat3("duplicate key `", key, "`");
        else if (k < 3) bad = read_list(&j, key, lists[k]);
        else if (json_string(&j, &c->login_url) && c->login_url[0] == 0)
            bad = concat3("login_url: must not be empty", NULL, NULL);
        if (k < 4) seen[k] = true;
        if (bad == NULL && j.error != NULL) bad = concat3(key, ": ", j.error);
        free(key);
    }
    if (bad == NULL && !json_end(&j)) bad = concat3("config is not a valid JSON object: ", j.error, NULL);
    if (bad == NULL && c->login_url == NULL) c->login_url = concat3(DEFAULT_LOGIN_URL, NULL, NULL);
    return bad;
}

static bool listed(const list *l, const bridge_string_t *s, bool (*match)(const bridge_string_t *, const char *)) {
    for (size_t k = 0; k < l->n; k++)
        if (match(s, l->items[k])) return true;
    return false;
}

/* ------------------------------------------------------------------ verdicts */

static void allow(bridge_verdict_t *ret, bridge_string_t *username) {
    ret->tag = ISTHMUS_POLICY_BRIDGING_VERDICT_ALLOW;
    isthmus_policy_bridging_fields_t *f = &ret->val.allow;
    f->ptr = NULL; /* an empty list is {NULL, 0}: the post-return frees nothing then */
    f->len = 0;
    if (username != NULL) {
        f->ptr = xmalloc(sizeof *f->ptr);
        f->len = 1;
        bridge_string_dup(&f->ptr[0].f0, "username"); /* rule 4: heap, not the literal */
        f->ptr[0].f1 = *username;                     /* rule 3: moved, not freed here */
    }
}

static void refuse(bridge_verdict_t *ret, uint8_t why, const char *text) {
    ret->tag = ISTHMUS_POLICY_BRIDGING_VERDICT_REFUSE;
    ret->val.refuse.tag = why;
    /* rule 4: a copy, even of cfg.login_url, which the post-return would otherwise free */
    if (why == ISTHMUS_POLICY_REFUSALS_REFUSAL_LOGIN_REQUIRED) bridge_string_dup(&ret->val.refuse.val.login_required, text);
    else bridge_string_dup(&ret->val.refuse.val.forbidden, text);
}

/* ------------------------------------------------------------------ exports */

bool exports_bridge_setup(bridge_string_t *config_json, bridge_string_t *err) {
    config fresh = {0};
    char *bad = config_parse(config_json->ptr, config_json->len, &fresh);
    bridge_string_free(config_json); /* rule 1: the argument is ours to free */
    if (bad != NULL) {
        config_free(&fresh);
        err->ptr = (uint8_t *)bad; /* rule 4: heap memory, freed after the call */
        err->len = strlen(bad);
        return false;
    }
    config_free(&cfg); /* setup runs once per instance; this only matters in tests */
    cfg = fresh;
    return true;
}

void exports_bridge_on_connect(bridge_borrow_request_t handshake, bridge_borrow_identity_t who, bridge_verdict_t *ret) {
    (void)handshake; /* e.g. isthmus_policy_http_method_request_header(handshake, ...) */
    (void)who;
    allow(ret, NULL);
}

/* The verdict for an event of an anonymous visitor that is not staff-only. */
static void anonymous_event(bridge_borrow_event_t ev, bridge_verdict_t *ret) {
    bool public_page = false;
    if (isthmus_policy_bridging_method_event_kind(ev) != ISTHMUS_POLICY_BRIDGING_EVENT_KIND_UPLOAD) {
        bridge_string_t route; /* rule 3: ours, freed below */
        isthmus_policy_bridging_method_event_route(ev, &route);
        public_page = listed(&cfg.public_routes, &route, route_under);
        bridge_string_free(&route);
    }
    if (public_page) allow(ret, NULL);
    else refuse(ret, ISTHMUS_POLICY_REFUSALS_REFUSAL_LOGIN_REQUIRED, cfg.login_url);
}

void exports_bridge_on_event(bridge_borrow_event_t ev, bridge_borrow_identity_t who, bridge_verdict_t *ret) {
    bridge_string_t name; /* rule 3: ours, freed at the end */
    isthmus_policy_bridging_method_event_name(ev, &name);

    if (listed(&cfg.banned, &name, equals)) {
        ret->tag = ISTHMUS_POLICY_BRIDGING_VERDICT_CLOSE;
        bridge_string_dup(&ret->val.close, CLOSE_REASON);
    } else if (isthmus_policy_bridging_method_event_kind(ev) == ISTHMUS_POLICY_BRIDGING_EVENT_KIND_IDENTITY_CHANGE) {
        allow(ret, NULL);
    } else if (!isthmus_policy_users_method_identity_authenticated(who)) {
        if (listed(&cfg.staff_only, &name, starts_with)) refuse(ret, ISTHMUS_POLICY_REFUSALS_REFUSAL_LOGIN_REQUIRED, cfg.login_url);
        else anonymous_event(ev, ret);
    } else if (listed(&cfg.staff_only, &name, starts_with) && !isthmus_policy_users_method_identity_is_staff(who)) {
        refuse(ret, ISTHMUS_POLICY_REFUSALS_REFUSAL_FORBIDDEN, "this action is for staff members only");
    } else {
        bridge_string_t username; /* rule 3: ours, moved into the verdict */
        isthmus_policy_users_method_identity_username(who, &username);
        allow(ret, &username);
    }

    bridge_string_free(&name);
    /* rule 2: `ev` and `who` are dropped by the generated glue, not here */
}
