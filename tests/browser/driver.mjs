// Headless Chromium (Debian's /usr/bin/chromium, through playwright-core) driven line by
// line from Python: tests/e2e/chromium.py starts this script, writes one JSON request per
// line on its stdin and reads one JSON answer per line on its stdout. The tests keep their
// steps and assertions in Python; this script only does what a person at the browser
// does (contexts, tabs, clicks, typing, files) and records what the browser saw.
//
//   node tests/browser/driver.mjs [--chromium /usr/bin/chromium] [--tag T] [--deadline-ms N]
//                                 [--trust-spki PIN]
//
// --trust-spki: Chromium accepts a server certificate whose key has this SHA-256 SPKI
// pin (base64) as if a trusted CA had signed it, and no other untrusted one.
//
// Request:  {"id": 1, "op": "goto", "page": "p1", "url": "http://127.0.0.1:3000/"}
// Answer:   {"id": 1, "ok": true, "value": …}  or  {"id": 1, "ok": false, "error": "…"}
//
// Ops (handles are strings: "c1" for contexts, "p1" for pages):
//   newContext {}                       -> "cN"   a separate browser profile (own cookies)
//   newPage {context}                   -> "pN"   a tab of that context
//   goto {page, url}                    -> HTTP status of the document
//   click {page, selector}, fill {page, selector, value}
//   setInputFiles {page, selector, files: [{name, mimeType, base64}]}
//   evaluate {page, expression}         -> the JSON value of a JavaScript expression
//   waitFor {page, expression, timeoutMs} -> the first truthy value of the expression
//                                          (polled every 100 ms; fails with the last value)
//   url {page}                          -> the page's URL
//   cookies {context}, addCookies {context, cookies}
//   log {page, since}                   -> what the page saw after sequence number `since`:
//        {seq, entries: [{seq, t, kind, …}]}, kinds: ws-open {url}, ws-sent / ws-received
//        {url, payload}, request {method, url, resourceType, postData}, response {method,
//        url, status, body (for fetch/xhr, ≤ 4000 chars)}, navigated {url} (main frame),
//        console {type, text}, pageerror {message}. A fetch/xhr response is logged once
//        its body has been read: after what the page did with a streamed body.
//   seq {}                              -> the current sequence number (for `log`'s since)
//   screenshot {page, path}             -> the path written
//   closeContext {context}, quit {}
//
// The browser is closed on `quit`, at the end of stdin, on SIGTERM, and after
// --deadline-ms (exit status 3); Chromium carries the marker switch --isthmus-test-tag=T
// so that a caller can find one that outlived this script.

import { parseArgs } from "node:util";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const { values: opt } = parseArgs({
    options: {
        chromium: { type: "string", default: "/usr/bin/chromium" },
        tag: { type: "string", default: "" },
        "deadline-ms": { type: "string", default: "300000" },
        "timeout-ms": { type: "string", default: "30000" },
        "trust-spki": { type: "string", default: "" },
    },
});
const timeout = Number(opt["timeout-ms"]);
const log = (line) => process.stderr.write(`[driver] ${line}\n`);
const answer = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

let browser = null;
let closing = false;
async function shutdown(code) {
    if (closing) return;
    closing = true;
    clearTimeout(watchdog);
    if (browser) await browser.close().catch((e) => log(`closing the browser: ${e.message}`));
    log(`exit ${code}`);
    process.exit(code);
}
const watchdog = setTimeout(() => {
    log(`deadline of ${opt["deadline-ms"]} ms exceeded`);
    shutdown(3);
}, Number(opt["deadline-ms"]));
process.on("SIGTERM", () => shutdown(143));

const contexts = new Map();
const pages = new Map();
const logs = new Map(); // page handle -> entries
let seq = 0;
const t0 = Date.now();

function record(handle, kind, fields) {
    seq += 1;
    logs.get(handle).push({ seq, t: Date.now() - t0, kind, ...fields });
}

function watch(handle, page) {
    logs.set(handle, []);
    page.on("websocket", (ws) => {
        const url = ws.url();
        record(handle, "ws-open", { url });
        ws.on("framesent", (f) => record(handle, "ws-sent", { url, payload: String(f.payload) }));
        ws.on("framereceived", (f) => record(handle, "ws-received", { url, payload: String(f.payload) }));
        ws.on("close", () => record(handle, "ws-close", { url }));
    });
    page.on("request", (r) => {
        let postData = null;
        try {
            postData = r.postData();
        } catch {
            postData = null; // binary
        }
        if (postData && postData.length > 4000) postData = postData.slice(0, 4000);
        record(handle, "request", { method: r.method(), url: r.url(), resourceType: r.resourceType(), postData });
    });
    page.on("response", async (r) => {
        const req = r.request();
        const fields = { method: req.method(), url: r.url(), status: r.status(), body: null };
        if (["fetch", "xhr"].includes(req.resourceType())) {
            try {
                fields.body = (await r.text()).slice(0, 4000);
            } catch {
                fields.body = null;
            }
        }
        record(handle, "response", fields);
    });
    page.on("framenavigated", (frame) => {
        if (frame === page.mainFrame()) record(handle, "navigated", { url: frame.url() });
    });
    page.on("console", (m) => record(handle, "console", { type: m.type(), text: m.text() }));
    page.on("pageerror", (e) => record(handle, "pageerror", { message: e.message }));
}

function need(map, handle, what) {
    const v = map.get(handle);
    if (!v) throw new Error(`no ${what} ${JSON.stringify(handle)}`);
    return v;
}

const ops = {
    async newContext() {
        const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
        context.setDefaultTimeout(timeout);
        const handle = `c${contexts.size + 1}`;
        contexts.set(handle, context);
        return handle;
    },
    async newPage({ context }) {
        const page = await need(contexts, context, "context").newPage();
        const handle = `p${pages.size + 1}`;
        pages.set(handle, page);
        watch(handle, page);
        return handle;
    },
    async goto({ page, url }) {
        const resp = await need(pages, page, "page").goto(url, { timeout });
        return resp ? resp.status() : null;
    },
    async click({ page, selector }) {
        await need(pages, page, "page").locator(selector).click({ timeout });
        return null;
    },
    async fill({ page, selector, value }) {
        await need(pages, page, "page").locator(selector).fill(value, { timeout });
        return null;
    },
    async setInputFiles({ page, selector, files }) {
        const payloads = files.map((f) => ({ name: f.name, mimeType: f.mimeType, buffer: Buffer.from(f.base64, "base64") }));
        await need(pages, page, "page").locator(selector).setInputFiles(payloads, { timeout });
        return null;
    },
    async evaluate({ page, expression }) {
        return await need(pages, page, "page").evaluate(String(expression));
    },
    async waitFor({ page, expression, timeoutMs }) {
        const p = need(pages, page, "page");
        const deadline = Date.now() + Number(timeoutMs ?? timeout);
        const code = String(expression);
        let last;
        for (;;) {
            try {
                last = await p.evaluate(code);
                if (last) return last;
            } catch (e) {
                last = `(${e.message.split("\n")[0]})`; // navigating
            }
            if (Date.now() >= deadline) break;
            await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error(`not true within ${timeoutMs ?? timeout} ms on ${p.url()}: ${expression}; last value ${JSON.stringify(last)}`);
    },
    async url({ page }) {
        return need(pages, page, "page").url();
    },
    async cookies({ context }) {
        return await need(contexts, context, "context").cookies();
    },
    async addCookies({ context, cookies }) {
        await need(contexts, context, "context").addCookies(cookies);
        return null;
    },
    async log({ page, since }) {
        need(pages, page, "page");
        return { seq, entries: logs.get(page).filter((e) => e.seq > (since ?? 0)) };
    },
    async seq() {
        return seq;
    },
    async screenshot({ page, path }) {
        await need(pages, page, "page").screenshot({ path, fullPage: true, timeout: 15000 });
        return path;
    },
    async closeContext({ context }) {
        await need(contexts, context, "context").close();
        contexts.delete(context);
        return null;
    },
    async quit() {
        setImmediate(() => shutdown(0));
        return null;
    },
};

try {
    const args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]; // prettier-ignore
    if (opt.tag) args.push(`--isthmus-test-tag=${opt.tag}`);
    if (opt["trust-spki"]) args.push(`--ignore-certificate-errors-spki-list=${opt["trust-spki"]}`);
    browser = await chromium.launch({ executablePath: opt.chromium, headless: true, chromiumSandbox: false, args, timeout });
    log(`chromium ${browser.version()}`);
} catch (e) {
    answer({ id: 0, ok: false, error: `launching chromium: ${e.message}` });
    await shutdown(1);
}
answer({ id: 0, ok: true, value: { version: browser.version() } });

// One request at a time, in order.
let queue = Promise.resolve();
const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
    queue = queue.then(async () => {
        let req;
        try {
            req = JSON.parse(line);
        } catch (e) {
            answer({ id: null, ok: false, error: `not JSON: ${e.message}` });
            return;
        }
        const op = ops[req.op];
        if (!op) {
            answer({ id: req.id, ok: false, error: `unknown op ${JSON.stringify(req.op)}` });
            return;
        }
        try {
            answer({ id: req.id, ok: true, value: (await op(req)) ?? null });
        } catch (e) {
            answer({ id: req.id, ok: false, error: e instanceof Error ? e.message : String(e) });
        }
    });
});
lines.on("close", () => queue.then(() => shutdown(0)));
