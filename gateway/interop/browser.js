// A real headless Chromium running JsSIP (page.html), driven line by line over stdin/stdout by interop.py.
//   node browser.js TONE.wav PROFILE_DIR
// stdin:  {"id": 1, "op": "start"|"call"|..., "args": [...]}   (window.rtc.<op>(...args) in the page)
// stdout: {"id": 1, "ok": true, "result": ...} for each command, {"event": ...} whenever the page reports one.
// The modules come from NODE_PATH (gateway/interop/run installs playwright-core and jssip there).
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');
const readline = require('readline');

const [tone, profile] = process.argv.slice(2);
const here = __dirname;
const bundle = path.join(process.env.INTEROP_NODE, 'jssip.bundle.js');
const out = o => process.stdout.write(JSON.stringify(o) + '\n');

(async () => {
  const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    '--autoplay-policy=no-user-gesture-required', '--disable-features=WebRtcHideLocalIpsWithMdns,LocalNetworkAccessChecks',
    '--allow-loopback-in-peer-connection', '--ignore-certificate-errors',
    '--use-file-for-fake-audio-capture=' + tone];
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args, ignoreHTTPSErrors: true });
  const page = ctx.pages()[0] || await ctx.newPage();
  // The page is served from a secure origin (http://localhost counts) without a web server.
  await page.route('http://localhost/**', route => {
    const file = new URL(route.request().url()).pathname === '/jssip.bundle.js' ? bundle : path.join(here, 'page.html');
    route.fulfill({ body: fs.readFileSync(file), contentType: file.endsWith('.js') ? 'text/javascript' : 'text/html' });
  });
  await page.exposeFunction('__emit', s => out(JSON.parse(s)));
  page.on('console', m => { if (m.type() === 'error') out({ event: 'console', text: m.text() }); });
  page.on('pageerror', e => out({ event: 'pageerror', text: String(e) }));
  await page.goto('http://localhost/page.html');

  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const { id, op, args: a } = JSON.parse(line);
    if (op === 'quit') break;
    try {
      const result = await page.evaluate(([o, x]) => window.rtc[o](...x), [op, a || []]);
      out({ id, ok: true, result });
    } catch (e) {
      out({ id, ok: false, error: String(e) });
    }
  }
  await ctx.close();
  process.exit(0);
})().catch(e => { out({ event: 'fatal', text: String(e && e.stack || e) }); process.exit(1); });
