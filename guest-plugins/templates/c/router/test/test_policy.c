/* test_policy.c: native unit tests of policy.c (`make test`).
 *
 * Each test sets up the fake gateway (fake_req, fake_who: see fake_host.h), calls the
 * exports, and compares the decision, written out as text, exactly. Under
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
#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "    line %d: expected %s\n", __LINE__, #cond); \
            failed_checks++;                                                 \
        }                                                                    \
    } while (0)

/* Routes a request for `path` with the current fake_who. */
static char *route(const char *path) {
    fake_req.path = path;
    return fake_route();
}

static void sign_in(const char *username, bool is_staff) {
    fake_who.authenticated = true;
    fake_who.user_id = "7";
    fake_who.username = username;
    fake_who.is_staff = is_staff;
}

#define TO_DJANGO "forward(upstream=django path=none set=[] remove=[x-staff-user])"
#define BAD_PREFIX(p) "prefixes: `" p "` must start with `/`, not end with `/` and not be `/`"

/* ---- setup ------------------------------------------------------------------------------ */

static void setup_accepts_an_empty_config_and_asks_for_identity(void) {
    router_needs_t needs = {0};
    EXPECT(fake_setup("{}", &needs), NULL);
    CHECK(needs.identity);
    EXPECT(fake_setup(" { \"prefixes\" : [ ] , \"login_url\" : \"/accounts/login/\" } ", &needs), NULL);
}

static void setup_rejects_unknown_and_duplicate_keys(void) {
    EXPECT(fake_setup("{\"prefix\": [\"/api\"]}", NULL), "unknown key `prefix` (known keys: prefixes, login_url)");
    EXPECT(fake_setup("{\"prefixes\": [], \"upstream\": \"x\"}", NULL),
           "unknown key `upstream` (known keys: prefixes, login_url)");
    EXPECT(fake_setup("{\"login_url\": \"/a/\", \"login_url\": \"/b/\"}", NULL), "duplicate key `login_url`");
}

static void setup_rejects_values_of_the_wrong_type(void) {
    EXPECT(fake_setup("{\"prefixes\": \"/api\"}", NULL), "prefixes: expected a list");
    EXPECT(fake_setup("{\"prefixes\": [\"/api\", 3]}", NULL), "prefixes: expected a string");
    EXPECT(fake_setup("{\"login_url\": true}", NULL), "login_url: expected a string");
    EXPECT(fake_setup("{\"login_url\": \"\"}", NULL), "login_url: must not be empty");
}

static void setup_rejects_bad_prefixes(void) {
    EXPECT(fake_setup("{\"prefixes\": [\"api\"]}", NULL), BAD_PREFIX("api"));
    EXPECT(fake_setup("{\"prefixes\": [\"/api/\"]}", NULL), BAD_PREFIX("/api/"));
    EXPECT(fake_setup("{\"prefixes\": [\"/api\", \"/\"]}", NULL), BAD_PREFIX("/"));
}

static void setup_rejects_malformed_json(void) {
    EXPECT(fake_setup("", NULL), "config is not a valid JSON object: expected an object");
    EXPECT(fake_setup("[]", NULL), "config is not a valid JSON object: expected an object");
    EXPECT(fake_setup("{\"prefixes\": [\"/api\"]", NULL),
           "config is not a valid JSON object: expected `,` or `}` in an object");
    EXPECT(fake_setup("{\"prefixes\": [\"/api\",]}", NULL), "prefixes: a list ends with `,`");
    EXPECT(fake_setup("{} {}", NULL), "config is not a valid JSON object: unexpected text after the value");
    EXPECT(fake_setup("{\"prefixes\": [\"/a\\x\"]}", NULL), "prefixes: bad escape in a string");
    EXPECT(fake_setup("{\"prefixes\": [\"/a\\ud800\"]}", NULL), "prefixes: lone surrogate in \\u escape");
    EXPECT(fake_setup("{\"prefixes\": [\"/a\\u0000\"]}", NULL), "prefixes: \\u0000 in a string");
    EXPECT(fake_setup("{\"prefixes\": [\"/a", NULL), "prefixes: unterminated string");
}

static void setup_decodes_escapes(void) {
    EXPECT(fake_setup("{\"prefixes\": [\"/caf\\u00e9\", \"/a\\/b\", \"/\\ud83d\\ude00\"]}", NULL), NULL);
    EXPECT(route("/café/menu"), TO_DJANGO);
    EXPECT(route("/a/b"), TO_DJANGO);
    EXPECT(route("/\xF0\x9F\x98\x80"), TO_DJANGO);
    EXPECT(route("/cafe"), "pass");
}

/* ---- route -------------------------------------------------------------------------------- */

static void admin_goes_to_django(void) {
    EXPECT(fake_setup("{}", NULL), NULL);
    EXPECT(route("/admin"), TO_DJANGO);
    EXPECT(route("/admin/"), TO_DJANGO);
    EXPECT(route("/admin/shop/product/1/change/"), TO_DJANGO);
    EXPECT(route("/administrator"), "pass");
    EXPECT(route("/api/items"), "pass");
}

static void configured_prefixes_go_to_django(void) {
    EXPECT(fake_setup("{\"prefixes\": [\"/api\", \"/webhooks\"]}", NULL), NULL);
    EXPECT(route("/api"), TO_DJANGO);
    EXPECT(route("/api/v1/items"), TO_DJANGO);
    EXPECT(route("/webhooks/stripe"), TO_DJANGO);
    EXPECT(route("/apiary"), "pass");
    EXPECT(route("/admin/"), TO_DJANGO);
    sign_in("ann", true); /* who it is does not matter outside /staff */
    EXPECT(route("/api/v1/items"), TO_DJANGO);
}

static void staff_area_sends_anonymous_visitors_to_log_in(void) {
    EXPECT(fake_setup("{}", NULL), NULL);
    EXPECT(route("/staff"), "refuse.login-required(/admin/login/)");
    EXPECT(route("/staff/reports"), "refuse.login-required(/admin/login/)");
    EXPECT(route("/staffing"), "pass");
    EXPECT(fake_setup("{\"login_url\": \"/accounts/login/\"}", NULL), NULL);
    EXPECT(route("/staff/reports"), "refuse.login-required(/accounts/login/)");
}

static void staff_area_refuses_users_who_are_not_staff(void) {
    EXPECT(fake_setup("{}", NULL), NULL);
    sign_in("bob", false);
    EXPECT(route("/staff/reports"), "refuse.forbidden(the staff area is for staff members only)");
}

static void staff_area_forwards_staff_with_their_name(void) {
    EXPECT(fake_setup("{}", NULL), NULL);
    sign_in("ann", true);
    EXPECT(route("/staff/reports"), "forward(upstream=django path=none set=[x-staff-user: ann] remove=[])");
    sign_in("", true); /* an empty string comes as (void *)1 with len 0 */
    EXPECT(route("/staff"), "forward(upstream=django path=none set=[x-staff-user: ] remove=[])");
}

static void everything_else_passes(void) {
    EXPECT(fake_setup("{\"prefixes\": [\"/api\"]}", NULL), NULL);
    EXPECT(route("/"), "pass");
    EXPECT(route("/about"), "pass");
    EXPECT(route("/_event"), "pass");
    EXPECT(route(""), "pass");
}

/* ---- runner ------------------------------------------------------------------------------- */

#define TEST(fn) {#fn, fn}
static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    TEST(setup_accepts_an_empty_config_and_asks_for_identity),
    TEST(setup_rejects_unknown_and_duplicate_keys),
    TEST(setup_rejects_values_of_the_wrong_type),
    TEST(setup_rejects_bad_prefixes),
    TEST(setup_rejects_malformed_json),
    TEST(setup_decodes_escapes),
    TEST(admin_goes_to_django),
    TEST(configured_prefixes_go_to_django),
    TEST(staff_area_sends_anonymous_visitors_to_log_in),
    TEST(staff_area_refuses_users_who_are_not_staff),
    TEST(staff_area_forwards_staff_with_their_name),
    TEST(everything_else_passes),
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
    EXPECT(fake_setup("{}", NULL), NULL); /* leave one config, so a leak check sees no garbage */
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
