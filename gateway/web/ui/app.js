/*
 * RTC Edge: the gateway's local web UI. Vanilla ES2020, no framework, no build step, no external URL.
 * Served as /, /assets/app.js, /assets/app.css, /assets/favicon.svg under a strict CSP: no inline script
 * or style, no eval. Every string from the server goes into the page through textContent (never innerHTML).
 * API: see the REST contract (GET/PUT /api/...); every POST/PUT/DELETE carries X-CSRF-Token.
 *
 * Hash routes: #/dashboard  #/wizard[/network|time|sip|cert|test]  #/config  #/updates  #/logs
 * (the first-boot password screen and the login screen are shown before any route).
 *
 * Stable ids (gateway/web/tests/ui.js relies on them; keep them):
 *  shell      #nav #nav-dashboard #nav-config #nav-updates #nav-logs #nav-logout #app #banner
 *  setup      #setup-form #setup-password #setup-confirm #setup-submit #setup-error
 *  login      #login-form #login-password #login-submit #login-error #login-notice
 *  wizard     #wizard, one step at a time: #wizard-network #wizard-time #wizard-sip #wizard-cert #wizard-test;
 *             #wizard-back #wizard-skip #wizard-next (#wizard-finish on the last step) #wizard-error #wizard-flash
 *  network    #net-mode-dhcp #net-mode-static #net-address #net-gateway #net-dns #net-ntp #net-applies
 *             (Configuration page only: #net-save #net-result #net-error)
 *  trunk      #trunk-address #trunk-port #trunk-transport #trunk-username #trunk-password
 *  cert       #cert-info #cert-subject #cert-not-after #cert-sha256 #cert-hostname #cert-generate
 *             #cert-file #key-file #cert-upload #cert-result #cert-error
 *  test call  #test-call #test-result (data-state idle|running|done, data-outcome ok|answered|noanswer|error)
 *  dashboard  #dash-ready (data-ready true|false, text Ready|Not ready) #dash-version #dash-slot #dash-hostname
 *             #dash-uptime #dash-cpu #dash-memory #dash-calls-active #dash-graph (canvas; data-drawn data|empty
 *             once drawn) #dash-calls
 *             #dash-registrations #dash-trunks #dash-events
 *  config     #config-form #config-save #config-reload #config-result #config-errors #config-export
 *             #config-import-file #config-import #config-add-name #config-add; every generated input has
 *             data-path="<key path>" (e.g. sip.listen[0].port) and id "cfg-" + the path with each run of
 *             other than [A-Za-z0-9_] turned into "-" (sip.listen[0].port -> #cfg-sip-listen-0-port);
 *             groups carry data-group="<key path>"; a field's error is #<input id>-error (.field-error)
 *  password   #pw-current #pw-new #pw-confirm #pw-submit #pw-result #pw-error
 *  updates    #update-version #update-slot #update-other-slot #update-agent #update-progress
 *             #update-progress-text #update-check #update-file #update-upload #update-upload-progress
 *             #update-message #update-error (role=alert) #update-rollback
 *  logs       #logs-lines #logs-refresh #logs-filter #logs-download #cdrs-table #cdrs-refresh #cdrs-download
 *             (#logs-lines and #cdrs-table get data-loaded="true" once filled)
 */
'use strict';
(() => {
  const S = { csrf: null, after: null, leave: [], gen: 0, flash: null };
  let uid = 0;

  // ---- DOM helpers -----------------------------------------------------------------------------------
  function h(tag, a, ...kids) {
    const el = document.createElement(tag);
    let val;
    if (a) for (const k of Object.keys(a)) {
      const v = a[k];
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'value') val = v;
      else if (/^on[A-Z]/.test(k)) el.addEventListener(k.slice(2).toLowerCase(), v);
      else if (k === 'hidden' || k === 'checked' || k === 'disabled' || k === 'open') el[k] = true;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    put(el, kids);
    if (val !== undefined) el.value = val;
    return el;
  }
  function put(el, ...kids) {
    for (const k of kids.flat(9)) if (k != null && k !== false) el.append(k instanceof Node ? k : String(k));
    return el;
  }
  const $ = (s, r = document) => r.querySelector(s);
  const fill = (el, ...kids) => { el.replaceChildren(); return put(el, kids); };
  const show = (el, text) => { if (el) { el.textContent = text || ''; el.hidden = !text; } };
  const isObj = v => v !== null && typeof v === 'object' && !Array.isArray(v);
  const cap = s => (s ? s[0].toUpperCase() + s.slice(1) : s);
  const clone = v => JSON.parse(JSON.stringify(v));
  const loading = () => h('p', { class: 'loading', text: 'Loading…' });
  const busy = (b, on) => { b.disabled = on; b.setAttribute('aria-busy', on ? 'true' : 'false'); };
  const title = t => { document.title = t + ' · RTC Edge'; };
  const join = (p, k) => (p ? p + '.' + k : k);
  const safe = p => p.replace(/[^A-Za-z0-9_]+/g, '-').replace(/-+$/, '');
  const list = xs => (xs || []).join(', ');

  function field(label, input, hint) {
    const w = h('div', { class: 'field' }, h('label', { for: input.id, text: label }), input);
    if (hint) {
      put(w, h('p', { class: 'hint', id: input.id + '-hint', text: hint }));
      input.setAttribute('aria-describedby', input.id + '-hint');
    }
    return w;
  }
  const check = (input, label) => h('label', { class: 'check', for: input.id }, input, h('span', { text: label }));
  const section = (id, head, ...kids) => h('section', { id, class: 'card' }, h('h2', { text: head }), kids);
  const alertBox = (id, kind) => h('div', { id, class: 'alert ' + kind, role: kind === 'bad' ? 'alert' : 'status', hidden: true });

  function table(heads, rows, empty, cls) {
    if (!rows.length) return h('p', { class: 'empty', text: empty });
    return h('div', { class: 'table-wrap' }, h('table', { class: cls || null },
      h('thead', null, h('tr', null, heads.map(x => h('th', { scope: 'col', text: x })))),
      h('tbody', null, rows.map(r => h('tr', null, r.map(c => h('td', null, c)))))));
  }
  const badge = (text, kind) => h('span', { class: 'badge ' + (kind || ''), text });

  // ---- formatting --------------------------------------------------------------------------------------
  const pad = n => String(n).padStart(2, '0');
  function fmtTime(ms) {
    if (ms == null) return '—';
    const d = new Date(ms);
    if (isNaN(d)) return '—';
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  const fmtSec = s => (s == null ? '—' : fmtTime(s * 1000));
  function fmtDur(s) {
    if (s == null) return '—';
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), x = s % 60;
    if (d) return `${d} d ${hr} h ${m} min`;
    if (hr) return `${hr} h ${pad(m)} min`;
    return `${m}:${pad(x)}`;
  }
  function fmtBytes(n) {
    if (n == null || !isFinite(n)) return '—';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(n < 10 ? 1 : 0) : n) + ' ' + u[i];
  }
  const fmtNum = n => (n == null ? '—' : Number(n).toLocaleString('en'));
  function appliedText(d) {
    d = d || {};
    return [d.message,
      d.applied && d.applied.length ? 'Applied now: ' + list(d.applied) + '.' : '',
      d.restart_required && d.restart_required.length ? 'Takes effect after a restart: ' + list(d.restart_required) + '.' : '',
    ].filter(Boolean).join(' ');
  }
  function readText(file) {
    return new Promise((ok, no) => {
      const r = new FileReader();
      r.onload = () => ok(String(r.result));
      r.onerror = () => no(new ApiError(0, 'Could not read ' + file.name + '.'));
      r.readAsText(file);
    });
  }

  // ---- API ---------------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message, data) {
      super(message);
      this.status = status;
      this.data = data;
      this.fields = isObj(data) && isObj(data.fields) ? data.fields : null;
    }
  }
  function errText(status, data) {
    if (isObj(data) && typeof data.error === 'string' && data.error) return cap(data.error);
    if (status === 413) return 'The file is too large for the gateway.';
    if (status === 403) return 'The gateway refused the request (403): reload the page and try again.';
    if (typeof data === 'string' && data.trim() && data.length < 300) return data.trim();
    return `The gateway answered ${status}.`;
  }
  // o.anon: a 401 is an answer, not a lost session; o.ok: more statuses that are no error; o.type: raw body
  async function api(method, path, body, o = {}) {
    const headers = { Accept: 'application/json' };
    let payload;
    if (body !== undefined) {
      headers['Content-Type'] = o.type || 'application/json';
      payload = o.type ? body : JSON.stringify(body);
    }
    if (method !== 'GET' && S.csrf) headers['X-CSRF-Token'] = S.csrf;
    let r;
    try {
      r = await fetch(path, { method, headers, body: payload, credentials: 'same-origin', cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'The gateway did not answer: check the connection and try again.');
    }
    let data = null;
    if (r.status !== 204) {
      const t = await r.text().catch(() => '');
      data = t;
      if ((r.headers.get('content-type') || '').includes('json')) try { data = JSON.parse(t); } catch (_) { /* keep text */ }
    }
    if (r.status === 401 && !o.anon) {
      sessionLost();
      const e = new ApiError(401, 'Log in first.', data);
      e.handled = true;
      throw e;
    }
    if (r.status === 403 && method !== 'GET' && S.csrf && !o.retried) {
      // a stale CSRF token (another tab logged in again): take the session's current one and try once more
      const s = await api('GET', '/api/session');
      if (s.data && s.data.csrf) {
        S.csrf = s.data.csrf;
        return api(method, path, body, Object.assign({}, o, { retried: true }));
      }
    }
    if (!r.ok && !(o.ok || []).includes(r.status)) throw new ApiError(r.status, errText(r.status, data), data);
    return { status: r.status, data };
  }

  // ---- field errors ------------------------------------------------------------------------------------
  const parentPath = k => { const m = /^(.+)(?:\.[^.[\]]+|\[\d+\])$/.exec(k); return m ? m[1] : ''; };
  function clearErrors(root) {
    for (const e of root.querySelectorAll('.field-error')) e.remove();
    for (const e of root.querySelectorAll('[aria-invalid]')) e.removeAttribute('aria-invalid');
  }
  // Puts each message next to the element whose data-path (or data-group) is the key, or its nearest
  // ancestor key; returns the [key, message] pairs that found no place.
  function fieldErrors(root, fields, prefixes) {
    const at = new Map(); // an input wins over a group with the same key
    for (const a of ['data-path', 'data-group']) {
      for (const e of root.querySelectorAll(`[${a}]`)) if (!at.has(e.getAttribute(a))) at.set(e.getAttribute(a), e);
    }
    const lost = [];
    let first = null;
    for (const [key, msg] of Object.entries(fields || {})) {
      let el = null, hit = '';
      for (let k = key; k && !el; k = parentPath(k)) {
        for (const p of ['', ...(prefixes || [])]) if (!el && at.has(p + k)) { el = at.get(p + k); hit = p + k; }
      }
      if (!el) { lost.push([key, msg]); continue; }
      if (!el.id) el.id = 'x' + ++uid;
      const id = el.id + '-error';
      const text = (hit === key || hit.endsWith('.' + key) ? '' : key + ': ') + msg;
      const prev = document.getElementById(id);
      if (prev) { prev.textContent += ' ' + text; continue; }
      const note = h('p', { class: 'field-error', id, text });
      if (el.matches('fieldset,details')) {
        const lg = el.querySelector(':scope > legend, :scope > summary');
        if (lg) lg.after(note); else el.prepend(note);
      } else {
        (el.closest('.field') || el.parentElement).append(note);
        const d = (el.getAttribute('aria-describedby') || '').split(' ').filter(x => x && x !== id);
        el.setAttribute('aria-describedby', d.concat(id).join(' '));
      }
      el.setAttribute('aria-invalid', 'true');
      for (let d = el.closest('details'); d; d = d.parentElement && d.parentElement.closest('details')) d.open = true;
      if (!first) first = el;
    }
    if (first && first.matches('input,select,textarea')) first.focus();
    return lost;
  }
  // Shows an error in box (heading + the fields that found no place, or all of them when all is set).
  function reportError(box, x, root, prefixes, all) {
    surface(x);
    if (x.handled) return;
    if (root) clearErrors(root);
    const lost = root && x.fields ? fieldErrors(root, x.fields, prefixes) : Object.entries(x.fields || {});
    const items = all ? Object.entries(x.fields || {}) : lost;
    fill(box, h('strong', { text: x.message }),
      items.length ? h('ul', null, items.map(([k, m]) => h('li', null, h('code', { text: k }), ': ', String(m)))) : null);
    box.hidden = false;
  }
  // A bug (not an answer from the gateway) is rethrown outside the handler so it shows as a page error.
  function surface(x) { if (!(x instanceof ApiError)) setTimeout(() => { throw x; }); }
  function clearBox(...boxes) { for (const b of boxes) { b.replaceChildren(); b.hidden = true; } }

  // ---- session, screens and routes ------------------------------------------------------------------
  const PAGES = { dashboard: pageDashboard, wizard: pageWizard, config: pageConfig, updates: pageUpdates, logs: pageLogs };
  const pageHash = () => (/^#\/(dashboard|wizard|config|updates|logs)\b/.test(location.hash) ? location.hash : null);
  const go = hash => { if (location.hash === hash) route(); else location.hash = hash; };
  const onLeave = f => S.leave.push(f);
  const token = () => { const g = S.gen; return () => g === S.gen; };
  function leavePage() {
    S.gen++;
    const l = S.leave;
    S.leave = [];
    for (const f of l) try { f(); } catch (_) { /* ignore */ }
    show($('#banner'), '');
  }
  function sessionLost() {
    if (!S.csrf) return;
    S.csrf = null;
    S.after = pageHash();
    showLogin('Your session has ended: log in again.');
  }
  function enter(hash) {
    const to = hash || S.after || pageHash() || '#/dashboard';
    S.after = null;
    go(to);
  }
  function route() {
    if (!S.csrf) return;
    const m = /^#\/([a-z]+)(?:\/([a-z]+))?/.exec(location.hash);
    if (!m || !PAGES[m[1]]) { location.replace('#/dashboard'); return; }
    leavePage();
    const nav = $('#nav');
    nav.hidden = false;
    for (const a of nav.querySelectorAll('a')) {
      if (a.getAttribute('href') === '#/' + m[1]) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const main = $('#app');
    main.replaceChildren();
    window.scrollTo(0, 0);
    PAGES[m[1]](main, m[2] || '');
  }
  function screen(t, ...kids) {
    leavePage();
    $('#nav').hidden = true;
    title(t);
    fill($('#app'), h('section', { class: 'card narrow' }, kids));
  }

  async function boot() {
    try {
      const l = await api('GET', '/api/login', undefined, { anon: true });
      if (l.data && l.data.setup_required) return showSetup();
      const s = await api('GET', '/api/session', undefined, { anon: true, ok: [401] });
      if (s.status === 200 && s.data && s.data.csrf) { S.csrf = s.data.csrf; return enter(); }
      S.after = pageHash();
      showLogin();
    } catch (x) {
      surface(x);
      screen('Not reachable', h('h1', { text: 'The gateway is not answering' }), h('p', { class: 'alert bad', role: 'alert', text: x.message }),
        h('button', { type: 'button', class: 'btn primary', text: 'Try again', onClick: boot }));
    }
  }

  function showSetup() {
    const pw = h('input', { id: 'setup-password', type: 'password', autocomplete: 'new-password', 'data-path': 'password' });
    const cf = h('input', { id: 'setup-confirm', type: 'password', autocomplete: 'new-password', 'data-path': 'confirm' });
    const err = alertBox('setup-error', 'bad');
    const btn = h('button', { id: 'setup-submit', type: 'submit', class: 'btn primary wide', text: 'Set password' });
    const form = h('form', { id: 'setup-form', novalidate: true, onSubmit: async e => {
      e.preventDefault();
      clearErrors(form);
      clearBox(err);
      const f = {};
      if (pw.value.length < 10) f.password = 'Use at least 10 characters.';
      else if (cf.value !== pw.value) f.confirm = 'The two passwords differ.';
      if (Object.keys(f).length) return reportError(err, new ApiError(0, 'Check the password.', { fields: f }), form);
      busy(btn, true);
      try {
        const r = await api('POST', '/api/setup', { password: pw.value }, { anon: true });
        S.csrf = r.data.csrf;
        enter('#/wizard');
      } catch (x) {
        if (x.status === 409) return showLogin('A password is already set: log in with it.');
        reportError(err, x, form);
      } finally { busy(btn, false); }
    } },
    field('New password', pw, 'At least 10 characters. It protects every setting of this gateway.'),
    field('Confirm password', cf), err, btn);
    screen('Set the admin password', h('h1', { text: 'Set the admin password' }),
      h('p', { text: 'Welcome to RTC Edge. This is the first start: choose the administrator password.' }), form);
    pw.focus();
  }

  function showLogin(notice) {
    const pw = h('input', { id: 'login-password', type: 'password', autocomplete: 'current-password', 'data-path': 'password' });
    const err = alertBox('login-error', 'bad');
    const note = h('p', { id: 'login-notice', class: 'alert info', role: 'status', hidden: !notice, text: notice || '' });
    const btn = h('button', { id: 'login-submit', type: 'submit', class: 'btn primary wide', text: 'Log in' });
    const form = h('form', { id: 'login-form', novalidate: true, onSubmit: async e => {
      e.preventDefault();
      clearBox(err);
      note.hidden = true;
      if (!pw.value) return show(err, 'Enter the password.');
      busy(btn, true);
      try {
        const r = await api('POST', '/api/login', { password: pw.value }, { anon: true });
        S.csrf = r.data.csrf;
        enter();
      } catch (x) {
        surface(x);
        if (x.status === 409) return showSetup();
        show(err, x.status === 401 && !/[.!]$/.test(x.message) ? x.message + '.' : x.message);
        pw.select();
      } finally { busy(btn, false); }
    } }, field('Password', pw), err, btn);
    screen('Log in', h('h1', { text: 'Log in' }), note, form);
    pw.focus();
  }

  $('#nav-logout').addEventListener('click', async () => {
    try { await api('POST', '/api/logout'); } catch (x) { if (x.handled) return; }
    S.csrf = null;
    S.after = '#/dashboard';
    showLogin('You are logged out.');
  });
  window.addEventListener('hashchange', route);
  // editing a field takes its error away
  document.addEventListener('input', e => {
    const t = e.target;
    if (!t.id || t.getAttribute('aria-invalid') !== 'true') return;
    t.removeAttribute('aria-invalid');
    const n = document.getElementById(t.id + '-error');
    if (n) n.remove();
  });

  function poller(fn, ms, live) {
    let t = null, running = false, stopped = false;
    const run = async () => {
      clearTimeout(t);
      if (stopped || running || document.hidden || !live()) return;
      running = true;
      try {
        await fn();
        show($('#banner'), '');
      } catch (x) {
        surface(x);
        if (!x.handled && live()) show($('#banner'), x.message);
      } finally { running = false; }
      if (!stopped && live()) t = setTimeout(run, ms);
    };
    const vis = () => { if (!document.hidden) run(); };
    document.addEventListener('visibilitychange', vis);
    onLeave(() => { stopped = true; clearTimeout(t); document.removeEventListener('visibilitychange', vis); });
    run();
  }

  // ---- wizard -----------------------------------------------------------------------------------------
  const STEPS = [
    { id: 'network', title: 'Network', make: stepNetwork },
    { id: 'time', title: 'Time', make: stepTime },
    { id: 'sip', title: 'SIP side', make: stepSip },
    { id: 'cert', title: 'Browser side', make: stepCert },
    { id: 'test', title: 'Test call', make: stepTest },
  ];
  function pageWizard(main, sub) {
    const i = Math.max(0, STEPS.findIndex(s => s.id === sub));
    const step = STEPS[i], last = i === STEPS.length - 1, live = token();
    const nextHash = last ? '#/dashboard' : '#/wizard/' + STEPS[i + 1].id;
    title('Setup: ' + step.title);
    const err = alertBox('wizard-error', 'bad');
    const flash = h('p', { id: 'wizard-flash', class: 'alert ok', role: 'status', hidden: true });
    show(flash, S.flash);
    S.flash = null;
    const body = h('section', { id: 'wizard-' + step.id, class: 'card step', 'aria-labelledby': 'wizard-h' });
    const ctl = step.make(body, { err, live, head: h('h2', { id: 'wizard-h', text: `Step ${i + 1} of ${STEPS.length}: ${step.title}` }) });
    const next = h('button', { id: last ? 'wizard-finish' : 'wizard-next', type: 'button', class: 'btn primary', text: last ? 'Finish' : 'Next', onClick: async () => {
      clearBox(err);
      busy(next, true);
      let ok = false;
      try { ok = await ctl.save(); } catch (x) { reportError(err, x, body); } finally { busy(next, false); }
      if (ok && live()) go(nextHash);
    } });
    put(main, h('div', { id: 'wizard', class: 'wizard' },
      h('div', { class: 'page-head' }, h('h1', { text: 'Setup' }), h('a', { href: '#/dashboard', class: 'quiet', text: 'Leave the setup' })),
      h('ol', { class: 'stepper' }, STEPS.map((s, j) => h('li', { class: j < i ? 'done' : j === i ? 'now' : null, 'aria-current': j === i ? 'step' : null },
        h('a', { href: '#/wizard/' + s.id }, h('span', { class: 'num', text: String(j + 1) }), h('span', { text: s.title }))))),
      flash, err, body,
      h('div', { class: 'actions' },
        h('button', { id: 'wizard-back', type: 'button', class: 'btn', text: 'Back', disabled: i === 0, onClick: () => go('#/wizard/' + STEPS[i - 1].id) }),
        h('span', { class: 'grow' }),
        h('button', { id: 'wizard-skip', type: 'button', class: 'btn ghost', text: 'Skip', onClick: () => go(nextHash) }),
        next)));
  }

  function netStep(body, c, parts, text) {
    let form = null;
    put(body, c.head, h('p', { text }), loading());
    api('GET', '/api/network').then(r => {
      if (!c.live()) return;
      form = netForm(r.data || {}, parts);
      fill(body, c.head, h('p', { text }), form.el);
    }).catch(x => reportError(c.err, x));
    return {
      async save() {
        if (!form) return false;
        const v = form.read();
        if (!v) return false;
        try { await api('PUT', '/api/network', v); } catch (x) { reportError(c.err, x, body, ['network.']); return false; }
        S.flash = (parts.includes('ntp') ? 'Time server saved' : 'Network settings saved') + ': they apply ' + (form.applies || 'at the next boot') + '.';
        return true;
      },
    };
  }
  function stepNetwork(body, c) {
    return netStep(body, c, ['mode'], 'How the gateway gets its IP address on the local network.');
  }
  function stepTime(body, c) {
    return netStep(body, c, ['ntp'], 'The gateway keeps its clock right with NTP: certificates, logs and call records need the right time.');
  }

  // The network form (wizard steps and Configuration page). parts: 'mode' (DHCP/static, address, gateway,
  // DNS) and/or 'ntp'. read() returns the object for PUT /api/network, or null after marking errors.
  function netForm(net, parts) {
    const el = h('div', { class: 'netform' });
    const txt = (inp, orig) => { const t = inp.value.trim(); return t === '' && orig == null ? undefined : t; }; // undefined: left out
    let dhcp, stat, addr, gw, dns, ntp;
    if (parts.includes('mode')) {
      dhcp = h('input', { type: 'radio', name: 'net-mode', id: 'net-mode-dhcp', value: 'dhcp', checked: net.mode !== 'static' });
      stat = h('input', { type: 'radio', name: 'net-mode', id: 'net-mode-static', value: 'static', checked: net.mode === 'static' });
      addr = h('input', { id: 'net-address', type: 'text', 'data-path': 'network.address', value: net.address || '', placeholder: '192.168.1.10/24', autocomplete: 'off', spellcheck: 'false' });
      gw = h('input', { id: 'net-gateway', type: 'text', 'data-path': 'network.gateway', value: net.gateway || '', placeholder: '192.168.1.1', autocomplete: 'off', spellcheck: 'false' });
      dns = h('input', { id: 'net-dns', type: 'text', 'data-path': 'network.dns', value: list(net.dns), placeholder: '192.168.1.1, 9.9.9.9', autocomplete: 'off', spellcheck: 'false' });
      const box = h('div', { id: 'net-static', class: 'grid' },
        field('Address (CIDR)', addr, 'Address and prefix length, e.g. 192.168.1.10/24'),
        field('Default gateway', gw), field('DNS servers', dns, 'Comma separated'));
      const sync = () => { box.hidden = !stat.checked; };
      dhcp.addEventListener('change', sync);
      stat.addEventListener('change', sync);
      sync();
      put(el, h('fieldset', { class: 'radios', 'data-group': 'network.mode' }, h('legend', { text: 'IP address' }),
        check(dhcp, 'Automatic (DHCP)'), check(stat, 'Static')), box);
    }
    if (parts.includes('ntp')) {
      ntp = h('input', { id: 'net-ntp', type: 'text', 'data-path': 'network.ntp', value: net.ntp || '', placeholder: 'pool.ntp.org', autocomplete: 'off', spellcheck: 'false' });
      put(el, field('NTP server', ntp, 'Host name or IP address of the time server.'));
    }
    put(el, h('p', { id: 'net-applies', class: 'note', text: 'Network and time settings apply ' + (net.applies || 'at the next boot') + '.' }));
    return {
      el,
      applies: net.applies,
      read() {
        clearErrors(el);
        const v = Object.assign({}, net);
        delete v.applies;
        const f = {};
        if (dhcp) {
          v.mode = stat.checked ? 'static' : 'dhcp';
          v.address = txt(addr, net.address);
          v.gateway = txt(gw, net.gateway);
          v.dns = dns.value.split(/[\s,]+/).filter(Boolean);
          if (v.mode === 'static' && !/^[0-9A-Fa-f:.]+\/\d{1,3}$/.test(v.address || '')) f['network.address'] = 'Give the address with its prefix length, e.g. 192.168.1.10/24.';
        }
        if (ntp) v.ntp = txt(ntp, net.ntp);
        if (Object.keys(f).length) { fieldErrors(el, f); return null; }
        return v;
      },
    };
  }

  // The one-trunk shorthand config.sip.trunk: read() gives {set, unset} or null after marking errors.
  function trunkForm(t) {
    const address = h('input', { id: 'trunk-address', type: 'text', 'data-path': 'sip.trunk.address', value: t.address || '', placeholder: '192.168.1.20', autocomplete: 'off', spellcheck: 'false' });
    const port = h('input', { id: 'trunk-port', type: 'number', min: 1, max: 65535, 'data-path': 'sip.trunk.port', value: t.port != null ? String(t.port) : '5060' });
    const transport = h('select', { id: 'trunk-transport', 'data-path': 'sip.trunk.transport' },
      ['udp', 'tcp', 'tls'].map(x => h('option', { value: x, text: x.toUpperCase() })));
    transport.value = ['udp', 'tcp', 'tls'].includes(t.transport) ? t.transport : 'udp';
    const user = h('input', { id: 'trunk-username', type: 'text', 'data-path': 'sip.trunk.username', value: t.username || '', autocomplete: 'off', spellcheck: 'false' });
    const pass = h('input', { id: 'trunk-password', type: 'password', 'data-path': 'sip.trunk.password', value: t.password || '', autocomplete: 'new-password' });
    const tlsNote = h('p', { class: 'note', text: 'TLS toward the trunk also needs ca_certificate (and perhaps server_name) under sip.trunk: set them on the Configuration page.' });
    const sync = () => { tlsNote.hidden = transport.value !== 'tls'; };
    transport.addEventListener('change', sync);
    sync();
    const el = h('div', null, h('div', { class: 'grid', 'data-group': 'sip.trunk' },
      field('PBX or trunk address', address, 'IP address'), field('Port', port), field('Transport', transport),
      field('User name', user, 'Optional: for the trunk\'s digest challenges'), field('Password', pass, 'Optional')), tlsNote);
    return {
      el,
      read() {
        clearErrors(el);
        const f = {}, p = Number(port.value);
        if (!address.value.trim()) f['sip.trunk.address'] = 'Enter the address of the PBX or trunk.';
        if (!Number.isInteger(p) || p < 1 || p > 65535) f['sip.trunk.port'] = 'Enter a port from 1 to 65535.';
        if (Object.keys(f).length) { fieldErrors(el, f); return null; }
        const set = { address: address.value.trim(), port: p, transport: transport.value }, unset = [];
        for (const [k, inp] of [['username', user], ['password', pass]]) {
          if (inp.value !== '') set[k] = k === 'username' ? inp.value.trim() : inp.value; else unset.push(k);
        }
        return { set, unset };
      },
    };
  }
  function stepSip(body, c) {
    let doc = null, form = null;
    const intro = h('p', { text: 'Every browser call goes to this PBX or SIP trunk, and browsers register there.' });
    put(body, c.head, intro, loading());
    api('GET', '/api/config').then(r => {
      if (!c.live()) return;
      doc = r.data || {};
      doc.config = isObj(doc.config) ? doc.config : {};
      const sip = isObj(doc.config.sip) ? doc.config.sip : {};
      form = trunkForm(isObj(sip.trunk) ? sip.trunk : {});
      const many = Array.isArray(doc.config.trunks) && doc.config.trunks.length;
      fill(body, c.head, intro, many ? h('p', { class: 'alert warn', text: 'This configuration lists trunks under [[trunks]]; the one-trunk shorthand cannot be combined with them. Edit them on the Configuration page, or skip this step.' }) : null, form.el);
    }).catch(x => reportError(c.err, x));
    return {
      async save() {
        if (!form) return false;
        const t = form.read();
        if (!t) return false;
        const cfg = clone(doc.config);
        if (!isObj(cfg.sip)) cfg.sip = {};
        cfg.sip.trunk = Object.assign(isObj(cfg.sip.trunk) ? cfg.sip.trunk : {}, t.set);
        for (const k of t.unset) delete cfg.sip.trunk[k];
        try {
          const r = await api('PUT', '/api/config', { config: cfg });
          S.flash = 'SIP side saved. ' + appliedText(r.data);
          return true;
        } catch (x) { reportError(c.err, x, body); return false; }
      },
    };
  }
  function stepCert(body, c) {
    put(body, c.head, h('p', { text: 'Browsers reach the gateway over secure WebSocket (wss://). They connect only if they trust its certificate: generate a self-signed one (each browser then has to accept it once) or upload one signed by your CA.' }),
      certPanel(c.err, c.live));
    return { save: async () => true };
  }
  function stepTest(body, c) {
    const res = h('p', { id: 'test-result', class: 'result', role: 'status', 'aria-live': 'polite', 'data-state': 'idle' });
    const btn = h('button', { id: 'test-call', type: 'button', class: 'btn primary', text: 'Test the trunk', onClick: async () => {
      busy(btn, true);
      res.dataset.state = 'running';
      res.className = 'result';
      res.textContent = 'Asking the trunk…';
      let outcome, text;
      try {
        const d = (await api('POST', '/api/test-call', {})).data || {};
        const who = d.target || d.trunk || 'The trunk';
        if (d.status != null) {
          outcome = d.status >= 200 && d.status < 300 ? 'ok' : 'answered';
          text = `${who} answered ${d.method || 'OPTIONS'} with ${d.status} ${d.reason || ''}`.trim() + (d.rtt_ms != null ? ` in ${d.rtt_ms} ms.` : '.');
        } else {
          outcome = 'noanswer';
          text = `No answer from ${who}: ${d.error || 'nothing came back'}.`;
        }
      } catch (x) {
        surface(x);
        if (x.handled) return;
        outcome = 'error';
        text = x.message;
      } finally { busy(btn, false); }
      if (!c.live()) return;
      res.textContent = text;
      res.dataset.state = 'done';
      res.dataset.outcome = outcome;
      res.className = 'result ' + (outcome === 'ok' ? 'ok' : outcome === 'error' ? 'bad' : 'warn');
    } });
    put(body, c.head, h('p', { text: 'Sends a SIP OPTIONS request to the trunk and shows its answer. No call is placed and nothing rings.' }),
      h('div', { class: 'row' }, btn), res);
    return { save: async () => true };
  }

  // Certificate panel (wizard step 4 and Configuration page).
  function certPanel(loadErr, live) {
    const info = h('dl', { id: 'cert-info', class: 'kv' }, h('dt', { text: 'Certificate' }), h('dd', { text: 'Loading…' }));
    const err = alertBox('cert-error', 'bad'), res = alertBox('cert-result', 'ok');
    const host = h('input', { id: 'cert-hostname', type: 'text', 'data-path': 'hostname', autocomplete: 'off', spellcheck: 'false', placeholder: 'edge.local' });
    const certF = h('input', { id: 'cert-file', type: 'file', accept: '.pem,.crt,.cer,.txt', 'data-path': 'cert_pem' });
    const keyF = h('input', { id: 'key-file', type: 'file', accept: '.pem,.key,.txt', 'data-path': 'key_pem' });
    const el = h('div', { class: 'cert' });
    const showInfo = c => {
      c = c || {};
      const rows = [];
      const row = (k, v, id, cls) => rows.push(h('dt', { text: k }), h('dd', { id, class: cls, text: v }));
      if (!c.present) row('Certificate', 'None yet: browsers cannot connect over wss:// until there is one.', 'cert-subject');
      else {
        row('Subject', c.subject || '—', 'cert-subject');
        row('Valid until', c.not_after || '—', 'cert-not-after');
        row('Kind', c.self_signed ? 'Self-signed' : 'Signed by a certificate authority');
        row('SHA-256', c.sha256 || '—', 'cert-sha256', 'mono wrap');
      }
      const wss = c.wss_listeners || [];
      row('WSS listeners', wss.length ? list(wss) : 'None configured: add a "wss" entry to sip.listen on the Configuration page.');
      fill(info, rows);
      const cn = /CN=([^,/]+)/.exec(c.subject || '');
      if (!host.value) host.value = cn ? cn[1] : location.hostname;
    };
    const act = async (btn, fn) => {
      clearBox(err, res);
      clearErrors(el);
      busy(btn, true);
      try { await fn(); } catch (x) { reportError(err, x, el); } finally { busy(btn, false); }
    };
    const gen = h('button', { id: 'cert-generate', type: 'button', class: 'btn', text: 'Generate self-signed', onClick: () => act(gen, async () => {
      const name = host.value.trim();
      if (!name) throw new ApiError(0, 'Enter the host name browsers use to reach the gateway.', { fields: { hostname: 'Required.' } });
      const r = await api('POST', '/api/certificate/generate', { hostname: name });
      showInfo(r.data);
      show(res, 'A new self-signed certificate for ' + name + ' is in place.');
    }) });
    const up = h('button', { id: 'cert-upload', type: 'button', class: 'btn', text: 'Upload certificate', onClick: () => act(up, async () => {
      const f = {};
      if (!certF.files[0]) f.cert_pem = 'Choose the certificate file (PEM).';
      if (!keyF.files[0]) f.key_pem = 'Choose the private key file (PEM).';
      if (Object.keys(f).length) throw new ApiError(0, 'Choose both files.', { fields: f });
      const [cert, key] = await Promise.all([readText(certF.files[0]), readText(keyF.files[0])]);
      const r = await api('PUT', '/api/certificate', { cert_pem: cert, key_pem: key });
      showInfo(r.data);
      certF.value = '';
      keyF.value = '';
      show(res, 'The uploaded certificate is in place.');
    }) });
    put(el, info,
      h('div', { class: 'grid' },
        h('div', { class: 'sub' }, h('h3', { text: 'Generate a self-signed certificate' }), field('Host name', host, 'The name (or address) browsers use to reach the gateway.'), gen),
        h('div', { class: 'sub' }, h('h3', { text: 'Or upload yours' }), field('Certificate chain (PEM, leaf first)', certF), field('Private key (PEM)', keyF), up)),
      res, err);
    api('GET', '/api/certificate').then(r => { if (live()) showInfo(r.data); }).catch(x => reportError(loadErr || err, x));
    return el;
  }

  // ---- dashboard ----------------------------------------------------------------------------------------
  function pageDashboard(main) {
    title('Dashboard');
    const live = token();
    const v = id => h('span', { id, class: 'stat-value', text: '…' });
    const stat = (label, ...kids) => h('div', { class: 'stat' }, h('span', { class: 'stat-label', text: label }), kids);
    const ready = h('span', { id: 'dash-ready', class: 'badge', text: '…' });
    const slot = h('span', { id: 'dash-slot', class: 'stat-sub' }), host = h('span', { id: 'dash-hostname', class: 'stat-sub' });
    const mem = h('span', { id: 'dash-memory-sub', class: 'stat-sub' }), callsSub = h('span', { id: 'dash-calls-total', class: 'stat-sub' });
    const canvas = h('canvas', { id: 'dash-graph', class: 'graph', role: 'img', 'aria-label': 'Calls and media packets over the last hour' });
    const calls = h('div', { id: 'dash-calls' }, loading()), regs = h('div', { id: 'dash-registrations' }, loading());
    const trunks = h('div', { id: 'dash-trunks' }, loading()), events = h('div', { id: 'dash-events' }, loading());
    const graphNote = h('p', { class: 'legend' }, h('span', { class: 'key calls', text: 'Active calls' }), h('span', { class: 'key packets', text: 'Media packets per interval' }));
    put(main, h('h1', { text: 'Dashboard' }),
      h('div', { class: 'stats' },
        stat('Gateway', ready, host), stat('Version', v('dash-version'), slot), stat('Uptime', v('dash-uptime')),
        stat('CPU', v('dash-cpu')), stat('Memory used', v('dash-memory'), mem), stat('Active calls', v('dash-calls-active'), callsSub)),
      section('dash-graph-card', 'Last hour', graphNote, canvas),
      section('dash-calls-card', 'Active calls', calls),
      h('div', { class: 'cols' }, section('dash-trunks-card', 'Trunks', trunks), section('dash-regs-card', 'Registered browsers', regs)),
      section('dash-events-card', 'Recent events and alarms', events));
    let hist = null;
    const set = (id, text) => { const e = document.getElementById(id); if (e) e.textContent = text; };
    poller(async () => {
      const s = (await api('GET', '/api/status')).data || {};
      if (!live()) return;
      ready.textContent = s.ready ? 'Ready' : 'Not ready';
      ready.dataset.ready = s.ready ? 'true' : 'false';
      ready.className = 'badge ' + (s.ready ? 'ok' : 'bad');
      host.textContent = s.hostname || '';
      set('dash-version', s.version || '—');
      slot.textContent = s.slot ? 'Slot ' + s.slot : '';
      set('dash-uptime', fmtDur(s.uptime_s));
      set('dash-cpu', s.cpu_percent == null ? '—' : Number(s.cpu_percent).toFixed(1) + ' %');
      const m = s.memory || {};
      set('dash-memory', m.total_bytes ? `${fmtBytes(m.total_bytes - (m.available_bytes || 0))} of ${fmtBytes(m.total_bytes)}` : '—');
      mem.textContent = m.process_bytes != null ? 'gatewayd: ' + fmtBytes(m.process_bytes) : '';
      const c = s.calls || {};
      set('dash-calls-active', fmtNum(c.active));
      callsSub.textContent = c.total != null ? fmtNum(c.total) + ' since start' : '';
      const r = s.registrations || {};
      fill(regs, h('p', { class: 'muted', text: fmtNum(r.count || 0) + ' registered' }),
        table(['User', 'Transport', 'Expires in'], (r.users || []).map(u => [u.user || '—', u.transport || '—', fmtDur(u.expires_in_s)]), 'No browser is registered.'));
      fill(trunks, table(['Name', 'Target', 'State', 'Calls'], (s.trunks || []).map(t => [
        t.name || '—', h('code', { text: t.target || '—' }),
        !t.monitored ? badge(t.up === false ? 'down' : 'not monitored', t.up === false ? 'bad' : '') : badge(t.up ? 'up' : 'down', t.up ? 'ok' : 'bad'),
        fmtNum(t.calls)]), 'No trunk is configured.'));
      const lv = { info: '', warn: 'warn', alarm: 'bad' };
      fill(events, table(['Time', 'Level', 'Event'], (s.events || []).map(e => [fmtSec(e.time), badge(e.level || 'info', lv[e.level] || ''), e.message || '']),
        'Nothing to report.', 'events'));
    }, 2000, live);
    poller(async () => {
      const d = (await api('GET', '/api/calls')).data || {};
      if (!live()) return;
      fill(calls, table(['From', 'To', 'State', 'Duration', 'Trunk', 'Media'], (d.calls || []).map(c => [
        c.from || '—', c.to || '—', badge(c.state || '—', c.state === 'answered' ? 'ok' : 'warn'), fmtDur(c.duration_s), c.trunk || '—',
        h('div', { class: 'legs' }, (c.legs || []).map(l => h('div', null, h('strong', { text: l.side || 'leg' }),
          ` ${l.codec || 'no codec yet'} · in ${fmtNum(l.packets_in)} / out ${fmtNum(l.packets_out)} · lost ${fmtNum(l.lost)}` +
          (l.loss_percent != null ? ` (${Number(l.loss_percent).toFixed(1)} %)` : ''))))]), 'No call right now.'));
    }, 2000, live);
    poller(async () => {
      hist = (await api('GET', '/api/history')).data;
      if (live()) drawGraph(canvas, hist);
    }, 10000, live);
    const rs = () => drawGraph(canvas, hist);
    window.addEventListener('resize', rs);
    onLeave(() => window.removeEventListener('resize', rs));
  }

  function niceMax(v) {
    if (v <= 1) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function drawGraph(cv, hist) {
    const w = cv.clientWidth || 600, ht = cv.clientHeight || 200, dpr = window.devicePixelRatio || 1;
    cv.width = Math.round(w * dpr);
    cv.height = Math.round(ht * dpr);
    const g = cv.getContext('2d');
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, ht);
    const cs = getComputedStyle(cv), css = (n, d) => cs.getPropertyValue(n).trim() || d;
    const ink = cs.color || '#333', grid = css('--grid', '#ddd'), cC = css('--c-calls', '#0b63ce'), cP = css('--c-packets', '#1f9d55');
    const L = 40, R = 56, T = 10, B = 24, pw = Math.max(10, w - L - R), ph = Math.max(10, ht - T - B);
    const samples = (hist && Array.isArray(hist.samples) ? hist.samples : []).filter(s => s && typeof s.time === 'number');
    const end = samples.length ? samples[samples.length - 1].time : Date.now() / 1000, start = end - 3600;
    const pts = samples.filter(s => s.time >= start);
    const mC = niceMax(Math.max(1, ...pts.map(s => s.calls || 0))), mP = niceMax(Math.max(1, ...pts.map(s => s.packets || 0)));
    const x = t => L + ((t - start) / 3600) * pw;
    g.font = '11px system-ui, sans-serif';
    g.lineWidth = 1;
    g.strokeStyle = grid;
    g.fillStyle = ink;
    g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const y = T + ph - (ph * i) / 4;
      g.beginPath(); g.moveTo(L, Math.round(y) + 0.5); g.lineTo(L + pw, Math.round(y) + 0.5); g.stroke();
      g.textAlign = 'right'; g.fillText(String(+(mC * i / 4).toFixed(2)), L - 6, y);
      g.textAlign = 'left'; g.fillText(fmtShort(mP * i / 4), L + pw + 6, y);
    }
    g.textBaseline = 'top';
    g.textAlign = 'center';
    for (let m = 0; m <= 60; m += 15) g.fillText(m === 60 ? 'now' : `-${60 - m} min`, L + (pw * m) / 60, T + ph + 6);
    cv.dataset.drawn = pts.length ? 'data' : 'empty';
    if (!pts.length) {
      g.textBaseline = 'middle';
      g.fillText('No data yet', L + pw / 2, T + ph / 2);
      return;
    }
    const line = (key, max, color) => {
      g.strokeStyle = color;
      g.lineWidth = 2;
      g.lineJoin = 'round';
      g.beginPath();
      pts.forEach((s, i) => { const px = x(s.time), py = T + ph - ((s[key] || 0) / max) * ph; if (i) g.lineTo(px, py); else g.moveTo(px, py); });
      if (pts.length === 1) g.lineTo(x(pts[0].time) + 2, T + ph - ((pts[0][key] || 0) / max) * ph);
      g.stroke();
    };
    line('packets', mP, cP);
    line('calls', mC, cC);
  }
  function fmtShort(n) {
    if (n >= 1e6) return +(n / 1e6).toFixed(1) + 'M';
    if (n >= 1e3) return +(n / 1e3).toFixed(1) + 'k';
    return String(+n.toFixed(1));
  }

  // ---- configuration ----------------------------------------------------------------------------------
  // Arrays that may be empty yet hold objects (key paths without indices) and what "Add" puts in them.
  const TEMPLATES = {
    'sip.listen': { transport: 'udp', address: '0.0.0.0', port: 5060 },
    trunks: { name: 'pbx', address: '', port: 5060, transport: 'udp' },
    routes: { name: 'route', trunks: [] },
    rewrite: { toward: 'trunks', header: '', remove: true },
    'trunks.costs': { prefix: '', cost: 0 },
    'routes.headers': { name: '', regex: '' },
  };
  const NUMERIC_LISTS = new Set(['routing.failover_codes', 'routes.weights']);
  const ENUMS = {
    transport: ['udp', 'tcp', 'tls', 'ws', 'wss'], level: ['error', 'warn', 'info', 'debug', 'trace'],
    trunk_srtp: ['off', 'sdes'], strategy: ['priority', 'weighted', 'round-robin', 'least-cost'], toward: ['trunks', 'browsers'],
  };
  function kindOf(v, gp) {
    if (Array.isArray(v)) {
      if (!v.length) return TEMPLATES[gp] ? 'objects' : 'list';
      if (v.every(isObj)) return 'objects';
      if (v.every(x => typeof x === 'string' && !x.includes(',')) || v.every(x => typeof x === 'number')) return 'list';
      return 'json';
    }
    if (isObj(v)) return 'object';
    if (typeof v === 'boolean') return 'bool';
    if (typeof v === 'number') return 'number';
    if (typeof v === 'string' || v === null) return 'text';
    return 'json';
  }

  function pageConfig(main) {
    title('Configuration');
    const live = token();
    let doc = null;
    const asJson = new Set();
    const result = alertBox('config-result', 'ok'), errors = alertBox('config-errors', 'bad');
    const form = h('form', { id: 'config-form', class: 'cfg', novalidate: true, onSubmit: e => { e.preventDefault(); save(); } }, loading());
    const saveBtn = h('button', { id: 'config-save', type: 'button', class: 'btn primary', text: 'Save', onClick: () => save() });
    const reloadBtn = h('button', { id: 'config-reload', type: 'button', class: 'btn', text: 'Discard changes', onClick: () => { clearBox(result, errors); asJson.clear(); load(); } });
    const impFile = h('input', { id: 'config-import-file', type: 'file', accept: '.toml,text/plain,application/toml' });
    const impBtn = h('button', { id: 'config-import', type: 'button', class: 'btn', text: 'Import', onClick: async () => {
      clearBox(result, errors);
      const f = impFile.files[0];
      if (!f) return reportError(errors, new ApiError(0, 'Choose a TOML file to import first.'));
      busy(impBtn, true);
      try {
        const r = await api('POST', '/api/config/import', await readText(f), { type: 'application/toml' });
        impFile.value = '';
        show(result, 'Imported. ' + appliedText(r.data));
        load();
      } catch (x) { reportError(errors, x, form, [], true); } finally { busy(impBtn, false); }
    } });
    const addName = h('input', { id: 'config-add-name', type: 'text', placeholder: 'section name', autocomplete: 'off', spellcheck: 'false', 'aria-label': 'New section name' });
    const addBtn = h('button', { id: 'config-add', type: 'button', class: 'btn small', text: 'Add section', onClick: () => {
      const n = addName.value.trim();
      if (!doc || !/^[A-Za-z0-9_-]+$/.test(n) || n in doc.config) return reportError(errors, new ApiError(0, 'Give a new section name (letters, digits, _ and -) that is not there yet.'));
      doc.config[n] = {};
      asJson.add(n);
      addName.value = '';
      render();
    } });

    async function load() {
      try {
        const r = await api('GET', '/api/config');
        if (!live()) return;
        doc = r.data || {};
        if (!isObj(doc.config)) doc.config = {};
        render();
      } catch (x) { if (live()) reportError(errors, x); }
    }
    async function save() {
      if (!doc) return;
      clearBox(result, errors);
      clearErrors(form);
      const bad = {};
      for (const el of form.querySelectorAll('[data-bad]')) bad[el.getAttribute('data-path')] = el.getAttribute('data-bad');
      if (Object.keys(bad).length) return reportError(errors, new ApiError(0, 'Correct the marked fields first.', { fields: bad }), form, [], true);
      busy(saveBtn, true);
      try {
        const r = await api('PUT', '/api/config', { config: doc.config });
        show(result, 'Saved. ' + appliedText(r.data));
        await load();
      } catch (x) {
        reportError(errors, x, form, [], true);
        errors.scrollIntoView({ block: 'nearest' });
      } finally { busy(saveBtn, false); }
    }

    function render() {
      const c = doc.config;
      const tops = Object.keys(c), plain = tops.filter(k => !isObj(c[k]) && kindOf(c[k], k) !== 'objects');
      fill(form,
        Object.entries(ENUMS).map(([k, vs]) => h('datalist', { id: 'dl-' + k }, vs.map(x => h('option', { value: x })))),
        doc.path ? h('p', { class: 'note' }, 'File: ', h('code', { text: doc.path })) : null,
        plain.length ? h('details', { class: 'section', open: true, 'data-group': '' }, h('summary', { text: 'General' }),
          h('div', { class: 'fields' }, plain.map(k => node(c, k, k, k)))) : null,
        tops.filter(k => !plain.includes(k)).map(topSection),
        h('div', { class: 'row add' }, addName, addBtn));
    }
    function topSection(k) {
      const c = doc.config, json = asJson.has(k) || kindOf(c[k], k) === 'json';
      let area = null;
      const body = json ? (area = jsonArea(c, k, k, k + ' (JSON)')) : isObj(c[k]) ? objBody(c[k], k, k) : list0(c, k);
      const tog = h('button', { type: 'button', class: 'btn small ghost', id: 'cfg-' + safe(k) + '-mode', text: json ? 'Edit as form' : 'Edit as JSON', onClick: () => {
        if (json) {
          if (area.querySelector('[data-bad]')) return;
          asJson.delete(k);
        } else asJson.add(k);
        render();
      } });
      return h('details', { class: 'section', open: true, 'data-group': k }, h('summary', { text: k }),
        h('div', { class: 'section-tools' }, kindOf(c[k], k) === 'json' ? null : tog), body);
    }
    const list0 = (c, k) => objects(c, k, k, k, k);
    function node(p, k, path, gp, label) {
      label = label || k;
      const v = p[k], kind = kindOf(v, gp), id = 'cfg-' + safe(path);
      if (kind === 'object') return h('fieldset', { class: 'group', 'data-group': path }, h('legend', { text: label }), objBody(v, path, gp));
      if (kind === 'objects') return objects(p, k, path, gp, label);
      if (kind === 'json') return jsonArea(p, k, path, label + ' (JSON)');
      if (kind === 'bool') {
        const i = h('input', { type: 'checkbox', id, 'data-path': path, checked: v, onChange: () => { p[k] = i.checked; } });
        return h('div', { class: 'field' }, check(i, label));
      }
      if (kind === 'number') {
        const i = h('input', { type: 'number', step: 'any', id, 'data-path': path, value: String(v), onInput: () => {
          const t = i.value.trim(), n = Number(t);
          if (t === '' || !Number.isFinite(n)) i.setAttribute('data-bad', 'Enter a number.');
          else { i.removeAttribute('data-bad'); p[k] = n; }
        } });
        return field(label, i);
      }
      if (kind === 'list') {
        const numeric = v.length ? v.every(x => typeof x === 'number') : NUMERIC_LISTS.has(gp);
        const i = h('input', { type: 'text', id, 'data-path': path, value: v.join(', '), autocomplete: 'off', spellcheck: 'false', onInput: () => {
          const parts = i.value.split(',').map(s => s.trim()).filter(Boolean);
          if (!numeric) { p[k] = parts; return; }
          const ns = parts.map(Number);
          if (ns.some(n => !Number.isFinite(n))) return i.setAttribute('data-bad', 'Enter numbers separated by commas.');
          i.removeAttribute('data-bad');
          p[k] = ns;
        } });
        return field(label, i, numeric ? 'Numbers, comma separated' : 'Comma separated');
      }
      const secret = /pass|secret|token/i.test(k);
      const i = h('input', { type: secret ? 'password' : 'text', id, 'data-path': path, value: v == null ? '' : v, list: ENUMS[k] ? 'dl-' + k : null,
        autocomplete: secret ? 'new-password' : 'off', spellcheck: 'false', onInput: () => { p[k] = v === null && i.value === '' ? null : i.value; } });
      return field(label, i, v === null ? 'Empty: not set' : null);
    }
    function objBody(o, path, gp) {
      const ks = Object.keys(o), nested = k => isObj(o[k]) || kindOf(o[k], join(gp, k)) === 'objects';
      if (!ks.length) return h('p', { class: 'empty', text: 'No keys: every setting here has its default. Use "Edit as JSON" on the section to add some.' });
      return h('div', { class: 'fields' },
        ks.filter(k => !nested(k)).map(k => node(o, k, join(path, k), join(gp, k))),
        ks.filter(nested).map(k => node(o, k, join(path, k), join(gp, k))));
    }
    function objects(p, k, path, gp, label) {
      const arr = p[k];
      return h('fieldset', { class: 'group items', 'data-group': path }, h('legend', { text: label }),
        arr.map((it, i) => h('fieldset', { class: 'group item', 'data-group': `${path}[${i}]` },
          h('legend', { text: `${label} ${i + 1}` + (typeof it.name === 'string' && it.name ? ': ' + it.name : '') }),
          h('div', { class: 'item-tools' }, h('button', { type: 'button', class: 'btn small danger', id: 'cfg-' + safe(`${path}[${i}]`) + '-remove', text: 'Remove', onClick: () => { arr.splice(i, 1); render(); } })),
          objBody(it, `${path}[${i}]`, gp))),
        arr.length ? null : h('p', { class: 'empty', text: 'None.' }),
        h('button', { type: 'button', class: 'btn small', id: 'cfg-' + safe(path) + '-add', text: 'Add ' + label, onClick: () => {
          const t = arr.length ? clone(arr[arr.length - 1]) : clone(TEMPLATES[gp] || {});
          if (arr.length && typeof t.name === 'string') t.name = '';
          arr.push(t);
          render();
        } }));
    }
    function jsonArea(p, k, path, label) {
      const text = JSON.stringify(p[k], null, 2);
      const ta = h('textarea', { id: 'cfg-' + safe(path), 'data-path': path, class: 'mono', rows: Math.min(20, Math.max(3, text.split('\n').length)), spellcheck: 'false', value: text, onInput: () => {
        try { p[k] = JSON.parse(ta.value); ta.removeAttribute('data-bad'); } catch (e) { ta.setAttribute('data-bad', 'Not valid JSON: ' + e.message); }
      } });
      return field(label, ta);
    }

    // Network & time, certificate, password.
    const netBox = h('div', null, loading()), netErr = alertBox('net-error', 'bad'), netRes = alertBox('net-result', 'ok');
    api('GET', '/api/network').then(r => {
      if (!live()) return;
      const nf = netForm(r.data || {}, ['mode', 'ntp']);
      const b = h('button', { id: 'net-save', type: 'button', class: 'btn primary', text: 'Save network and time', onClick: async () => {
        clearBox(netErr, netRes);
        const v = nf.read();
        if (!v) return;
        busy(b, true);
        try { const a = (await api('PUT', '/api/network', v)).data || {}; show(netRes, 'Saved: it applies ' + (a.applies || nf.applies || 'at the next boot') + '.'); }
        catch (x) { reportError(netErr, x, nf.el, ['network.']); } finally { busy(b, false); }
      } });
      fill(netBox, nf.el, h('div', { class: 'row' }, b), netRes, netErr);
    }).catch(x => reportError(netErr, x));

    const cur = h('input', { id: 'pw-current', type: 'password', autocomplete: 'current-password', 'data-path': 'current' });
    const nw = h('input', { id: 'pw-new', type: 'password', autocomplete: 'new-password', 'data-path': 'new' });
    const cf = h('input', { id: 'pw-confirm', type: 'password', autocomplete: 'new-password', 'data-path': 'confirm' });
    const pwErr = alertBox('pw-error', 'bad'), pwRes = alertBox('pw-result', 'ok');
    const pwBtn = h('button', { id: 'pw-submit', type: 'submit', class: 'btn primary', text: 'Change password' });
    const pwForm = h('form', { id: 'pw-form', novalidate: true, onSubmit: async e => {
      e.preventDefault();
      clearBox(pwErr, pwRes);
      clearErrors(pwForm);
      const f = {};
      if (!cur.value) f.current = 'Enter the current password.';
      if (nw.value.length < 10) f.new = 'Use at least 10 characters.';
      else if (cf.value !== nw.value) f.confirm = 'The two passwords differ.';
      if (Object.keys(f).length) return reportError(pwErr, new ApiError(0, 'Check the fields.', { fields: f }), pwForm);
      busy(pwBtn, true);
      try {
        await api('POST', '/api/password', { current: cur.value, new: nw.value });
        // the gateway ends every session when the password changes
        S.csrf = null;
        S.after = '#/config';
        showLogin('Password changed: log in with the new one.');
      } catch (x) { reportError(pwErr, x, pwForm); } finally { busy(pwBtn, false); }
    } }, h('div', { class: 'grid' }, field('Current password', cur), field('New password', nw, 'At least 10 characters'), field('Confirm new password', cf)),
    h('div', { class: 'row' }, pwBtn), pwRes, pwErr);

    put(main, h('div', { class: 'page-head' }, h('h1', { text: 'Configuration' }), h('a', { href: '#/wizard', class: 'quiet', text: 'Run the setup wizard again' })),
      h('section', { id: 'config-section', class: 'card' },
        h('h2', { text: 'Gateway configuration' }),
        h('div', { class: 'toolbar' }, saveBtn, reloadBtn, h('span', { class: 'grow' }),
          h('a', { id: 'config-export', class: 'btn', href: '/api/config/export', download: 'gatewayd.toml', text: 'Export TOML' }),
          h('label', { class: 'file-pick', for: 'config-import-file' }, h('span', { class: 'sr', text: 'TOML file to import' }), impFile), impBtn),
        result, errors, form),
      section('config-network', 'Network and time', netBox),
      section('config-cert', 'Certificate for browsers (WSS)', certPanel(null, live)),
      section('config-password', 'Change the admin password', pwForm));
    load();
  }

  // ---- updates ------------------------------------------------------------------------------------------
  function pageUpdates(main) {
    title('Updates');
    const live = token();
    const dd = id => h('dd', { id, text: '…' });
    const msg = alertBox('update-message', 'ok');
    const err = h('div', { id: 'update-error', class: 'alert bad big', role: 'alert', hidden: true });
    const bar = h('progress', { id: 'update-progress', max: 100 }), barText = h('p', { id: 'update-progress-text', class: 'muted' });
    const progBox = h('div', { class: 'progress-box', hidden: true }, bar, barText);
    const file = h('input', { id: 'update-file', type: 'file' });
    const upBar = h('progress', { id: 'update-upload-progress', max: 100, value: 0, hidden: true });
    const upNote = h('p', { class: 'note', hidden: true });
    let info = {};
    const say = (m, e) => { show(msg, m || ''); if (e) { fill(err, h('strong', { text: 'Update refused: ' }), e); err.hidden = false; } else clearBox(err); };
    const checkBtn = h('button', { id: 'update-check', type: 'button', class: 'btn', text: 'Check for updates', onClick: async () => {
      say();
      busy(checkBtn, true);
      try { const r = await api('POST', '/api/update/check'); say((r.data && r.data.message) || 'Checking for updates.'); refresh(); }
      catch (x) { surface(x); if (!x.handled) say('', x.message); } finally { busy(checkBtn, false); }
    } });
    const rollback = h('button', { id: 'update-rollback', type: 'button', class: 'btn danger', text: 'Roll back', onClick: async () => {
      if (!window.confirm(`Roll back to the release in slot ${info.other_slot || '(the other slot)'}? The gateway restarts and calls in progress are dropped.`)) return;
      say();
      busy(rollback, true);
      try { const r = await api('POST', '/api/update/rollback'); say((r.data && r.data.message) || 'Rolling back.'); refresh(); }
      catch (x) { surface(x); if (!x.handled) say('', x.message); } finally { busy(rollback, false); }
    } });
    const upload = h('button', { id: 'update-upload', type: 'button', class: 'btn primary', text: 'Upload and install', onClick: async () => {
      say();
      const f = file.files[0];
      if (!f) return say('', 'Choose an update bundle file first.');
      busy(upload, true);
      upBar.hidden = false;
      upBar.value = 0;
      const r = await send(f, p => { upBar.value = p; });
      busy(upload, false);
      upBar.hidden = true;
      if (r.status === 401) return sessionLost();
      if (!live()) return;
      let d = r.text;
      try { d = JSON.parse(r.text); } catch (_) { /* text */ }
      if (r.status === 202 || r.status === 200) {
        say([isObj(d) && d.message ? cap(d.message) : 'Bundle accepted.', isObj(d) && d.version ? `Version ${d.version}` + (d.board ? ` for ${d.board}.` : '.') : ''].join(' '));
        file.value = '';
        refresh();
      } else if (r.status === 0) say('', 'The upload did not reach the gateway: check the connection and try again.');
      else say('', errText(r.status, d));
    } });
    function send(f, progress) {
      return new Promise(resolve => {
        const x = new XMLHttpRequest();
        x.open('POST', '/api/update/upload');
        x.setRequestHeader('Content-Type', 'application/octet-stream');
        if (S.csrf) x.setRequestHeader('X-CSRF-Token', S.csrf);
        x.upload.onprogress = e => { if (e.lengthComputable && e.total) progress(Math.round((e.loaded / e.total) * 100)); };
        x.onload = () => resolve({ status: x.status, text: x.responseText });
        x.onerror = () => resolve({ status: 0, text: '' });
        x.onabort = () => resolve({ status: 0, text: '' });
        x.send(f);
      });
    }
    const setTxt = (id, t) => { const e = document.getElementById(id); if (e) e.textContent = t; };
    async function refresh() {
      const d = (await api('GET', '/api/update')).data || {};
      if (!live()) return;
      info = d;
      setTxt('update-version', d.version || '—');
      setTxt('update-slot', d.slot || 'not an A/B system');
      setTxt('update-other-slot', d.other_slot || '—');
      setTxt('update-agent', d.agent || 'not running');
      setTxt('update-server', d.server || 'none configured');
      const p = d.progress;
      progBox.hidden = !p;
      if (p) {
        if (typeof p.percent === 'number') bar.value = p.percent; else bar.removeAttribute('value');
        barText.textContent = [p.state, typeof p.percent === 'number' ? p.percent + ' %' : '', p.message].filter(Boolean).join(' · ');
      }
      rollback.disabled = !d.other_slot;
      checkBtn.disabled = !d.server;
      checkBtn.title = d.server ? '' : 'No update server is configured';
      show(upNote, d.uploads === false ? 'This system does not take uploaded bundles (the gateway will refuse them).' : '');
    }
    put(main, h('h1', { text: 'Updates' }),
      section('update-status', 'Installed software',
        h('dl', { class: 'kv' }, h('dt', { text: 'Version' }), dd('update-version'), h('dt', { text: 'Running slot' }), dd('update-slot'),
          h('dt', { text: 'Other slot' }), dd('update-other-slot'), h('dt', { text: 'Update agent' }), dd('update-agent'),
          h('dt', { text: 'Update server' }), dd('update-server')),
        progBox, h('div', { class: 'row' }, checkBtn, rollback)),
      section('update-upload-card', 'Install from a file',
        h('p', { text: 'Upload an RTC Edge update bundle. The gateway verifies its signature before the update agent installs it into the other slot.' }),
        upNote, field('Update bundle', file), h('div', { class: 'row' }, upload, upBar)),
      msg, err);
    poller(refresh, 2000, live);
  }

  // ---- logs -----------------------------------------------------------------------------------------------
  function pageLogs(main) {
    title('Logs');
    const live = token();
    const lines = h('div', { id: 'logs-lines', class: 'log' }, loading()), cdrs = h('div', { id: 'cdrs-table' }, loading());
    let all = [];
    const filter = h('input', { id: 'logs-filter', type: 'search', placeholder: 'Filter', 'aria-label': 'Filter log lines', onInput: () => drawLines() });
    const lvl = { ERROR: 'bad', WARN: 'warn' };
    function drawLines() {
      const q = filter.value.trim().toLowerCase();
      const rows = all.filter(l => !q || (String(l.message) + ' ' + l.level).toLowerCase().includes(q));
      fill(lines, table(['Time', 'Level', 'Message'], rows.map(l => [fmtTime(l.time), badge(l.level || '', lvl[String(l.level).toUpperCase()] || ''), h('span', { class: 'mono wrap', text: l.message || '' })]),
        all.length ? 'No line matches.' : 'No log lines.', 'logs'));
      lines.dataset.loaded = 'true';
      lines.scrollTop = lines.scrollHeight;
    }
    async function loadLogs() {
      try {
        all = ((await api('GET', '/api/logs?limit=200')).data || {}).lines || [];
        if (live()) drawLines();
      } catch (x) { surface(x); if (live() && !x.handled) fill(lines, h('p', { class: 'alert bad', role: 'alert', text: x.message })); }
    }
    async function loadCdrs() {
      try {
        const rs = ((await api('GET', '/api/cdrs')).data || {}).records || [];
        if (!live()) return;
        fill(cdrs, table(['Start', 'From', 'To', 'Trunk', 'Answered', 'Duration', 'Result'], rs.map(r => [
          fmtSec(r.start), r.from || '—', r.to || '—', r.trunk || '—', r.answer ? fmtSec(r.answer) : 'no', fmtDur(r.duration_s),
          [r.status != null ? String(r.status) : '', r.reason || ''].filter(Boolean).join(' ') || '—']), 'No call records yet.'));
        cdrs.dataset.loaded = 'true';
      } catch (x) { surface(x); if (live() && !x.handled) fill(cdrs, h('p', { class: 'alert bad', role: 'alert', text: x.message })); }
    }
    put(main, h('h1', { text: 'Logs' }),
      section('logs-card', 'Recent log lines',
        h('div', { class: 'toolbar' }, h('button', { id: 'logs-refresh', type: 'button', class: 'btn', text: 'Refresh', onClick: loadLogs }), filter,
          h('span', { class: 'grow' }), h('a', { id: 'logs-download', class: 'btn', href: '/api/logs/download', download: 'gatewayd.log', text: 'Download the log' })),
        lines),
      section('cdrs-card', 'Call records',
        h('div', { class: 'toolbar' }, h('button', { id: 'cdrs-refresh', type: 'button', class: 'btn', text: 'Refresh', onClick: loadCdrs }),
          h('span', { class: 'grow' }), h('a', { id: 'cdrs-download', class: 'btn', href: '/api/cdrs/download', download: 'cdrs.csv', text: 'Download CSV' })),
        cdrs));
    loadLogs();
    loadCdrs();
  }

  boot();
})();
