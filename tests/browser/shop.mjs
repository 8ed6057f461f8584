// The shop example in a real browser: headless Chromium (Debian's /usr/bin/chromium)
// driven by playwright-core, against the gateway serving the exported Reflex SPA.
// Run by tests/e2e/test_browser.py; usable by hand as well:
//
//   SHOP_PASSWORD=… node tests/browser/shop.mjs --base http://127.0.0.1:3000 \
//       --scenario staff --user staffer --products '["Mug","Poster","T-shirt"]' --out test-output/browser
//
// Scenarios:
//   staff      log in on /admin/login/ (the admin's form), open /, see "Hello, <user>" and
//              the products, press "Deactivate all" (the page empties, the API agrees),
//              press "Restock" (the products are back).
//   nonstaff   log in on /api/auth/login/ (the admin's form takes staff accounts only),
//              open /, see "Hello, <user>", press "Deactivate all": the gateway refuses
//              the event and the browser loads /admin/login/?next=/ (a full page load,
//              Django's page saying who is logged in); the API still lists the products.
//   anonymous  open / without logging in: "Hello, anonymous" with the products; press
//              "Deactivate all": sent to /admin/login/?next=/ as well.
//
// --products is the JSON list of the active product names (read by the caller from the
// DB or the API), the page must show exactly these. The password comes from SHOP_PASSWORD.
//
// Output: stderr gets a log line per step; stdout gets one JSON object per line, one per
// step ({"step", "ok", "ms", …what was seen}) and last {"result": "pass"|"fail", …}.
// Screenshots: <out>/<scenario>-<NN>-<name>.png (also one named FAILED-… at a failure).
// Exit status: 0 when every step passed, 1 when one failed, 2 on bad arguments, 3 when
// the whole run exceeded --deadline-ms. The browser is closed in every case.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

const { values: opt } = parseArgs({
    options: {
        base: { type: "string" },
        scenario: { type: "string" },
        user: { type: "string", default: "" },
        products: { type: "string" },
        out: { type: "string", default: "test-output/browser" },
        chromium: { type: "string", default: "/usr/bin/chromium" },
        // A marker switch on Chromium's command line, so a caller can find a browser
        // that outlived this script (Chromium ignores switches it does not know).
        tag: { type: "string", default: "" },
        "timeout-ms": { type: "string", default: "60000" },
        "deadline-ms": { type: "string", default: "240000" },
    },
});

function usage(msg) {
    process.stderr.write(`shop.mjs: ${msg}\n`);
    process.exit(2);
}

if (!opt.base) usage("--base URL is required");
if (!["staff", "nonstaff", "anonymous"].includes(opt.scenario)) usage("--scenario staff|nonstaff|anonymous");
if (opt.scenario !== "anonymous" && !opt.user) usage("--user is required for this scenario");
const password = process.env.SHOP_PASSWORD ?? "";
if (opt.scenario !== "anonymous" && !password) usage("SHOP_PASSWORD is not set");
let expectedProducts;
try {
    expectedProducts = JSON.parse(opt.products ?? "");
} catch {
    usage("--products must be a JSON list of names");
}
if (!Array.isArray(expectedProducts) || expectedProducts.length === 0) usage("--products must list at least one name");

const base = opt.base.replace(/\/+$/, "");
const timeout = Number(opt["timeout-ms"]);
const sorted = (names) => [...names].sort();
const want = sorted(expectedProducts);
const same = (a, b) => JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));
mkdirSync(opt.out, { recursive: true });

// -- reporting ----------------------------------------------------------------------------
const steps = [];
const screenshots = [];
const log = (line) => process.stderr.write(`[${opt.scenario}] ${line}\n`);
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

class StepFailed extends Error {}

let page; // the current page, for screenshots
let shotCount = 0;
async function screenshot(name) {
    if (!page) return null;
    shotCount += 1;
    const file = join(opt.out, `${opt.scenario}-${String(shotCount).padStart(2, "0")}-${name}.png`);
    try {
        await page.screenshot({ path: file, fullPage: true, timeout: 15000 });
        screenshots.push(file);
        log(`screenshot ${file}`);
        return file;
    } catch (e) {
        log(`screenshot ${file} failed: ${e.message}`);
        return null;
    }
}

async function step(name, fn) {
    const t0 = Date.now();
    log(`step: ${name}`);
    let seen;
    try {
        seen = (await fn()) ?? {};
    } catch (e) {
        const error = e instanceof Error ? e.message : String(e);
        const record = { step: name, ok: false, ms: Date.now() - t0, url: page?.url(), error };
        steps.push(record);
        emit(record);
        log(`FAILED: ${name}: ${error}`);
        await screenshot(`FAILED-${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}`);
        throw new StepFailed(`${name}: ${error}`);
    }
    const record = { step: name, ok: true, ms: Date.now() - t0, ...seen };
    steps.push(record);
    emit(record);
    return seen;
}

// -- the page -------------------------------------------------------------------------------
const path = () => new URL(page.url()).pathname;

async function readPage() {
    return page.evaluate(() => ({
        greeting: document.querySelector("#greeting")?.textContent ?? null,
        products: [...document.querySelectorAll("#products tbody tr")].map(
            (tr) => tr.querySelector("td, th")?.textContent ?? "",
        ),
        message: document.querySelector("#message")?.textContent ?? null,
    }));
}

// Waits until `ok(state)` holds for what the page shows; on timeout the error says what
// the page showed last.
async function waitForPage(what, ok) {
    const deadline = Date.now() + timeout;
    let last = null;
    while (Date.now() < deadline) {
        try {
            last = await readPage();
            if (ok(last)) return last;
        } catch (e) {
            last = { error: e.message }; // navigating
        }
        await page.waitForTimeout(100);
    }
    throw new Error(`${what}: not seen within ${timeout} ms; the page (${page.url()}) showed ${JSON.stringify(last)}`);
}

async function productsFromApi() {
    const r = await page.request.get(`${base}/api/shop/products/`, { timeout });
    if (!r.ok()) throw new Error(`GET /api/shop/products/ answered ${r.status()}`);
    return (await r.json()).map((p) => ({ name: p.name, is_active: p.is_active }));
}

// Logs in through a Django login form (the admin's or django.contrib.auth's): fills it,
// submits, and expects Django's redirect to `next` (/).
async function logIn(loginPath) {
    const resp = await page.goto(`${base}${loginPath}?next=/`, { timeout });
    if (!resp || resp.status() !== 200) throw new Error(`GET ${loginPath} answered ${resp?.status()}`);
    const form = page.locator("form:has(input[name=password])");
    await form.locator("input[name=username]").fill(opt.user, { timeout });
    await form.locator("input[name=password]").fill(password, { timeout });
    const [post] = await Promise.all([
        page.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === loginPath, {
            timeout,
        }),
        form.locator("[type=submit]").click({ timeout }),
    ]);
    if (post.status() !== 302) {
        await page.waitForLoadState("load", { timeout });
        const errors = await page.locator(".errornote, .errorlist").allTextContents();
        throw new Error(
            `POST ${loginPath} as ${opt.user} answered ${post.status()} instead of 302: ${errors.join(" ").trim() || "(no error shown)"}`,
        );
    }
    await page.waitForURL((u) => u.pathname === "/", { timeout });
    return { login_status: post.status(), location: post.headers()["location"] };
}

// Opens / and waits until the on_load handler's answer is on the page: the products and
// the greeting (the greeting's initial value is "Hello, anonymous": only the products
// tell that on_load ran).
async function openShop(greeting) {
    if (path() !== "/") await page.goto(`${base}/`, { timeout });
    const seen = await waitForPage(`the greeting "${greeting}" with the products ${JSON.stringify(want)}`, (s) =>
        s.greeting === greeting && same(s.products, want),
    );
    return { greeting: seen.greeting, products: seen.products };
}

// Presses "Deactivate all" and expects a full-page load of Django's login page with
// next=/ (the gateway's refusal of an event a rule denies).
async function pressAndExpectLogin() {
    const documents = [];
    const onRequest = (req) => {
        if (req.isNavigationRequest() && req.frame() === page.mainFrame()) documents.push(req.url());
    };
    page.on("request", onRequest);
    await page.locator("#deactivate-all").click({ timeout });
    try {
        await page.waitForURL((u) => u.pathname === "/admin/login/", { timeout });
    } catch {
        const s = await readPage().catch(() => ({}));
        throw new Error(`no redirect to /admin/login/ within ${timeout} ms; still on ${page.url()}, the page showed ${JSON.stringify(s)}`);
    }
    await page.waitForLoadState("load", { timeout });
    page.off("request", onRequest);
    const url = new URL(page.url());
    if (url.searchParams.get("next") !== "/") throw new Error(`redirected to ${page.url()}, expected next=/`);
    if (!documents.some((d) => new URL(d).pathname === "/admin/login/"))
        throw new Error(`/admin/login/ was not loaded as a document (navigations: ${JSON.stringify(documents)})`);
    // Django's own page, not the SPA: its login form is there.
    await page.locator("form:has(input[name=password])").waitFor({ timeout });
    const note = (await page.locator(".errornote").allTextContents()).join(" ").replace(/\s+/g, " ").trim();
    return { redirected_to: url.pathname + url.search, document_requests: documents, errornote: note };
}

// -- scenarios ------------------------------------------------------------------------------
async function staff() {
    await step("log in on /admin/login/", () => logIn("/admin/login/"));
    await step("open / and see the greeting and the products", () => openShop(`Hello, ${opt.user}`));
    await screenshot("logged-in");
    await step("press Deactivate all: the page empties", async () => {
        await page.locator("#deactivate-all").click({ timeout });
        const s = await waitForPage(`"deactivated by ${opt.user}" and no products`, (s) =>
            (s.message ?? "").includes(`deactivated by ${opt.user}`) && s.products.length === 0,
        );
        if (path() !== "/") throw new Error(`left the page: ${page.url()}`);
        return { message: s.message, products: s.products };
    });
    await screenshot("deactivated");
    await step("the API lists every product inactive", async () => {
        const api = await productsFromApi();
        const active = api.filter((p) => p.is_active).map((p) => p.name);
        if (active.length) throw new Error(`still active: ${JSON.stringify(active)}`);
        return { api_active: active };
    });
    await step("press Restock: the products are back", async () => {
        await page.locator("#restock").click({ timeout });
        const s = await waitForPage(`"restocked by ${opt.user}" and the products`, (s) =>
            (s.message ?? "").includes(`restocked by ${opt.user}`) && same(s.products, want),
        );
        return { message: s.message, products: s.products };
    });
    await screenshot("restocked");
    await step("the API lists the products active", async () => {
        const api = await productsFromApi();
        const active = api.filter((p) => p.is_active).map((p) => p.name);
        if (!same(active, want)) throw new Error(`active: ${JSON.stringify(active)}, expected ${JSON.stringify(want)}`);
        return { api_active: active };
    });
}

async function nonstaff() {
    await step("log in on /api/auth/login/", () => logIn("/api/auth/login/"));
    await step("open / and see the greeting and the products", () => openShop(`Hello, ${opt.user}`));
    await screenshot("logged-in");
    const seen = await step("press Deactivate all: sent to /admin/login/?next=/", pressAndExpectLogin);
    await screenshot("refused-login-page");
    await step("Django's login page says who is logged in", async () => {
        if (!seen.errornote.includes(`authenticated as ${opt.user}`))
            throw new Error(`expected "authenticated as ${opt.user}" on the page, got ${JSON.stringify(seen.errornote)}`);
        return {};
    });
    await step("the API still lists the products active", async () => {
        const active = (await productsFromApi()).filter((p) => p.is_active).map((p) => p.name);
        if (!same(active, want)) throw new Error(`active: ${JSON.stringify(active)}, expected ${JSON.stringify(want)}`);
        return { api_active: active };
    });
}

async function anonymous() {
    await step("open / and see the greeting and the products", async () => {
        await page.goto(`${base}/`, { timeout });
        return openShop("Hello, anonymous");
    });
    await screenshot("anonymous");
    const seen = await step("press Deactivate all: sent to /admin/login/?next=/", pressAndExpectLogin);
    await screenshot("login-page");
    await step("Django's login page has nobody logged in", async () => {
        if (seen.errornote.includes("authenticated as")) throw new Error(`unexpected: ${seen.errornote}`);
        return {};
    });
}

// -- main -----------------------------------------------------------------------------------
const started = Date.now();
let browser;
let result = "fail";
let failure = null;
const websockets = [];
const consoleErrors = [];
const pageErrors = [];

const watchdog = setTimeout(async () => {
    log(`deadline of ${opt["deadline-ms"]} ms exceeded`);
    emit({ result: "fail", error: `deadline of ${opt["deadline-ms"]} ms exceeded`, steps, screenshots });
    await browser?.close().catch(() => {});
    process.exit(3);
}, Number(opt["deadline-ms"]));

try {
    await step("launch chromium", async () => {
        const args = [...CHROMIUM_ARGS];
        if (opt.tag) args.push(`--isthmus-test-tag=${opt.tag}`);
        browser = await chromium.launch({
            executablePath: opt.chromium,
            headless: true,
            chromiumSandbox: false,
            args,
            timeout,
        });
        return { version: browser.version() };
    });
    const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    context.setDefaultTimeout(timeout);
    page = await context.newPage();
    page.on("websocket", (ws) => websockets.push(ws.url()));
    page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await { staff, nonstaff, anonymous }[opt.scenario]();
    result = "pass";
} catch (e) {
    failure = e instanceof StepFailed ? e.message : `${e?.stack ?? e}`;
    if (!(e instanceof StepFailed)) {
        log(`error: ${failure}`);
        await screenshot("FAILED");
    }
} finally {
    if (browser) {
        await browser.close().catch((e) => log(`closing the browser: ${e.message}`));
    }
    clearTimeout(watchdog);
}

emit({
    result,
    scenario: opt.scenario,
    user: opt.user || null,
    error: failure,
    ms: Date.now() - started,
    websockets,
    console_errors: consoleErrors,
    page_errors: pageErrors,
    screenshots,
    steps,
});
log(`${result} in ${Date.now() - started} ms`);
process.exitCode = result === "pass" ? 0 : 1;
