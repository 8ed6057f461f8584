/* test_policy.c: native unit tests of policy.c (`make test`).
 *
 * Each test sets up the fake gateway (fake_req, fake_ev, fake_who: see fake_host.h),
 * calls the exports, and compares the verdict, written out as text, exactly. Under
 * AddressSanitizer a leak, a bad free or a read past a string's `len` fails the run
 * as well. The last line is "N passed, N failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"

static int failed_checks;

/* Compares `got` (heap text or NULL, freed here) with `want` (NULL: expect NULL). */
static void expect(char *got, const char *want, const char *what, int line) {
    bool same = (got == NULL || want == NULL) ? got == want : strcmp(got, want) == 0;
    if (!same) {
        fprintf(stderr, "    line %d: %s\n      got:  %s\n      want: %s\n", line, what, got ? got : "(nothing)",
                want ? want : "(nothing)");
        failed_checks++;
    }
    free(got);
}

#define EXPECT(got, want) expect((got), (want), #got, __LINE__)

#define CLIENT ISTHMUS_POLICY_BRIDGING_EVENT_KIND_CLIENT
#define UPLOAD ISTHMUS_POLICY_BRIDGING_EVENT_KIND_UPLOAD
#define IDENTITY_CHANGE ISTHMUS_POLICY_BRIDGING_EVENT_KIND_IDENTITY_CHANGE

/* Runs on-event for an event of `kind` named `name` from the page `route`. */
static char *event(isthmus_policy_bridging_event_kind_t kind, const char *name, const char *route) {
    fake_ev.kind = kind;
    fake_ev.name = name;
    fake_ev.route = route;
    return fake_on_event();
}

static void sign_in(const char *username, bool is_staff) {
    fake_who.authenticated = true;
    fake_who.user_id = "7";
    fake_who.username = username;
    fake_who.is_staff = is_staff;
}

#define CONFIG                                                                       \
    "{\"staff_only\": [\"state.admin_state.\"], \"banned\": [\"state.debug.reset_db\"]," \
    " \"public_routes\": [\"/\", \"/blog\"]}"
#define LOG_IN "refuse.login-required(/admin/login/)"
#define STAFF_ONLY "refuse.forbidden(this action is for staff members only)"
#define CLOSED "close(this action is not allowed)"

/* ---- setup ------------------------------------------------------------------------------ */

static void setup_accepts_good_configs(void) {
    EXPECT(fake_setup("{}"), NULL);
    EXPECT(fake_setup(CONFIG), NULL);
    EXPECT(fake_setup("{\"staff_only\": [], \"banned\": [], \"public_routes\": [], \"login_url\": \"/login/\"}"), NULL);
}

static void setup_rejects_unknown_and_duplicate_keys(void) {
    EXPECT(fake_setup("{\"staff\": []}"),
           "unknown key `staff` (known keys: staff_only, banned, public_routes, login_url)");
    EXPECT(fake_setup("{\"banned\": [], \"banned\": []}"), "duplicate key `banned`");
}

static void setup_rejects_bad_values(void) {
    EXPECT(fake_setup("{\"banned\": \"state.x\"}"), "banned: expected a list");
    EXPECT(fake_setup("{\"staff_only\": [false]}"), "staff_only: expected a string");
    EXPECT(fake_setup("{\"staff_only\": [\"\"]}"), "staff_only: entries must not be empty");
    EXPECT(fake_setup("{\"public_routes\": [\"blog\"]}"),
           "public_routes: `blog` must start with `/` and not end with `/` (except `/` itself)");
    EXPECT(fake_setup("{\"public_routes\": [\"/blog/\"]}"),
           "public_routes: `/blog/` must start with `/` and not end with `/` (except `/` itself)");
    EXPECT(fake_setup("{\"login_url\": [\"/login/\"]}"), "login_url: expected a string");
    EXPECT(fake_setup("{\"login_url\": \"\"}"), "login_url: must not be empty");
}

static void setup_rejects_malformed_json(void) {
    EXPECT(fake_setup(""), "config is not a valid JSON object: expected an object");
    EXPECT(fake_setup("null"), "config is not a valid JSON object: expected an object");
    EXPECT(fake_setup("{\"banned\": [\"a\"] \"x\": 1}"),
           "config is not a valid JSON object: expected `,` or `}` in an object");
    EXPECT(fake_setup("{\"banned\": [\"a\tb\"]}"), "banned: control character in a string");
}

/* ---- on-connect --------------------------------------------------------------------------- */

static void every_connection_is_let_in(void) {
    EXPECT(fake_setup(CONFIG), NULL);
    EXPECT(fake_on_connect(), "allow[]");
    sign_in("ann", false);
    EXPECT(fake_on_connect(), "allow[]");
}

/* ---- on-event ----------------------------------------------------------------------------- */

static void banned_handlers_close_the_socket(void) {
    EXPECT(fake_setup(CONFIG), NULL);
    EXPECT(event(CLIENT, "state.debug.reset_db", "/"), CLOSED);
    sign_in("ann", true); /* even for staff */
    EXPECT(event(CLIENT, "state.debug.reset_db", "/settings"), CLOSED);
    EXPECT(event(CLIENT, "state.debug.reset_db_now", "/"), "allow[username: ann]"); /* exact names only */
}

static void identity_changes_always_run(void) {
    EXPECT(fake_setup(CONFIG), NULL);
    EXPECT(event(IDENTITY_CHANGE, "state.auth_state.on_identity_change", "/private"), "allow[]");
}

static void anonymous_visitors_log_in_outside_public_pages(void) {
    EXPECT(fake_setup(CONFIG), NULL);
    EXPECT(event(CLIENT, "state.counter.increment", "/"), "allow[]");
    EXPECT(event(CLIENT, "state.blog.load", "/blog"), "allow[]");
    EXPECT(event(CLIENT, "state.blog.load", "/blog/hello-world"), "allow[]");
    EXPECT(event(CLIENT, "state.blog.load", "/blogroll"), LOG_IN);
    EXPECT(event(CLIENT, "state.settings.save", "/settings"), LOG_IN);
    EXPECT(event(CLIENT, "state.counter.increment", ""), LOG_IN);
    EXPECT(fake_setup("{\"login_url\": \"/accounts/login/\"}"), NULL);
    EXPECT(event(CLIENT, "state.counter.increment", "/"), "refuse.login-required(/accounts/login/)");
}

static void anonymous_uploads_always_need_a_login(void) {
    EXPECT(fake_setup(CONFIG), NULL);
    EXPECT(event(UPLOAD, "state.blog.upload_avatar", "/blog"), LOG_IN);
}

static void staff_only_handlers(void) {
    EXPECT(fake_setup(CONFIG), NULL);
    EXPECT(event(CLIENT, "state.admin_state.delete_user", "/"), LOG_IN); /* even on a public page */
    sign_in("bob", false);
    EXPECT(event(CLIENT, "state.admin_state.delete_user", "/admin-panel"), STAFF_ONLY);
    EXPECT(event(UPLOAD, "state.admin_state.import_csv", "/admin-panel"), STAFF_ONLY);
    EXPECT(event(CLIENT, "state.admin_statements.list", "/"), "allow[username: bob]"); /* a plain prefix */
    sign_in("ann", true);
    EXPECT(event(CLIENT, "state.admin_state.delete_user", "/admin-panel"), "allow[username: ann]");
}

static void signed_in_users_may_run_everything_else(void) {
    EXPECT(fake_setup(CONFIG), NULL);
    sign_in("bob", false);
    EXPECT(event(CLIENT, "state.settings.save", "/settings"), "allow[username: bob]");
    EXPECT(event(UPLOAD, "state.settings.upload_avatar", "/settings"), "allow[username: bob]");
    sign_in("", false); /* an empty string comes as (void *)1 with len 0 */
    EXPECT(event(CLIENT, "state.settings.save", "/settings"), "allow[username: ]");
}

/* ---- runner ------------------------------------------------------------------------------- */

#define TEST(fn) {#fn, fn}
static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    TEST(setup_accepts_good_configs),
    TEST(setup_rejects_unknown_and_duplicate_keys),
    TEST(setup_rejects_bad_values),
    TEST(setup_rejects_malformed_json),
    TEST(every_connection_is_let_in),
    TEST(banned_handlers_close_the_socket),
    TEST(identity_changes_always_run),
    TEST(anonymous_visitors_log_in_outside_public_pages),
    TEST(anonymous_uploads_always_need_a_login),
    TEST(staff_only_handlers),
    TEST(signed_in_users_may_run_everything_else),
};

int main(void) {
    int passed = 0, failed = 0;
    for (size_t k = 0; k < sizeof tests / sizeof tests[0]; k++) {
        fake_reset();
        failed_checks = fake_failures = 0;
        tests[k].fn();
        bool ok = failed_checks == 0 && fake_failures == 0;
        printf("%s %s\n", ok ? "ok  " : "FAIL", tests[k].name);
        fflush(stdout);
        ok ? passed++ : failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
