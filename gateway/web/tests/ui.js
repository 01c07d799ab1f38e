#!/usr/bin/env node
// Browser test of the RTC Edge web UI: real headless Chromium (Debian's /usr/bin/chromium through
// playwright-core; never a downloaded browser) walks through the UI like a new user, against a running
// gatewayd: first-boot password, the setup wizard, dashboard, configuration, updates, logs, log in/out.
//
//   node gateway/web/tests/ui.js --url http://127.0.0.1:PORT --out DIR [--bad-bundle FILE]
//        [--password PW] [--chromium PATH]
//
// playwright-core comes from NODE_PATH, else $INTEROP_NODE/node_modules, else
// ~/.cache/rtc-edge/interop-node/node_modules (where gateway/interop/run installs it).
// Prints "PASS <step>" or "FAIL <step>: <why>" per step; exit status 0 only if every step passed.
// DIR gets a full-page screenshot of each page/step (01-setup.png, 02-wizard-network.png, ...), a
// fail-*.png for each failed step, and console.txt (everything the page logged). Any CSP violation,
// uncaught page error or request to another origin fails the run. A gateway that already has a password
// is logged into with --password (the setup-only steps are then left out).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

const STEP_MS = 15000;

function parseArgs(argv) {
  const o = { password: 'edge-ui-test-Pass-1', chromium: process.env.CHROMIUM || '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = argv[i + 1];
    const need = () => { if (v === undefined) usage(`${k} needs a value`); i++; return v; };
    if (k === '--url') o.url = need().replace(/\/+$/, '');
    else if (k === '--out') o.out = need();
    else if (k === '--bad-bundle') o.badBundle = need();
    else if (k === '--password') o.password = need();
    else if (k === '--chromium') o.chromium = need();
    else if (k === '-h' || k === '--help') usage();
    else usage(`unknown argument ${k}`);
  }
  if (!o.url || !o.out) usage('--url and --out are required');
  return o;
}
function usage(msg) {
  if (msg) console.error('ui.js: ' + msg);
  console.error('usage: node gateway/web/tests/ui.js --url http://127.0.0.1:PORT --out DIR [--bad-bundle FILE] [--password PW] [--chromium PATH]');
  process.exit(2);
}
function loadPlaywright() {
  const tries = ['playwright-core'];
  if (process.env.INTEROP_NODE) tries.push(path.join(process.env.INTEROP_NODE, 'node_modules', 'playwright-core'));
  tries.push(path.join(os.homedir(), '.cache', 'rtc-edge', 'interop-node', 'node_modules', 'playwright-core'));
  for (const t of tries) {
    try { return require(t); } catch (e) { if (e.code !== 'MODULE_NOT_FOUND') throw e; }
  }
  console.error('ui.js: playwright-core not found: run gateway/interop/run once (it installs it into ' +
    '~/.cache/rtc-edge/interop-node), or set NODE_PATH to a node_modules that has it');
  process.exit(2);
}

const oneLine = e => String((e && e.message) || e).split('\n').map(s => s.trim()).filter(Boolean).slice(0, 3).join(' | ').slice(0, 400);
const slug = s => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);

process.stdout.on('error', () => {}); // a closed pipe (| head) must not stop the run before the browser closes

(async () => {
  const opt = parseArgs(process.argv.slice(2));
  const { chromium } = loadPlaywright();
  fs.mkdirSync(opt.out, { recursive: true });
  const origin = new URL(opt.url).origin;
  let badBundle = opt.badBundle;
  if (!badBundle) {
    badBundle = path.join(opt.out, 'bad-bundle.raucb');
    const junk = Buffer.alloc(4096);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 131 + 7) & 0xff;
    fs.writeFileSync(badBundle, junk);
  }

  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'edge-ui-test-'));
  const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--ignore-certificate-errors', '--disable-features=LocalNetworkAccessChecks'];
  const log = [], csp = [], pageErrors = [], foreign = [];
  let ctx = null, page = null, failed = 0, abort = null, shotNo = 0;
  const watchdog = setTimeout(() => { console.log('FAIL the run: took longer than 5 minutes'); process.exit(1); }, 300000);

  async function shot(name) {
    await page.evaluate(() => window.scrollTo(0, 0)); // a full-page shot of a scrolled page misplaces sticky bars
    await page.screenshot({ path: path.join(opt.out, name + '.png'), fullPage: true });
  }
  async function step(name, fn, critical) {
    if (abort) { failed++; console.log(`FAIL ${name}: not run (${abort})`); return; }
    let timer;
    try {
      const note = await Promise.race([fn(), new Promise((_, no) => { timer = setTimeout(() => no(new Error(`timed out after ${STEP_MS / 1000} s`)), STEP_MS); })]);
      console.log(`PASS ${name}` + (note ? ` (${note})` : ''));
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${oneLine(e)}`);
      try { await shot(`fail-${String(++shotNo).padStart(2, '0')}-${slug(name)}`); } catch (_) { /* page gone */ }
      if (critical) abort = `"${name}" failed`;
    } finally { clearTimeout(timer); }
  }
  const loc = sel => page.locator(sel).first();
  const text = async sel => (await loc(sel).innerText()).trim();
  const visible = sel => loc(sel).waitFor({ state: 'visible' });
  // Waits until ok or bad is visible; throws bad's text if bad shows.
  async function outcome(ok, bad, what) {
    await page.locator(`${ok}:visible, ${bad}:visible`).first().waitFor({ state: 'visible' });
    if (await loc(bad).isVisible()) throw new Error(`${what}: ${oneLine(await text(bad))}`);
  }
  const wizardNext = async (nextStep, what) => {
    await loc('#wizard-next').click();
    await outcome(`#wizard-${nextStep}`, '#wizard-error', what + ' refused');
  };
  const fromPage = (p) => page.evaluate(async u => {
    const r = await fetch(u, { credentials: 'same-origin', cache: 'no-store' });
    return { status: r.status, body: await r.json().catch(() => null) };
  }, p);

  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: opt.chromium, headless: true, args, ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
    page = ctx.pages()[0] || await ctx.newPage();
    page.setDefaultTimeout(STEP_MS - 2000);
    page.on('console', m => {
      const t = m.text();
      log.push(`[${m.type()}] ${t}`);
      if (/Content[- ]Security[- ]Policy|Refused to (load|execute|apply|connect|evaluate|create|frame)/i.test(t)) csp.push(t);
    });
    page.on('pageerror', e => { pageErrors.push(String((e && e.stack) || e)); log.push(`[pageerror] ${e}`); });
    page.on('request', r => {
      const u = r.url();
      if (!/^(data|blob|about):/.test(u) && new URL(u).origin !== origin) foreign.push(u);
    });
    page.on('dialog', d => d.dismiss().catch(() => {}));
    await page.exposeFunction('__edgeCspReport', s => { csp.push(s); log.push(`[csp] ${s}`); });
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', e => {
        window.__edgeCspReport(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile || '?'}:${e.lineNumber} ${e.sample || ''}`);
      });
    });

    let firstBoot = false;
    await step('open the UI: first boot screen', async () => {
      await page.goto(opt.url + '/');
      await page.locator('#setup-password:visible, #login-password:visible').first().waitFor();
      firstBoot = await loc('#setup-password').isVisible();
      await shot(firstBoot ? '01-setup' : '01-login');
      if (!firstBoot && !opt.password) throw new Error('the gateway already has a password (not a first boot)');
      return firstBoot ? 'setup screen' : 'login screen: not a first boot, logging in with --password';
    }, true);

    if (firstBoot) {
      await step('setup refuses a short password', async () => {
        await loc('#setup-password').fill('short');
        await loc('#setup-confirm').fill('short');
        await loc('#setup-submit').click();
        await visible('#setup-password-error');
        const t = await text('#setup-password-error');
        if (!t) throw new Error('empty error text');
        return t;
      });
      await step('set the admin password', async () => {
        await loc('#setup-password').fill(opt.password);
        await loc('#setup-confirm').fill(opt.password);
        await shot('01-setup');
        await loc('#setup-submit').click();
        await outcome('#wizard-network', '#setup-error', 'setup refused');
      }, true);
    } else {
      await step('log in with --password', async () => {
        await loc('#login-password').fill(opt.password);
        await loc('#login-submit').click();
        await outcome('#nav', '#login-error', 'login refused');
        await page.evaluate(() => { location.hash = '#/wizard'; });
        await visible('#wizard-network');
      }, true);
    }

    await step('wizard 1: network keeps DHCP', async () => {
      await visible('#net-mode-dhcp');
      await loc('#net-mode-dhcp').check();
      if (await loc('#net-address').isVisible()) throw new Error('static address fields shown with DHCP chosen');
      if (!(await text('#net-applies')).includes('boot')) throw new Error('no "applies at the next boot" note');
      await shot('02-wizard-network');
      await wizardNext('time', 'network settings');
    }, true);

    await step('wizard 2: time server pool.ntp.org', async () => {
      await visible('#net-ntp');
      await loc('#net-ntp').fill('pool.ntp.org');
      await shot('03-wizard-time');
      await wizardNext('sip', 'time settings');
      const r = await fromPage('/api/network');
      if (r.status !== 200 || !r.body || r.body.ntp !== 'pool.ntp.org' || r.body.mode !== 'dhcp') {
        throw new Error(`GET /api/network after saving: ${r.status} ${JSON.stringify(r.body)}`);
      }
      return 'GET /api/network: dhcp, pool.ntp.org';
    }, true);

    await step('wizard 3: SIP trunk 127.0.0.1:5080 udp', async () => {
      await visible('#trunk-address');
      await loc('#trunk-address').fill('127.0.0.1');
      await loc('#trunk-port').fill('5080');
      await loc('#trunk-transport').selectOption('udp');
      await shot('04-wizard-sip');
      await wizardNext('cert', 'trunk');
    }, true);

    await step('wizard 4: self-signed certificate for edge.local', async () => {
      await visible('#cert-hostname');
      await loc('#cert-hostname').fill('edge.local');
      await loc('#cert-generate').click();
      await outcome('#cert-result', '#cert-error', 'certificate refused');
      const subj = await text('#cert-subject');
      if (!subj.includes('edge.local')) throw new Error(`subject shown is "${subj}"`);
      await shot('05-wizard-cert');
      await wizardNext('test', 'certificate step');
      return subj;
    }, true);

    await step('wizard 5: test call', async () => {
      await loc('#test-call').click();
      await visible('#test-result[data-state="done"]');
      const t = await text('#test-result');
      if (!t) throw new Error('no result text');
      await shot('06-wizard-test');
      return t;
    }, true);

    await step('finish: dashboard shows the gateway ready', async () => {
      await loc('#wizard-finish').click();
      await visible('#dash-ready[data-ready]');
      await page.waitForFunction(() => {
        const v = document.getElementById('dash-version');
        return v && v.textContent.trim() && v.textContent.trim() !== '…';
      });
      const ready = await text('#dash-ready'), version = await text('#dash-version');
      if (await loc('#dash-ready').getAttribute('data-ready') !== 'true') throw new Error(`#dash-ready says "${ready}"`);
      await page.locator('#dash-calls table, #dash-calls .empty').first().waitFor();
      await page.locator('#dash-graph[data-drawn]').waitFor({ state: 'attached' });
      await shot('07-dashboard');
      return `${ready}, version ${version}`;
    }, true);

    await step('configuration: trunk port 5082 saved', async () => {
      await loc('#nav-config').click();
      const port = loc('[data-path="sip.trunk.port"]');
      await port.waitFor({ state: 'visible' });
      await shot('08-config');
      await port.fill('5082');
      await loc('#config-save').click();
      await outcome('#config-result', '#config-errors', 'save refused');
      const t = await text('#config-result');
      if (!/^saved/i.test(t)) throw new Error(`result says "${t}"`);
      await shot('09-config-saved');
      return t;
    }, true);

    await step('REST API: config.sip.trunk.port is 5082', async () => {
      const r = await fromPage('/api/config');
      const got = r.body && r.body.config && r.body.config.sip && r.body.config.sip.trunk && r.body.config.sip.trunk.port;
      if (r.status !== 200 || got !== 5082) throw new Error(`GET /api/config: ${r.status}, sip.trunk.port = ${JSON.stringify(got)}`);
    });

    await step('configuration: a bad port is refused next to its field', async () => {
      const port = loc('[data-path="sip.trunk.port"]');
      await port.waitFor({ state: 'visible' });
      await port.fill('70000');
      await loc('#config-save').click();
      await visible('#config-errors');
      await page.locator('[data-group="sip.trunk"] .field-error:visible, #cfg-sip-trunk-port-error:visible').first().waitFor();
      const t = await page.locator('[data-group="sip.trunk"] .field-error').first().innerText();
      await shot('10-config-error');
      await loc('#config-reload').click();
      await page.waitForFunction(() => { const e = document.querySelector('[data-path="sip.trunk.port"]'); return e && e.value === '5082'; });
      const r = await fromPage('/api/config');
      if (r.body.config.sip.trunk.port !== 5082) throw new Error('the refused value was stored');
      return t.trim();
    });

    await step('updates: a bad bundle is refused with a message', async () => {
      await loc('#nav-updates').click();
      await visible('#update-file');
      await page.waitForFunction(() => { const v = document.getElementById('update-version'); return v && v.textContent !== '…'; });
      await shot('11-updates');
      await loc('#update-file').setInputFiles(badBundle);
      await loc('#update-upload').click();
      await visible('#update-error');
      const t = await text('#update-error');
      if (!t) throw new Error('#update-error is empty');
      if (await loc('#update-error').getAttribute('role') !== 'alert') throw new Error('#update-error has no role=alert');
      await shot('12-update-error');
      return t;
    });

    await step('logs: log lines and call records', async () => {
      await loc('#nav-logs').click();
      await visible('#logs-lines[data-loaded="true"]');
      await page.locator('#cdrs-table[data-loaded="true"]').waitFor({ state: 'visible' });
      for (const a of ['#logs-download', '#cdrs-download']) if (!(await loc(a).getAttribute('href'))) throw new Error(a + ' has no link');
      await shot('13-logs');
    });

    await step('reload keeps the session', async () => {
      await page.reload();
      await visible('#logs-lines[data-loaded="true"]');
      if (await loc('#login-password').isVisible()) throw new Error('the login screen came back');
    });

    await step('log out, a wrong password is refused, log in again', async () => {
      await loc('#nav-logout').click();
      await visible('#login-password');
      await shot('14-login');
      await loc('#login-password').fill('not-the-right-password');
      await loc('#login-submit').click();
      await visible('#login-error');
      const t = await text('#login-error');
      if (!t) throw new Error('#login-error is empty');
      await shot('15-login-error');
      await loc('#login-password').fill(opt.password);
      await loc('#login-submit').click();
      await outcome('#dash-ready', '#login-error', 'login refused'); // the UI hides the old error on submit
      await page.setViewportSize({ width: 390, height: 844 });
      await visible('#dash-version');
      await shot('16-dashboard-narrow');
      await page.setViewportSize({ width: 1280, height: 900 });
      return t;
    });

    await step('no CSP violation, page error or request to another origin', async () => {
      const bad = [...csp.map(x => 'CSP: ' + x), ...pageErrors.map(x => 'page error: ' + x), ...foreign.map(x => 'request to ' + x)];
      if (bad.length) throw new Error(`${bad.length}: ${bad.slice(0, 3).join(' | ')}`);
    });
  } catch (e) {
    failed++;
    console.log(`FAIL the run: ${oneLine(e)}`);
  } finally {
    try { if (ctx) await ctx.close(); } catch (_) { /* closed */ }
    fs.rmSync(profile, { recursive: true, force: true });
    fs.writeFileSync(path.join(opt.out, 'console.txt'), log.join('\n') + '\n');
    clearTimeout(watchdog);
  }
  process.exit(failed ? 1 : 0);
})().catch(e => { console.log(`FAIL the run: ${oneLine(e)}`); process.exit(1); });
