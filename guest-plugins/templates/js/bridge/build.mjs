// npm run build: src/component.js -> bridge.wasm, a component of the world `bridge` of
// wit/policy.wit. Also writes TypeScript declarations of the world into types/ (for
// editors; `node build.mjs types` writes only those) and refuses a component that
// imports anything the gateway does not provide.
import { componentize } from '@bytecodealliance/componentize-js';
import { componentWit, types } from '@bytecodealliance/jco';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const WORLD = 'bridge';
const ENTRY = 'src/component.js';
const OUTPUT = `${WORLD}.wasm`;
/**
 * Interfaces the gateway links: WASI 0.2 with nothing granted (stdout and stderr go to
 * its log) and the contract's own interfaces. Anything else (wasi:http, wasi:sockets)
 * makes the gateway refuse the plugin, so the build refuses it first.
 */
const ALLOWED_IMPORTS = [
  /^isthmus:policy\//,
  /^wasi:(cli|io|clocks|random|filesystem)\//,
];

process.chdir(dirname(fileURLToPath(import.meta.url)));

if (!existsSync('wit/policy.wit')) {
  fail('wit/policy.wit is missing: `isthmus plugin new` writes it; copy the WIT of the gateway you target there');
}

await writeTypes();
if (process.argv[2] === 'types') process.exit(0);

const started = performance.now();
const { component } = await componentize({
  sourcePath: ENTRY,
  witPath: 'wit',
  worldName: WORLD,
  // No fetch() and no `fetch` event handler: they would import wasi:http, which the
  // gateway does not provide. stdio (console.log to the gateway's log), clocks and
  // random stay on.
  disableFeatures: ['http', 'fetch-event'],
});
checkImports(await componentWit(component));
await writeFile(OUTPUT, component);
const seconds = (performance.now() - started) / 1000;
console.log(`${OUTPUT}: ${(component.length / 1048576).toFixed(1)} MiB, built in ${seconds.toFixed(1)} s`);

/**
 * Fails unless the component's WIT (as `jco wit bridge.wasm` prints it) imports only
 * what the gateway links. (componentize-js itself checks that every export of the
 * world is defined.)
 *
 * @param {string} wit
 */
function checkImports(wit) {
  const imports = [...wit.matchAll(/^\s*import\s+([^;]+);/gm)].map((m) => m[1].trim());
  const refused = imports.filter((name) => !ALLOWED_IMPORTS.some((re) => re.test(name)));
  if (refused.length > 0) {
    fail(`the component imports what the gateway does not provide: ${refused.join(', ')}\n${wit}`);
  }
  console.log(`imports: ${imports.join(', ')}`);
}

/** Guest declarations of the world, for editors and JSDoc; not needed to build. */
async function writeTypes() {
  try {
    const files = await types('wit', { worldName: WORLD, guest: true, outDir: 'types/' });
    await rm('types', { recursive: true, force: true });
    for (const [name, text] of Object.entries(files)) {
      await mkdir(join(name, '..'), { recursive: true });
      await writeFile(name, text);
    }
  } catch (e) {
    console.warn(`warning: no TypeScript declarations written to types/: ${e}`);
  }
}

/** @param {string} message */
function fail(message) {
  console.error(`build failed: ${message}`);
  process.exit(1);
}
