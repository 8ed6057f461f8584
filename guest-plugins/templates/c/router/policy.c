/* policy.c: an isthmus router policy in C (world `router` of isthmus:policy@0.3.0).
 *
 * Rules, first match wins. A path is *under* a prefix P when it is P or starts with
 * P + "/" (so /administrator is not under /admin):
 *
 *   under /staff    anonymous            -> refuse login-required(login_url)
 *                   signed in, not staff -> refuse forbidden
 *                   staff                -> forward to `django`, setting the header
 *                                           x-staff-user: <username>
 *   under /admin or
 *   a `prefixes` entry                   -> forward to `django` (x-staff-user removed,
 *                                           so that no client can send its own)
 *   anything else                        -> pass (the next router decides)
 *
 * Config, the plugin's `config` table from isthmus.toml as JSON (every key optional):
 *   prefixes   list of path prefixes for Django besides /admin, e.g. ["/api"]
 *   login_url  where anonymous visitors of /staff are sent (default /admin/login/)
 *
 * OWNERSHIP: the rules of wit-bindgen's C bindings, which this file follows.
 *  1. Strings and lists passed INTO your exports (setup's `config_json`) are yours:
 *     free them (router_string_free) before you return, or the instance leaks.
 *  2. Borrowed handles (`req`, `who`) are plain numbers valid for this call only.
 *     Do not drop them and do not keep them in globals: the Makefile generates the
 *     bindings with --autodrop-borrows=yes, so the generated glue drops them after
 *     your function returns. (Without that flag you must drop each one yourself, and
 *     forgetting one traps: "borrow handles still remain at the end of the call".)
 *  3. Whatever an import RETURNS (a string, an option, a list, fields) was allocated in
 *     your memory and is yours: free it, or move it into your result.
 *     Functions returning option<T> return a bool and fill `ret` only when true: when
 *     they return false, `ret` holds garbage, so never free it then.
 *  4. What you RETURN (the decision, setup's error string) is freed with free() by the
 *     generated post-return function once the gateway has copied it. So every string
 *     and list in it must be freshly heap-allocated (router_string_dup, malloc) and
 *     owned by nothing else: router_string_set() on a literal only points at it, and
 *     free() of a literal or of a string your globals still use breaks the instance.
 *  5. Strings you pass TO imports (a header name, a permission) are only read during
 *     the call: router_string_set() on a literal is fine there.
 *  6. Strings are UTF-8 (ptr, len), NOT NUL-terminated, and an empty one may have
 *     ptr == (void *)1: compare with len (never strlen) and free with
 *     router_string_free, which skips empty strings.
 */
#include <stdlib.h>
#include <string.h>

#include "gen/router.h"
#include "json.h"

#define UPSTREAM "django"
#define STAFF_AREA "/staff"
#define STAFF_HEADER "x-staff-user"
#define DEFAULT_LOGIN_URL "/admin/login/"
#define KNOWN_KEYS "prefixes, login_url"

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

/* Whether path (not NUL-terminated) is `prefix` or starts with `prefix` + "/". */
static bool under(const router_string_t *path, const char *prefix) {
    size_t n = strlen(prefix);
    return path->len >= n && memcmp(path->ptr, prefix, n) == 0 && (path->len == n || path->ptr[n] == '/');
}

/* -------------------------------------------------------------------- config */

typedef struct {
    char **prefixes;
    size_t n_prefixes;
    char *login_url;
} config;

static config cfg; /* set by setup; lives as long as the instance */

static void config_free(config *c) {
    for (size_t k = 0; k < c->n_prefixes; k++) free(c->prefixes[k]);
    free(c->prefixes);
    free(c->login_url);
    memset(c, 0, sizeof *c);
}

/* Checks one prefix; NULL when fine, else a heap message. */
static char *check_prefix(const char *p) {
    size_t n = strlen(p);
    if (n < 2 || p[0] != '/' || p[n - 1] == '/')
        return concat3("prefixes: `", p, "` must start with `/`, not end with `/` and not be `/`");
    return NULL;
}

/* Reads the value of `prefixes`; NULL when fine, else a heap message. */
static char *read_prefixes(json_reader *j, config *c) {
    size_t i = 0;
    if (!json_array_begin(j)) return NULL; /* the caller reports j->error */
    while (json_array_next(j, &i)) {
        char *p;
        if (!json_string(j, &p)) return NULL;
        char *bad = check_prefix(p);
        if (bad != NULL) {
            free(p);
            return bad;
        }
        c->prefixes = realloc(c->prefixes, (c->n_prefixes + 1) * sizeof *c->prefixes);
        if (c->prefixes == NULL) abort();
        c->prefixes[c->n_prefixes++] = p;
    }
    return NULL;
}

/* Parses the config JSON into *c. Returns NULL on success, else a heap message
 * naming the key at fault. *c holds what was read either way: free it. */
static char *config_parse(const uint8_t *text, size_t len, config *c) {
    json_reader j;
    json_init(&j, text, len);
    bool seen_prefixes = false, seen_login = false;
    size_t i = 0;
    char *key, *bad = NULL;
    json_object_begin(&j);
    while (bad == NULL && json_object_next(&j, &i, &key)) {
        if (strcmp(key, "prefixes") == 0 && !seen_prefixes) {
            seen_prefixes = true;
            bad = read_prefixes(&j, c);
        } else if (strcmp(key, "login_url") == 0 && !seen_login) {
            seen_login = true;
            if (json_string(&j, &c->login_url) && c->login_url[0] == 0)
                bad = concat3("login_url: must not be empty", NULL, NULL);
        } else if (strcmp(key, "prefixes") == 0 || strcmp(key, "login_url") == 0) {
            bad = concat3("duplicate key `", key, "`");
        } else {
            bad = concat3("unknown key `", key, "` (known keys: " KNOWN_KEYS ")");
        }
        if (bad == NULL && j.error != NULL) bad = concat3(key, ": ", j.error);
        free(key);
    }
    if (bad == NULL && !json_end(&j)) bad = concat3("config is not a valid JSON object: ", j.error, NULL);
    if (bad == NULL && c->login_url == NULL) c->login_url = concat3(DEFAULT_LOGIN_URL, NULL, NULL);
    return bad;
}

/* ------------------------------------------------------------------ exports */

bool exports_router_setup(router_string_t *config_json, router_needs_t *ret, router_string_t *err) {
    config fresh = {0};
    char *bad = config_parse(config_json->ptr, config_json->len, &fresh);
    router_string_free(config_json); /* rule 1: the argument is ours to free */
    if (bad != NULL) {
        config_free(&fresh);
        /* rule 4: the error is freed after the call, so it must be heap memory (it is) */
        err->ptr = (uint8_t *)bad;
        err->len = strlen(bad);
        return false;
    }
    config_free(&cfg); /* setup runs once per instance; this only matters in tests */
    cfg = fresh;
    ret->identity = true; /* `who` is needed for /staff; without this it would trap */
    return true;
}

/* Fills *ret with forward(django). With `user`, sets the header x-staff-user to it,
 * taking `user` over (rule 3: an import's result can be moved into the decision,
 * which frees it); without, removes that header. */
static void forward_to_django(router_decision_t *ret, router_string_t *user) {
    ret->tag = ISTHMUS_POLICY_ROUTING_DECISION_FORWARD;
    isthmus_policy_routing_forward_t *f = &ret->val.forward;
    memset(f, 0, sizeof *f); /* path: none; empty lists are {NULL, 0} */
    router_string_dup(&f->upstream, UPSTREAM); /* rule 4: a heap copy, not the literal */
    if (user != NULL) {
        f->set_headers.ptr = xmalloc(sizeof *f->set_headers.ptr);
        f->set_headers.len = 1;
        router_string_dup(&f->set_headers.ptr[0].f0, STAFF_HEADER);
        f->set_headers.ptr[0].f1 = *user; /* moved: do not free `user` afterwards */
    } else {
        f->remove_headers.ptr = xmalloc(sizeof *f->remove_headers.ptr);
        f->remove_headers.len = 1;
        router_string_dup(&f->remove_headers.ptr[0], STAFF_HEADER);
    }
}

static void refuse(router_decision_t *ret, uint8_t why, const char *text) {
    ret->tag = ISTHMUS_POLICY_ROUTING_DECISION_REFUSE;
    ret->val.refuse.tag = why;
    /* rule 4: a copy, even of cfg.login_url, which the post-return would otherwise free */
    if (why == ISTHMUS_POLICY_REFUSALS_REFUSAL_LOGIN_REQUIRED) router_string_dup(&ret->val.refuse.val.login_required, text);
    else router_string_dup(&ret->val.refuse.val.forbidden, text);
}

static void staff_area(router_borrow_identity_t who, router_decision_t *ret) {
    if (!isthmus_policy_users_method_identity_authenticated(who)) {
        refuse(ret, ISTHMUS_POLICY_REFUSALS_REFUSAL_LOGIN_REQUIRED, cfg.login_url);
    } else if (!isthmus_policy_users_method_identity_is_staff(who)) {
        refuse(ret, ISTHMUS_POLICY_REFUSALS_REFUSAL_FORBIDDEN, "the staff area is for staff members only");
    } else {
        router_string_t username; /* rule 3: ours, moved into the decision below */
        isthmus_policy_users_method_identity_username(who, &username);
        forward_to_django(ret, &username);
    }
}

void exports_router_route(router_borrow_request_t req, router_borrow_identity_t who, router_decision_t *ret) {
    router_string_t path; /* rule 3: ours, freed at the end */
    isthmus_policy_http_method_request_path(req, &path);

    bool django = under(&path, "/admin");
    for (size_t k = 0; !django && k < cfg.n_prefixes; k++) django = under(&path, cfg.prefixes[k]);

    if (under(&path, STAFF_AREA)) staff_area(who, ret);
    else if (django) forward_to_django(ret, NULL);
    else ret->tag = ISTHMUS_POLICY_ROUTING_DECISION_PASS;

    router_string_free(&path);
    /* rule 2: `req` and `who` are dropped by the generated glue, not here */
}
