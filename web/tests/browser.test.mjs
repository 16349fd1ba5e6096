// chathub in a real browser: Debian's Chromium, driven by playwright-core.
// Run by `cargo test` (tests/api/browser.rs), which prepares a database and
// passes CHATHUB_BIN, DATABASE_URL, ADMIN_PASSWORD and ARTIFACTS. This file
// starts the real server itself so it can restart it in the middle of a chat.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, copyFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { chromium } from 'playwright-core';

const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD;
const ARTIFACTS = process.env.ARTIFACTS || 'target/browser-artifacts';
const DOCS = process.env.DOCS_DIR; // set to refresh docs/ screenshots
mkdirSync(ARTIFACTS, { recursive: true });
// Uploaded files go to a directory of this run (the cluster is DATABASE_URL's).
const DATA_DIR = mkdtempSync(join(tmpdir(), 'chathub-browser-'));

let server, port, base, browser;
// A local stand-in for Resend's API: records each email and answers with an id.
const RESEND_WEBHOOK_SECRET = 'whsec_' + Buffer.from('browser-test-webhook-secret').toString('base64');
const resendEmails = [];
let resendUrl;
const dialogs = [];
// Console errors that mean a page is broken whatever it shows: a script or
// style the Content-Security-Policy refused, or a module that failed to load.
const brokenPage = [];

// axe-core from node_modules, evaluated in the page through the debugging
// protocol (the pages' Content-Security-Policy rightly refuses injected scripts).
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
/** No serious or critical accessibility violations on what `target` (a page or frame) shows. */
async function assertAccessible(target, what) {
  await target.evaluate(AXE_SOURCE);
  const violations = await target.evaluate(async () => (await axe.run(document, { resultTypes: ['violations'] })).violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 4).map((n) => n.target.join(' ')).join(' | ')}`));
  assert.deepEqual(violations, [], what);
}

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function startServer() {
  server = spawn(process.env.CHATHUB_BIN, [], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: process.env.DATABASE_URL, ADMIN_PASSWORD,
           CHATHUB_BIND: `127.0.0.1:${port}`, CHATHUB_WORKERS: '2', RUST_LOG: process.env.CHATHUB_LOG || 'warn',
           RESEND_API_URL: resendUrl, RESEND_API_KEY: 're_browser_test', RESEND_WEBHOOK_SECRET,
           CHATHUB_DATA_DIR: DATA_DIR, AI_HEALTH_CHECK_SECS: '1' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(base + '/health')).ok) return; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('chathub did not start');
}

async function stopServer(signal) {
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill(signal);
  await exited;
}

/** Signs in through the API (for setup) and returns cookie + CSRF token. */
async function apiLogin(username, password) {
  const r = await fetch(base + '/api/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' },
                                                   body: JSON.stringify({ username, password }) });
  assert.equal(r.status, 200, `login ${username}`);
  const body = await r.json();
  return { cookie: r.headers.get('set-cookie').split(';')[0], csrf: body.csrf_token };
}
async function apiCall(who, method, path, body) {
  const r = await fetch(base + path, { method, headers: { cookie: who.cookie, 'x-csrf-token': who.csrf, origin: base,
                                                          'content-type': 'application/json' }, body: body && JSON.stringify(body) });
  return { status: r.status, body: await r.json().catch(() => null) };
}

async function newPage(viewport = { width: 1366, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
  page.on('pageerror', (e) => { throw e; });
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to|module script|Failed to fetch dynamically/i.test(m.text())) {
      brokenPage.push(m.text());
    }
  });
  return page;
}

async function signIn(page, username, password) {
  await page.goto(base + '/');
  await page.fill('#login-username', username);
  await page.fill('#login-password', password);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#view-sessions:not(.d-none)');
}

/** The demo page with the widget opened; returns [page, chat frame]. */
async function openWidget(viewport) {
  const page = await newPage(viewport);
  await page.goto(base + '/demo');
  await page.waitForFunction(() => !!document.querySelector('chathub-widget'));
  const frame = await waitForFrame(page);
  await frame.waitForSelector('#state:text("Online")', { state: 'attached' });
  // The bubble sits in a closed shadow root: click where it is drawn.
  const size = page.viewportSize();
  await page.mouse.click(size.width - 48, size.height - 48);
  await frame.waitForSelector('#text:visible');
  return [page, frame];
}
async function waitForFrame(page) {
  for (let i = 0; i < 100; i++) {
    const frame = page.frames().find((f) => f.url().includes('/widget/frame.html'));
    if (frame) return frame;
    await page.waitForTimeout(50);
  }
  throw new Error('no widget frame');
}
/** The sessions-table row of the conversation containing `text` (searched). */
async function findSessionRow(page, text, filters = '') {
  for (let i = 0; i < 40; i++) {
    await page.evaluate(([q, n, f]) => { location.hash = '#/sessions?q=' + encodeURIComponent(q) + f + '&n=' + n; }, [text, i, filters]);
    await page.waitForTimeout(250);
    const row = page.locator('#sessions-body tr[data-id]').first();
    if (await row.count()) return row;
  }
  throw new Error(`no session with ${text}`);
}
/** Turns the session view's takeover switch on as a user does, by clicking
 * it, until it shows on. Under CI's load a click has twice been seen to
 * leave the switch off (playwright: "Clicking the checkbox did not change
 * its state"), not reproduced alone; each extra click is logged, so the
 * log shows how often. The takeover itself is checked by the callers
 * (the widget's system line, the staff reply). */
async function takeOver(page) {
  const toggle = page.locator('#s-takeover');
  for (let click = 1; !(await toggle.isChecked()); click++) {
    assert.ok(click <= 3, 'the takeover switch stays off after 3 clicks');
    if (click > 1) console.log(`takeover switch: click ${click}`);
    await toggle.click();
    await page.waitForTimeout(100);
  }
}

async function say(frame, text) {
  await frame.fill('#text', text);
  await frame.press('#text', 'Enter');
}
async function waitForReply(frame, count) {
  await frame.waitForFunction((n) => document.querySelectorAll('.msg.ai, .msg.agent, .msg.system:not(.greeting)').length >= n, count, { timeout: 15000 });
}

/** Posts a Resend event to chathub signed as Svix signs it. */
async function resendEvent(type, emailId, extra = {}) {
  const id = 'msg_' + Math.random().toString(36).slice(2);
  const timestamp = Math.floor(Date.now() / 1000);
  const body = JSON.stringify({ type, created_at: new Date().toISOString(), data: { email_id: emailId, ...extra } });
  const key = Buffer.from(RESEND_WEBHOOK_SECRET.slice('whsec_'.length), 'base64');
  const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
  const r = await fetch(base + '/webhooks/resend', { method: 'POST', body,
    headers: { 'content-type': 'application/json', 'svix-id': id, 'svix-timestamp': String(timestamp), 'svix-signature': `v1,${signature}` } });
  assert.equal(r.status, 200, `${type}: ${await r.text()}`);
}

before(async () => {
  const resend = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      resendEmails.push({ path: req.url, key: req.headers['idempotency-key'], body: JSON.parse(body) });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: `re-browser-${resendEmails.length}` }));
    });
  });
  await new Promise((resolve) => resend.listen(0, '127.0.0.1', resolve));
  resend.unref(); // never what keeps the test process alive
  resendUrl = `http://127.0.0.1:${resend.address().port}`;
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  await startServer();
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync',
           // Video calls: a fake camera and microphone, allowed without a
           // prompt, and host candidates on loopback (no network here).
           '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection',
           '--disable-features=WebRtcHideLocalIpsWithMdns'],
  });
  const admin = await apiLogin('admin', ADMIN_PASSWORD);
  for (const [username, role] of [['quinn', 'qa'], ['devi', 'developer'], ['agnes', 'agent']]) {
    const r = await apiCall(admin, 'POST', '/api/users', { username, password: `${username}-password`, role });
    assert.equal(r.status, 201);
  }
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) await stopServer('SIGTERM');
});

let sessionId;

test('a visitor on /demo chats to completion while the dashboard shows it live', async () => {
  const staff = await newPage();
  await signIn(staff, 'admin', ADMIN_PASSWORD);
  const rowsBefore = await staff.locator('#sessions-body tr[data-id]').count();
  // An empty dashboard says how to put the widget on a site.
  assert.equal(rowsBefore, 0);
  assert.equal(await staff.locator('#onboarding-snippet').textContent(), `<script src="${base}/widget.js" data-site="default" async></script>`);

  const [visitorPage, chat] = await openWidget();
  // The greeting from the site's settings, then the scripted conversation.
  await chat.waitForSelector('.msg.greeting');
  await say(chat, 'Hello!');
  await waitForReply(chat, 1);
  assert.match(await chat.locator('.msg.ai').last().textContent(), /name/);
  // The dashboard shows the new session without a reload.
  await staff.waitForFunction((n) => document.querySelectorAll('#sessions-body tr[data-id]').length > n, rowsBefore);
  await say(chat, 'Ada Lovelace');
  await waitForReply(chat, 2);
  await say(chat, 'ada@example.com');
  await waitForReply(chat, 3);
  const booking = await chat.locator('.msg.ai').last().textContent();
  assert.match(booking, /within 24 hours/);
  // The booking link, the point of the whole conversation, is a link.
  const link = chat.locator('.msg.ai').last().locator('a');
  assert.equal(await link.count(), 1, 'the booking link is clickable');
  assert.match(await link.getAttribute('href'), /^https:\/\/cal\.example\.com\/book/);
  assert.equal(await link.getAttribute('target'), '_blank');
  assert.match(await link.getAttribute('rel'), /noopener/);
  // Delivered ticks from the acks.
  assert.equal(await chat.locator('.msg.visitor[data-state=delivered]').count(), 3);

  const row = staff.locator('#sessions-body tr', { hasText: 'Ada Lovelace' });
  await row.waitFor();
  await staff.waitForFunction(() => [...document.querySelectorAll('#sessions-body tr')].some((tr) => tr.textContent.includes('Ada Lovelace') && tr.textContent.includes('complete')));
  sessionId = await row.getAttribute('data-id');
  // The numbers the stats compute are shown, and charts count from zero.
  await staff.waitForSelector('[data-stat="Completion rate"]');
  assert.match(await staff.locator('[data-stat="Messages / session"] .value').textContent(), /^\d+\.\d$/);
  assert.equal(await staff.evaluate(() => Chart.getChart('chart-days').scales.y.min), 0);
  await staff.waitForSelector('[data-stat="Complete"] .value:text("1")'); // the cards caught up
  await staff.screenshot({ path: `${ARTIFACTS}/dashboard-sessions.png` });
  await visitorPage.screenshot({ path: `${ARTIFACTS}/widget.png` });
  if (DOCS) {
    copyFileSync(`${ARTIFACTS}/dashboard-sessions.png`, `${DOCS}/dashboard.png`);
    copyFileSync(`${ARTIFACTS}/widget.png`, `${DOCS}/widget.png`);
  }

  // The session view streams the transcript live.
  await staff.click(`a[href="#/sessions/${sessionId}"]`);
  await staff.waitForSelector('#transcript li[data-seq="6"]');
  assert.equal(await staff.locator('#transcript li[data-seq="6"] a[href^="https://cal.example.com/book"]').count(), 1, 'clickable in the dashboard too');
  await say(chat, 'Thanks, bye');
  await staff.waitForSelector('#transcript li[data-seq="7"]');
  await staff.screenshot({ path: `${ARTIFACTS}/dashboard-session.png` });
});

test('hostile chat text shows as text in the widget and the dashboard and runs nothing', async () => {
  const payload = '<img src=x onerror=alert(1)><script>alert(2)</script> javascript:alert(3) data:text/html,x https://safe.example/path.';
  const [, chat] = await openWidget();
  await say(chat, payload);
  await waitForReply(chat, 1);
  const withoutTime = (li) => { const copy = li.cloneNode(true); copy.querySelector('time')?.remove(); return copy.textContent; };
  assert.equal(await chat.locator('.msg.visitor').last().evaluate(withoutTime), 'You' + payload + '✓✓');
  assert.match(await chat.locator('.msg.visitor').last().locator('time').textContent(), /\d{1,2}:\d{2}/, 'every message shows its time');
  assert.equal(await chat.locator('.log img, .log script').count(), 0);
  // Only the https URL is a link (its full stop is the sentence's).
  assert.deepEqual(await chat.locator('.msg.visitor').last().locator('a').evaluateAll((as) => as.map((a) => a.href)), ['https://safe.example/path']);

  const staff = await newPage();
  await signIn(staff, 'admin', ADMIN_PASSWORD);
  const row = await findSessionRow(staff, '<img src=x');
  await row.locator('a').click();
  await staff.waitForSelector('#transcript li.visitor');
  assert.ok((await staff.locator('#transcript li.visitor').first().textContent()).includes(payload));
  assert.equal(await staff.locator('#transcript img, #transcript script, #sessions-body img').count(), 0);
  assert.deepEqual(await staff.locator('#transcript li.visitor a').evaluateAll((as) => as.map((a) => a.href)), ['https://safe.example/path']);
  assert.deepEqual(dialogs, [], 'no script ran');
});

test('QA flags an issue, a developer gives feedback and marks it fixed', async () => {
  const qa = await newPage();
  await signIn(qa, 'quinn', 'quinn-password');
  await qa.goto(`${base}/#/sessions/${sessionId}`);
  await qa.waitForSelector('#qa-panel:not([hidden])');
  await qa.waitForSelector('#transcript li[data-seq="7"]');
  assert.equal(await qa.locator('#dev-panel').isHidden(), true, 'QA sees no developer panel');
  assert.equal(await qa.locator('#s-delete').isHidden(), true, 'QA cannot delete');
  assert.equal(await qa.locator('#qa-buttons [data-qa=fixed]').isDisabled(), true, '"fixed" is offered only for an issue');
  assert.equal(await qa.locator('#qa-buttons [data-qa=unchecked]').isDisabled(), true, 'not the status it already has');
  // Notes are saved on their own, with no status change in the history.
  await qa.fill('#qa-notes', 'First look: fine so far');
  const [saved] = await Promise.all([qa.waitForResponse((r) => r.url().endsWith('/qa') && r.request().method() === 'PUT'), qa.click('#qa-save-notes')]);
  assert.equal(saved.status(), 200, await saved.text());
  assert.equal(await qa.locator('#qa-history li').count(), 0);
  await qa.fill('#qa-notes', 'The AI should confirm the time zone');
  await qa.click('#qa-buttons [data-qa=issue]');
  await qa.waitForSelector('#qa-buttons [data-qa=issue].active');
  await qa.waitForSelector('#qa-history li');
  // The toasts that confirm it stay clear of the history they would hide.
  const toasts = await qa.locator('#toasts .toast').evaluateAll((ts) => ts.map((t) => t.getBoundingClientRect().toJSON()));
  const history = await qa.locator('#qa-history').boundingBox();
  assert.ok(toasts.length > 0);
  for (const t of toasts) assert.ok(t.y + t.height <= history.y || t.y >= history.y + history.height || t.x + t.width <= history.x, 'a toast covers the QA history');

  const dev = await newPage();
  await signIn(dev, 'devi', 'devi-password');
  await dev.goto(`${base}/#/sessions/${sessionId}`);
  await dev.waitForSelector('#dev-panel:not([hidden])');
  await dev.waitForSelector('#transcript li[data-seq="7"]');
  await dev.waitForSelector('#qa-buttons [data-qa=issue].active');
  await dev.fill('#dev-feedback', 'Prompt now asks for the time zone');
  await dev.click('#dev-save');
  await dev.waitForSelector('#dev-by:text("devi")');
  await dev.click('#qa-buttons [data-qa=fixed]');
  await dev.waitForSelector('#qa-buttons [data-qa=fixed].active');
  await dev.screenshot({ path: `${ARTIFACTS}/dashboard-qa.png` });

  const admin = await apiLogin('admin', ADMIN_PASSWORD);
  const detail = await apiCall(admin, 'GET', `/api/sessions/${sessionId}`);
  assert.equal(detail.body.session.qa_status, 'fixed');
  assert.equal(detail.body.session.dev_feedback, 'Prompt now asks for the time zone');
  assert.deepEqual(detail.body.qa_history.map((h) => [h.to_status, h.by]), [['issue', 'quinn'], ['fixed', 'devi']]);
});

test('alerts: a new escalation and a visitor message in my conversation count in the tab title until seen', async () => {
  const agent = await newPage();
  await signIn(agent, 'agnes', 'agnes-password');
  await agent.click('#alert-sound');
  assert.equal(await agent.getAttribute('#alert-sound', 'aria-pressed'), 'true', 'the sound is opt-in, by a click');
  const [, chat] = await openWidget();
  await say(chat, 'I need a human about my invoice');
  await waitForReply(chat, 1);
  await agent.waitForFunction(() => document.title.startsWith('(1) '), null, { timeout: 10000 });
  await chat.waitForSelector('#state:text("Waiting for a person")');

  // She takes it by replying; then the visitor writes: a second alert, for her.
  const agnes = await apiLogin('agnes', 'agnes-password');
  const found = await apiCall(agnes, 'GET', '/api/sessions?q=' + encodeURIComponent('invoice') + '&status=escalated');
  const id = found.body.sessions[0].id;
  assert.equal((await apiCall(agnes, 'POST', `/api/sessions/${id}/reply`, { client_msg_id: 'alert-1', text: 'On it' })).status, 201);
  await chat.waitForSelector('.msg.agent:text("On it")');
  await chat.waitForSelector('#state:text("Chatting with agnes")');
  await say(chat, 'Thank you, are you there?');
  await agent.waitForFunction(() => document.title.startsWith('(2) '), null, { timeout: 10000 });

  // Seeing the screens clears them.
  await agent.click('a[data-nav=escalations]');
  await agent.waitForFunction(() => document.title.startsWith('(1) '));
  await agent.goto(`${base}/#/sessions/${id}`);
  await agent.waitForSelector('#transcript li.visitor');
  await agent.waitForFunction(() => !/^\(\d+\) /.test(document.title));
  // In the session view she sets the priority and resolves it.
  await agent.waitForSelector('#s-assignee option:text("admin")', { state: 'attached' });
  const me = (await apiCall(agnes, 'GET', '/api/auth/me')).body.user;
  assert.equal(await agent.inputValue('#s-assignee'), me.id, 'her reply made her the assignee');
  await agent.selectOption('#s-priority', 'urgent');
  await agent.waitForFunction(() => document.querySelector('#s-customer').textContent.includes('urgent'));
  await agent.click('#s-resolve');
  await agent.waitForSelector('#s-resolve:text("Reopen")');
  const after = (await apiCall(agnes, 'GET', `/api/sessions/${id}`)).body.session;
  assert.deepEqual([after.status, after.priority, after.handler], ['resolved', 'urgent', 'ai']);
});

test('in Escalations, Claim becomes the claimer\'s name and Resolve hands the chat back', async () => {
  const [, chat] = await openWidget();
  await say(chat, 'I want to talk to a human about my parking ticket');
  await waitForReply(chat, 1);
  const admin = await apiLogin('admin', ADMIN_PASSWORD);
  const found = await apiCall(admin, 'GET', '/api/sessions?q=' + encodeURIComponent('"my parking ticket"'));
  assert.equal(found.body.total, 1);
  const id = found.body.sessions[0].id;
  const agent = await newPage();
  await signIn(agent, 'devi', 'devi-password');
  await agent.goto(`${base}/#/escalations`);
  const mine = agent.locator(`#escalations-body tr[data-id="${id}"]`);
  await mine.waitFor();
  await mine.locator('button:text("Claim")').click();
  await agent.waitForSelector(`#escalations-body tr[data-id="${id}"] .assignee:text("devi")`);
  assert.equal(await mine.locator('button:text("Claim")').count(), 0);
  await mine.locator('button:text("Resolve")').click();
  await agent.waitForSelector(`#escalations-body tr[data-id="${id}"]`, { state: 'detached' });
  assert.equal((await apiCall(admin, 'GET', `/api/sessions/${id}`)).body.session.status, 'resolved');
});

test('an agent takes over and the visitor sees the staff reply in the widget', async () => {
  const [, chat] = await openWidget();
  await say(chat, 'Can I change my booking?');
  await waitForReply(chat, 1);
  // She signs her messages with her display name.
  const agnes = await apiLogin('agnes', 'agnes-password');
  assert.equal((await apiCall(agnes, 'PUT', '/api/auth/me', { display_name: 'Agnes Smith' })).status, 200);
  const agent = await newPage();
  await signIn(agent, 'agnes', 'agnes-password');
  assert.match(await agent.locator('#whoami').textContent(), /^Agnes Smith · agnes/);
  const row = await findSessionRow(agent, 'Can I change my booking?');
  await row.locator('a').click();
  await agent.waitForSelector('#transcript li.visitor');
  await takeOver(agent);
  await chat.waitForSelector('.msg.system:text("member of our team")');
  // Her typing shows in the widget while she writes.
  await agent.type('#s-reply-text', 'Hi, Agnes here.');
  // (Polled, not read once: under load a late frame may still be on its way.)
  await chat.waitForSelector('#typing:not([hidden]) #typing-who:text("Team is typing")');
  await agent.type('#s-reply-text', ' Of course!');
  await agent.press('#s-reply-text', 'Enter');
  await chat.waitForSelector('.msg.agent:text("Agnes here")');
  assert.equal(await chat.locator('.msg.agent .who').last().textContent(), 'Agnes Smith', 'not a generic "Team"');
  await agent.waitForSelector('#transcript li.agent .meta:text("Agnes Smith")');
});

test('an agent emails the lead from the session and sees it opened and clicked as Resend reports it', async () => {
  const agent = await newPage();
  await signIn(agent, 'agnes', 'agnes-password');
  await agent.goto(`${base}/#/sessions/${sessionId}`);
  await agent.waitForSelector('#s-emails-none:not([hidden])');
  await agent.click('#s-email');
  await agent.waitForSelector('#compose.show');
  await agent.selectOption('#compose-template', { label: 'Appointment reminder (reminder)' });
  // What the server knows is filled in; the appointment time is asked for.
  await agent.waitForSelector('#compose-var-appointment_time.is-invalid');
  assert.equal(await agent.inputValue('#compose-var-customer_name'), 'Ada Lovelace');
  // The preview fills the address when it answers: polled, as under load it comes after the fields.
  await agent.waitForFunction(() => document.getElementById('compose-to').value === 'ada@example.com');
  await agent.fill('#compose-var-appointment_time', 'Friday at 10:00');
  await agent.waitForSelector('#compose-subject:text("Reminder: your appointment on Friday at 10:00")');
  assert.match(await agent.locator('#compose-text').textContent(), /^Hi Ada Lovelace,/);
  await agent.click('#compose-send');
  await agent.waitForSelector('#compose', { state: 'hidden' });
  await agent.waitForSelector('#s-emails li[data-status=sent]');
  assert.equal(resendEmails.length, 1);
  const sent = resendEmails[0];
  assert.equal(sent.path, '/emails');
  assert.deepEqual(sent.body.to, ['ada@example.com']);
  assert.equal(sent.body.subject, 'Reminder: your appointment on Friday at 10:00');
  assert.match(sent.key, /^email\.send\//);

  // Resend's webhook reports it delivered, opened and clicked: the view follows live.
  await resendEvent('email.delivered', 're-browser-1');
  await agent.waitForSelector('#s-emails li[data-status=delivered]');
  await resendEvent('email.opened', 're-browser-1');
  await agent.waitForSelector('#s-emails li[data-status=opened]');
  await resendEvent('email.clicked', 're-browser-1', { click: { link: 'https://cal.example.com/book' } });
  await agent.waitForSelector('#s-emails li[data-status=clicked]');
  assert.equal(await agent.locator('#s-emails .email-counts').textContent(), 'opened 1 · clicked 1');
  assert.equal(await agent.locator('#s-emails li li').textContent(), 'https://cal.example.com/book');
  await agent.screenshot({ path: `${ARTIFACTS}/dashboard-email.png` });

  // The template's numbers, and a new template with its variables shown as they are typed.
  await agent.click('[data-nav=templates]');
  const reminder = agent.locator('#templates-body tr[data-template="Appointment reminder"]');
  await reminder.waitFor();
  assert.equal(await reminder.locator('.open-rate').textContent(), '100 %');
  assert.equal(await reminder.locator('.click-rate').textContent(), '100 %');
  await agent.fill('#t-name', 'Price list');
  await agent.selectOption('#t-category', 'promotion');
  await agent.fill('#t-subject', 'Prices for {{customer_name}}');
  await agent.fill('#t-body', 'Hi {{customer_name}}, our prices: {{price_url}}');
  await agent.waitForSelector('#t-variables .variable-chip:text("{{price_url}}")');
  assert.equal(await agent.locator('#t-preview-subject').textContent(), 'Prices for Jane Sample');
  await agent.click('#t-save');
  await agent.waitForSelector('#templates-body tr[data-template="Price list"]');
});

test('read receipts: an unread chat stands out, staff reading shows Seen in the widget, the visitor reading shows Seen in the dashboard', async () => {
  const [, chat] = await openWidget();
  await say(chat, 'Is anyone reading this?');
  await waitForReply(chat, 1);
  const staff = await newPage();
  await signIn(staff, 'admin', ADMIN_PASSWORD);
  const row = await findSessionRow(staff, 'Is anyone reading this?');
  assert.ok((await row.getAttribute('class')).split(' ').includes('unread'), 'an unread chat is in bold');
  assert.equal(await row.locator('.unread-count').textContent(), '1');
  const id = await row.getAttribute('data-id');
  await row.locator('a').first().click();
  await staff.waitForSelector('#transcript li.visitor');
  // Staff have the transcript on screen: the visitor sees it was read.
  await chat.waitForSelector('.msg.visitor .seen:text("Seen")');
  // A staff reply, which the visitor (chat open, tab visible) reads at once.
  await takeOver(staff);
  await staff.fill('#s-reply-text', 'Yes, I am here.');
  await staff.press('#s-reply-text', 'Enter');
  await chat.waitForSelector('.msg.agent:text("I am here")');
  await staff.waitForSelector('#transcript li.agent .seen:text("Seen")');
  const admin = await apiLogin('admin', ADMIN_PASSWORD);
  const detail = (await apiCall(admin, 'GET', `/api/sessions/${id}`)).body.session;
  assert.equal(detail.unread, 0);
  assert.ok(detail.visitor_read_seq >= 4 && detail.staff_read_by === 'admin', JSON.stringify(detail));
  await staff.goto(`${base}/#/sessions`);
  await staff.waitForSelector(`#sessions-body tr[data-id="${id}"]:not(.unread)`);
});

// A real 1×1 PNG and a small PDF, as a screenshot and a quote would be.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==', 'base64');
const PDF = Buffer.from('%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n');

test('attachments: a visitor pastes a screenshot the dashboard shows, and a staff PDF downloads in the widget', async () => {
  const [, chat] = await openWidget();
  await say(chat, 'Here is a screenshot of the error');
  await waitForReply(chat, 1);
  // A pasted image (as from the clipboard after a screenshot) is uploaded and sent.
  await chat.evaluate((bytes) => {
    const clipboard = new DataTransfer();
    clipboard.items.add(new File([new Uint8Array(bytes)], 'screenshot.png', { type: 'image/png' }));
    document.getElementById('text').dispatchEvent(new ClipboardEvent('paste', { clipboardData: clipboard, bubbles: true, cancelable: true }));
  }, [...PNG]);
  await chat.waitForSelector('.msg.visitor[data-state="delivered"] img.thumb[src^="blob:"]');
  const staff = await newPage();
  await signIn(staff, 'admin', ADMIN_PASSWORD);
  const row = await findSessionRow(staff, 'screenshot of the error');
  await row.locator('a').first().click();
  await staff.waitForFunction(() => {
    const img = document.querySelector('#transcript li.visitor img.thumb[alt="screenshot.png"]');
    return img && img.complete && img.naturalWidth === 1;
  });
  // Staff attach a PDF with the paperclip and send it with a reply.
  await takeOver(staff);
  await staff.setInputFiles('#s-file', { name: 'quote.pdf', mimeType: 'application/pdf', buffer: PDF });
  await staff.waitForSelector('#s-files .file-chip[data-ready="true"]');
  await staff.fill('#s-reply-text', 'Your quote is attached.');
  await staff.press('#s-reply-text', 'Enter');
  await staff.waitForSelector('#transcript li.agent a.file[download="quote.pdf"]');
  assert.equal(await staff.locator('#s-files .file-chip').count(), 0, 'sent files leave the reply box');
  const link = chat.locator('.msg.agent a.file[data-download="quote.pdf"]');
  await link.waitFor();
  const [download] = await Promise.all([chat.page().waitForEvent('download'), link.click()]);
  assert.equal(download.suggestedFilename(), 'quote.pdf');
  assert.equal(readFileSync(await download.path(), 'latin1'), PDF.toString('latin1'));
});

test('a visitor rates a resolved chat in the widget, and the dashboard shows the rating', async () => {
  const [, chat] = await openWidget();
  await say(chat, 'Do you open on Saturdays?');
  await waitForReply(chat, 1);
  const admin = await apiLogin('admin', ADMIN_PASSWORD);
  const staff = await newPage();
  await signIn(staff, 'admin', ADMIN_PASSWORD);
  const row = await findSessionRow(staff, 'open on Saturdays');
  const id = await row.getAttribute('data-id');
  assert.equal((await apiCall(admin, 'PUT', `/api/sessions/${id}`, { status: 'resolved' })).status, 200);
  // Resolved: the widget asks, once.
  await chat.waitForSelector('#csat:not([hidden])');
  assert.equal(await chat.locator('#csat-send').isDisabled(), true, 'no score, nothing to send');
  await chat.click('#csat [data-score="4"]');
  await chat.fill('#csat-comment', 'Quick answer, <b>thanks</b>');
  await chat.click('#csat-send');
  await chat.waitForSelector('#csat .thanks');
  await staff.waitForFunction(async (sid) => {
    const r = await fetch('/api/sessions/' + sid); const d = await r.json();
    return d.session.csat_score === 4;
  }, id);
  await row.locator('a').first().click();
  await staff.waitForSelector('#s-customer dd:text("4 / 5 — Quick answer, <b>thanks</b>")');
  // The rating filter finds it.
  await staff.goto(`${base}/#/sessions?csat=4`);
  await staff.waitForSelector(`#sessions-body tr[data-id="${id}"]`);
});

test('the AI-health card counts replies live, and an admin sets an alert limit', async () => {
  const staff = await newPage();
  await signIn(staff, 'admin', ADMIN_PASSWORD);
  const replies = staff.locator('#ai-health [data-figure="replies"] dd');
  await replies.waitFor();
  const before = Number(await replies.textContent());
  const [, chat] = await openWidget();
  await say(chat, 'How healthy is the AI today?');
  await waitForReply(chat, 1);
  // Pushed over the socket: no reload.
  await staff.waitForFunction((n) => Number(document.querySelector('#ai-health [data-figure="replies"] dd').textContent) > n, before);
  assert.notEqual(await staff.locator('#ai-health [data-figure="latency_p95_ms"] dd').textContent(), '—');
  await staff.goto(`${base}/#/settings`);
  await staff.fill('#ai-alert-timeouts', '3');
  await staff.fill('#ai-alerts-minutes', '10');
  await staff.click('#ai-alerts-form button[type=submit]');
  await staff.waitForSelector('#toasts .toast-body:text("Alerts saved")');
  const admin = await apiLogin('admin', ADMIN_PASSWORD);
  assert.deepEqual((await apiCall(admin, 'GET', '/api/ai-health/alerts')).body.alerts, [{ metric: 'timeouts', max: 3, minutes: 10 }]);
  await staff.reload();
  await staff.waitForFunction(() => document.querySelector('#ai-alert-timeouts') && document.querySelector('#ai-alert-timeouts').value === '3');
});

test('a replay started from the sessions list shows each turn side by side, and its JSON exports', async () => {
  const [, chat] = await openWidget();
  await say(chat, 'Please replay this conversation');
  await waitForReply(chat, 1);
  const staff = await newPage();
  await signIn(staff, 'admin', ADMIN_PASSWORD);
  const row = await findSessionRow(staff, 'Please replay this conversation');
  const id = await row.getAttribute('data-id');
  await row.locator('input[type=checkbox]').check();
  await staff.waitForSelector('#bulk-count:text("1 selected")');
  await staff.click('#bulk-replay');
  // The replay opens (or a toast says why not).
  await staff.waitForSelector('#view-replays:not(.d-none) #replay-detail:not([hidden]), #toasts .text-bg-danger, #toasts .text-bg-warning');
  assert.deepEqual(await staff.locator('#toasts .text-bg-danger, #toasts .text-bg-warning').allTextContents(), [], 'no error');
  await staff.waitForSelector('#replay-title:text("done")');
  const turn = staff.locator(`#replay-sessions [data-session="${id}"] .replay-turn`).first();
  // The demo agent answers as it did: the same, side by side.
  assert.equal(await turn.getAttribute('data-same'), 'true');
  assert.match(await turn.textContent(), /Please replay this conversation/);
  assert.equal(await turn.locator('.original').textContent(), await turn.locator('.replayed').textContent());
  assert.equal(await staff.locator(`#replays-body tr[data-replay]`).count() >= 1, true);
  const [download] = await Promise.all([staff.waitForEvent('download'), staff.click('#replay-export')]);
  const exported = JSON.parse(readFileSync(await download.path(), 'utf8'));
  assert.equal(exported.sessions[0].session_id, id);
  assert.equal(exported.summary.changed, 0);
});

test('a staff member video-calls the visitor: both connect, video plays both ways, and the call is recorded', async () => {
  const [, chat] = await openWidget();
  await say(chat, 'Can we talk on video?');
  await waitForReply(chat, 1);
  const staff = await newPage();
  await signIn(staff, 'admin', ADMIN_PASSWORD);
  const row = await findSessionRow(staff, 'talk on video');
  const id = await row.getAttribute('data-id');
  await row.locator('a').first().click();
  await staff.waitForSelector('#transcript li.visitor');
  await staff.click('#s-call');
  await chat.waitForSelector('#call-ring:not([hidden]) #call-from:text("would like a video call")');
  assert.match(await chat.locator('#call-from').textContent(), /^admin from .+ would like a video call$/);
  await chat.click('#call-accept');
  await staff.waitForSelector('#call-panel[data-state="connected"]');
  await chat.waitForSelector('#call[data-state="connected"]');
  const playing = () => { const v = document.getElementById('call-remote'); return v.readyState >= 2 && v.videoWidth > 0; };
  await staff.waitForFunction(playing);
  await chat.waitForFunction(playing);
  await staff.waitForTimeout(1200);
  await staff.click('#call-mute');
  await staff.click('#call-hangup');
  await chat.waitForSelector('#call-note:text("The video call ended.")');
  await staff.waitForSelector('#transcript li.system:text("Video call, ")');
  // Muting before hanging up is recorded with the call.
  const admin = await apiLogin('admin', ADMIN_PASSWORD);
  let calls = [];
  for (let i = 0; i < 50 && !calls.length; i++) {
    calls = (await apiCall(admin, 'GET', `/api/sessions/${id}`)).body.calls;
    if (!calls.length) await staff.waitForTimeout(100);
  }
  assert.equal(calls[0].status, 'ended');
  assert.ok(calls[0].duration_secs >= 1, JSON.stringify(calls[0]));
  assert.ok(calls[0].quality && calls[0].quality.frames_decoded > 0, JSON.stringify(calls[0].quality));
  assert.equal(calls[0].participants.find((p) => p.role === 'staff').muted, true);
  await staff.reload();
  await staff.waitForSelector('#s-calls li[data-call="ended"]');
});

test('an admin adds a canned response; /shortcut inserts it expanded; a private note stays with staff', async () => {
  const admin = await newPage();
  await signIn(admin, 'admin', ADMIN_PASSWORD);
  await admin.goto(`${base}/#/settings`);
  await admin.fill('#c-shortcut', 'hours');
  await admin.fill('#c-title', 'Opening hours');
  await admin.fill('#c-text', 'Hi {{customer.name}}, we open at 9. Book here: {{booking_url}} ({{agent.name}})');
  await admin.click('#canned-form button[type=submit]');
  await admin.waitForSelector('#canned-body tr[data-shortcut=hours]');

  const [, chat] = await openWidget();
  await say(chat, 'When are you open?');
  await waitForReply(chat, 1);
  const row = await findSessionRow(admin, 'When are you open?');
  await row.locator('a').click();
  await admin.waitForSelector('#transcript li.visitor');
  // "/ho" offers it; the arrow keys and Enter insert it, expanded.
  await admin.fill('#s-reply-text', '');
  await admin.type('#s-reply-text', '/ho');
  await admin.waitForSelector('#canned-menu.show [data-shortcut=hours]');
  await admin.press('#s-reply-text', 'ArrowDown');
  await admin.press('#s-reply-text', 'Enter');
  const inserted = await admin.inputValue('#s-reply-text');
  assert.match(inserted, /^Hi .*, we open at 9\. Book here: https:\/\/cal\.example\.com\/book \(admin\)$/);
  assert.ok(!inserted.includes('{{'), 'every variable expanded');
  assert.equal(await admin.locator('#canned-menu.show').count(), 0, 'the menu closed');
  await admin.press('#s-reply-text', 'Enter');
  await chat.waitForSelector('.msg.agent:text("we open at 9")');

  // A private note: in the transcript, in its own style, and nowhere else.
  await admin.fill('#s-note-text', 'Called her back, wants Tuesday <b>only</b>');
  await admin.click('#s-note button[type=submit]');
  await admin.waitForSelector('#transcript li.note:text("wants Tuesday")');
  assert.equal(await admin.locator('#transcript li.note b').count(), 0, 'rendered as text');
  await admin.waitForTimeout(500);
  assert.equal(await chat.locator('.log:text("wants Tuesday")').count(), 0, 'the visitor never sees it');
  await admin.reload();
  await admin.waitForSelector('#transcript li.note:text("wants Tuesday")');
});

test('the widget survives a server restart mid-chat without losing or duplicating messages', async () => {
  const [, chat] = await openWidget();
  await say(chat, 'Before the restart');
  await waitForReply(chat, 1);
  await stopServer('SIGKILL');
  await chat.waitForSelector('#state:text("Reconnecting")');
  await say(chat, 'Sent while the server was down');
  await startServer();
  await chat.waitForSelector('#state:text("Online")', { timeout: 30000 });
  await chat.waitForSelector('.msg.visitor[data-state=delivered]:text("Sent while the server was down")', { timeout: 15000 });
  await waitForReply(chat, 2);
  const texts = await chat.locator('.msg.visitor').allTextContents();
  assert.equal(texts.filter((t) => t.includes('Sent while the server was down')).length, 1, 'shown once');
  assert.equal(texts.filter((t) => t.includes('Before the restart')).length, 1);
  // Stored once too.
  const admin = await apiLogin('admin', ADMIN_PASSWORD);
  const list = await apiCall(admin, 'GET', '/api/sessions?q=' + encodeURIComponent('Sent while the server was down'));
  assert.equal(list.body.total, 1);
  const detail = await apiCall(admin, 'GET', `/api/sessions/${list.body.sessions[0].id}`);
  assert.equal(detail.body.messages.filter((m) => m.text === 'Sent while the server was down').length, 1);
  // A reload resumes the same conversation.
  await chat.page().reload();
  const again = await waitForFrame(chat.page());
  await again.waitForSelector('.msg.visitor:text("Before the restart")', { state: 'attached' });
});

test('the widget opens from the keyboard with focus in the message box, and Escape gives focus back to the bubble', async () => {
  const page = await newPage();
  await page.goto(base + '/demo');
  const frame = await waitForFrame(page);
  await frame.waitForSelector('#state:text("Online")', { state: 'attached' });
  for (let i = 0; i < 15 && await page.evaluate(() => document.activeElement.tagName) !== 'CHATHUB-WIDGET'; i++) await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.tagName), 'CHATHUB-WIDGET', 'the bubble is reachable by Tab');
  await page.keyboard.press('Enter');
  await frame.waitForSelector('#text:visible');
  await frame.waitForFunction(() => document.hasFocus() && document.activeElement.id === 'text');
  await page.keyboard.type('typed without a click');
  assert.equal(await frame.inputValue('#text'), 'typed without a click');
  // The transcript scrolls by keyboard too.
  assert.equal(await frame.getAttribute('#log', 'tabindex'), '0');
  await page.keyboard.press('Escape');
  await frame.waitForSelector('#text', { state: 'hidden' });
  await page.waitForFunction(() => document.activeElement.tagName === 'CHATHUB-WIDGET' && document.hasFocus());
});

test('the widget reopens as the visitor left it, keeps its ticks after a reload, and Escape closes it', async () => {
  const [page, chat] = await openWidget();
  await say(chat, 'Remember me');
  await waitForReply(chat, 1);
  await chat.waitForSelector('.msg.visitor[data-state=delivered]');
  await page.reload();
  const again = await waitForFrame(page);
  // Open again without a click, with the earlier message still ticked.
  await again.waitForSelector('#text:visible');
  await again.waitForSelector('.msg.visitor[data-state=delivered]:text("Remember me")');
  await again.press('#text', 'Escape');
  await again.waitForSelector('#text', { state: 'hidden' });
  await page.reload();
  const closed = await waitForFrame(page);
  await closed.waitForSelector('#state:text("Online")', { state: 'attached' });
  await page.waitForTimeout(300);
  assert.equal(await closed.locator('#text').isVisible(), false, 'closed, as she left it');
});

test('roles: a QA user sees no admin screens and the API refuses them anyway', async () => {
  const qa = await newPage();
  await signIn(qa, 'quinn', 'quinn-password');
  assert.equal(await qa.locator('a[data-nav=users]').isVisible(), false);
  await qa.goto(`${base}/#/users`);
  await qa.waitForSelector('#view-sessions:not(.d-none)');
  assert.equal(await qa.locator('#view-users').isVisible(), false);
  assert.equal(await qa.locator('[data-bulk=delete]').isVisible(), false);
  const status = await qa.evaluate(async () => (await fetch('/api/users')).status);
  assert.equal(status, 403);
});

test('dark mode toggles and is remembered; admins manage users and keys; the phone layout works', async () => {
  const page = await newPage();
  await signIn(page, 'admin', ADMIN_PASSWORD);
  const before = await page.getAttribute('html', 'data-bs-theme');
  await page.click('#theme-toggle');
  const after = await page.getAttribute('html', 'data-bs-theme');
  assert.notEqual(before, after);
  await page.reload();
  await page.waitForSelector('#view-sessions:not(.d-none)');
  assert.equal(await page.getAttribute('html', 'data-bs-theme'), after);
  await page.screenshot({ path: `${ARTIFACTS}/dashboard-${after}.png` });

  await page.goto(`${base}/#/users`);
  await page.waitForSelector('#users-body tr');
  await page.fill('#k-name', 'n8n');
  await page.click('#key-form button[type=submit]');
  await page.waitForSelector('#new-key-value');
  assert.match(await page.locator('#new-key-value').textContent(), /^chk_/);
  // The key can be copied in one click.
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  await page.click('#new-key button:text("Copy key")');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), await page.locator('#new-key-value').textContent());

  // Users get an optional email, and can be deleted; what they did stays readable.
  const admin = await apiLogin('admin', ADMIN_PASSWORD);
  assert.equal((await apiCall(admin, 'POST', '/api/users', { username: 'temp', password: 'temp-password', role: 'qa', email: 'temp@example.com' })).status, 201);
  const temp = await apiLogin('temp', 'temp-password');
  assert.equal((await apiCall(temp, 'PUT', `/api/sessions/${sessionId}/qa`, { qa_status: 'passed', qa_notes: 'checked by temp' })).status, 200);
  await page.reload();
  await page.waitForSelector('#users-body tr[data-user=temp]');
  assert.equal(await page.inputValue('#users-body tr[data-user=temp] input[type=email]'), 'temp@example.com');
  await page.click('#users-body tr[data-user=temp] button:text("Delete")');
  await page.waitForSelector('#confirm.show');
  await page.click('#confirm-ok');
  await page.waitForSelector('#users-body tr[data-user=temp]', { state: 'detached' });
  const detail = await apiCall(admin, 'GET', `/api/sessions/${sessionId}`);
  assert.ok(detail.body.qa_history.some((h) => h.by === 'temp' && h.notes === 'checked by temp'), 'the QA history keeps their name');
  assert.equal(await page.locator('#users-body tr[data-user=admin] button:text("Delete")').isVisible(), false, 'not yourself');
  await page.reload(); // a fresh page for the keyboard check below
  await page.waitForSelector('#users-body tr');

  // Keyboard: from the top of the page, Tab reaches the skip link, then the navigation.
  await page.evaluate(() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); });
  for (let i = 0; i < 3 && await page.evaluate(() => document.activeElement === document.body); i++) await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent.trim()), 'Skip to content');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.classList.contains('navbar-brand')), true);

  // The dashboard at phone width: no sideways scrolling, sessions open at their top,
  // and the opened menu is not covered by Test AI.
  const small = await newPage({ width: 390, height: 780 });
  await signIn(small, 'agnes', 'agnes-password');
  await small.waitForSelector('#sessions-body tr[data-id]');
  assert.ok(await small.evaluate(() => document.documentElement.scrollWidth <= innerWidth), 'no sideways scroll on the list');
  await small.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  await small.locator('#sessions-body tr[data-id] a').last().click();
  await small.waitForSelector('#view-session:not(.d-none)');
  await small.waitForSelector('#transcript li');
  assert.equal(await small.evaluate(() => window.scrollY), 0, 'the session opens at its top');
  assert.ok(await small.evaluate(() => document.documentElement.scrollWidth <= innerWidth), 'no sideways scroll on a session');
  await small.click('.navbar-toggler');
  await small.waitForSelector('#nav.show');
  await small.click('#test-ai-open');
  await small.click('.navbar-toggler');
  await small.waitForSelector('#nav.collapse:not(.show)', { state: 'attached' }); // closed, not still closing
  await small.click('.navbar-toggler');
  await small.waitForSelector('#nav.show');
  assert.equal(await small.locator('#test-ai').isVisible(), false, 'Test AI closed when the menu opened');
  await small.screenshot({ path: `${ARTIFACTS}/dashboard-phone.png` });

  // A phone-sized visitor.
  const [phone, chat] = await openWidget({ width: 390, height: 780 });
  await say(chat, 'Hi from a phone');
  await waitForReply(chat, 1);
  await phone.screenshot({ path: `${ARTIFACTS}/widget-phone.png` });
});

test('Test AI opens a draggable chat whose session is channel test', async () => {
  const page = await newPage();
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await page.click('#test-ai-open');
  const frame = await waitForFrame(page);
  await frame.waitForSelector('#state:text("Online")');
  // Near the limit a counter shows; a paste past it says it was cut.
  await frame.fill('#text', 'x'.repeat(3700));
  assert.equal(await frame.locator('#count').textContent(), '3700 / 4000');
  await frame.fill('#text', 'x'.repeat(3990));
  await frame.evaluate(() => {
    const data = new DataTransfer(); data.setData('text/plain', 'y'.repeat(50));
    document.getElementById('text').dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true }));
  });
  await frame.waitForSelector('#count.cut:text("cut to fit")');
  await frame.fill('#text', '');
  await say(frame, 'Testing the agent');
  await waitForReply(frame, 1);
  const head = await page.locator('#test-ai-head').boundingBox();
  await page.mouse.move(head.x + 40, head.y + 10);
  await page.mouse.down();
  await page.mouse.move(head.x - 300, head.y - 100, { steps: 5 });
  await page.mouse.up();
  const moved = await page.locator('#test-ai-head').boundingBox();
  assert.ok(moved.x < head.x - 200, 'dragged');
  // Test AI chats stay out of the list unless asked for.
  const hidden = await page.evaluate(async (q) => (await fetch('/api/sessions?q=' + encodeURIComponent(q))).json(), 'Testing the agent');
  assert.equal(hidden.total, 0, 'not among the customers\' sessions');
  const row = await findSessionRow(page, 'Testing the agent', '&channel=test');
  const channel = await row.locator('td').nth(2).textContent();
  assert.equal(channel.trim(), 'test');

  // One close button (the window's), the dashboard's theme, and a new conversation on demand.
  assert.equal(await frame.locator('#close').isVisible(), false, 'the frame has no close button of its own');
  assert.equal(await page.locator('#test-ai-close').isVisible(), true);
  const theme = await page.getAttribute('html', 'data-bs-theme');
  assert.equal(await frame.getAttribute('html', 'data-theme'), theme);
  await page.click('#theme-toggle');
  const other = theme === 'dark' ? 'light' : 'dark';
  await frame.waitForSelector(`html[data-theme=${other}]`, { state: 'attached' });
  const firstSession = await page.evaluate(() => JSON.parse(localStorage.getItem('chathub:default:test')).token);
  await page.click('#test-ai-new');
  const fresh = await waitForFrame(page);
  await fresh.waitForSelector('#state:text("Online")');
  assert.equal(await fresh.locator('.msg.visitor').count(), 0, 'a new conversation starts empty');
  await say(fresh, 'A second test');
  await waitForReply(fresh, 1);
  const secondSession = await page.evaluate(() => JSON.parse(localStorage.getItem('chathub:default:test')).token);
  assert.notEqual(secondSession, firstSession);
  await page.click('#theme-toggle');
});

test('settings show each site\'s embed snippet to copy and a colour picker', async () => {
  const page = await newPage();
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await page.goto(`${base}/#/settings`);
  const site = page.locator('#sites-body tr', { hasText: 'default' }).first();
  await site.waitFor();
  assert.equal(await site.locator('.embed-snippet').textContent(), `<script src="${base}/widget.js" data-site="default" async></script>`);
  assert.equal(await site.locator('input[type=color]').count(), 1);
  await site.locator('input[type=color]').fill('#117733');
  const admin = await apiLogin('admin', ADMIN_PASSWORD);
  for (let i = 0; i < 20 && (await apiCall(admin, 'GET', '/api/sites/default/public')).body.color !== '#117733'; i++) await page.waitForTimeout(100);
  assert.equal((await apiCall(admin, 'GET', '/api/sites/default/public')).body.color, '#117733');
  await apiCall(admin, 'PUT', '/api/sites/default', { color: '#0d6efd' });
});

test('an admin adds a completion rule and tests a message against it', async () => {
  const page = await newPage();
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await page.goto(`${base}/#/settings`);
  await page.waitForSelector('#rules-body tr[data-rule=booking_link]');
  await page.fill('#r-name', 'order_confirmed');
  await page.selectOption('#r-kind', 'regex');
  await page.fill('#r-pattern', 'order #\\d{5}');
  await page.click('#rule-form button[type=submit]');
  await page.waitForSelector('#rules-body tr[data-rule=order_confirmed]');
  await page.fill('#r-test-text', 'Your order #12345 is on its way');
  await page.click('#rule-test button[type=submit]');
  await page.waitForSelector('#r-test-result:text("order_confirmed")');
  await page.fill('#r-test-text', 'See you within 24 hours');
  await page.click('#rule-test button[type=submit]');
  await page.waitForSelector('#r-test-result:text("callback_24h")');
  await page.screenshot({ path: `${ARTIFACTS}/dashboard-settings.png` });
});

test("the site's settings drive the widget: colour, position, greeting and a validated pre-chat form", async () => {
  const admin = await apiLogin('admin', ADMIN_PASSWORD);
  const changed = await apiCall(admin, 'PUT', '/api/sites/default',
    { color: '#aa3300', position: 'left', greeting: 'Welcome to Brightsmile!', prechat_form: true });
  assert.equal(changed.status, 200);
  try {
    const page = await newPage();
    await page.goto(base + '/demo');
    const frame = await waitForFrame(page);
    // The site's settings have reached the frame (its colour) before the
    // bubble is looked for bottom-left: the frame tells the page where to put it.
    await frame.waitForFunction(() => getComputedStyle(document.querySelector('.head')).backgroundColor === 'rgb(170, 51, 0)');
    for (let i = 0; i < 20 && !(await frame.locator('#prechat').isVisible()); i++) {
      await page.mouse.click(48, page.viewportSize().height - 48);
      await page.waitForTimeout(300);
    }
    await frame.waitForSelector('#prechat:visible');
    assert.equal(await frame.evaluate(() => getComputedStyle(document.querySelector('.head')).backgroundColor), 'rgb(170, 51, 0)');
    assert.equal(await frame.locator('.msg.greeting').textContent(), 'Welcome to Brightsmile!');
    assert.equal(await frame.locator('#compose').isHidden(), true, 'no chatting before the form');
    await frame.fill('#pc-name', 'Grace Hopper');
    await frame.fill('#pc-email', 'not-an-email');
    await frame.click('#prechat button[type=submit]');
    await frame.waitForSelector('#pc-error:visible');
    await frame.fill('#pc-email', 'grace@example.com');
    await frame.click('#prechat button[type=submit]');
    await frame.waitForSelector('#text:visible');
    await say(frame, 'Hi, I filled in the form');
    await waitForReply(frame, 1);
    // The agent has the form's name and email: its first reply is the booking link.
    const first = await frame.locator('.msg.ai').last().textContent();
    assert.match(first, /Grace Hopper/);
    assert.match(first, /within 24 hours/);
    assert.equal(await frame.locator('.msg.ai').last().locator('a').count(), 1);
    await page.screenshot({ path: `${ARTIFACTS}/widget-prechat.png` });
    const list = await apiCall(admin, 'GET', '/api/sessions?q=' + encodeURIComponent('grace@example.com'));
    assert.equal(list.body.total, 1);
    assert.equal(list.body.sessions[0].customer.name, 'Grace Hopper');
  } finally {
    await apiCall(admin, 'PUT', '/api/sites/default', { color: '#0d6efd', position: 'right', greeting: 'Hi! How can we help you today?', prechat_form: false });
  }
});

test('bulk archive from the sessions table, with a confirmation, removes the rows, back-fills the page and keeps the count true', async () => {
  // More than a page of sessions (relayed, as a bot would).
  const admin = await apiLogin('admin', ADMIN_PASSWORD);
  for (let i = 0; i < 30; i++) {
    const r = await apiCall(admin, 'POST', '/api/sessions', { session_id: `bulk-${i}`, channel: 'web', customer: { name: `Bulk ${i}` },
                                                              messages: [{ id: `bulk-${i}-1`, role: 'visitor', text: `bulk message ${i}` }] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  const page = await newPage();
  await signIn(page, 'admin', ADMIN_PASSWORD);
  await page.waitForFunction(() => document.querySelectorAll('#sessions-body tr[data-id]').length === 25);
  const total = Number((await page.locator('#page-info').textContent()).match(/of (\d+)/)[1]);
  assert.ok(total > 27, `${total}`);
  const boxes = page.locator('#sessions-body tr[data-id] input[type=checkbox]');
  await boxes.nth(0).check();
  await boxes.nth(1).check();
  await page.waitForSelector('#bulk-count:text("2 selected")');
  await page.click('[data-bulk=archive]');
  await page.waitForSelector('#confirm.show');
  await page.click('#confirm-ok');
  // The toast does not cover the paging.
  const toastBox = await page.locator('#toasts .toast').first().boundingBox();
  const nextBox = await page.locator('#page-next').boundingBox();
  const overlaps = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
  assert.ok(!overlaps(toastBox, nextBox), 'the toast is clear of Next');
  // Back-filled from the next page, with the count following.
  await page.waitForSelector(`#page-info:text("1–25 of ${total - 2}")`);
  assert.equal(await page.locator('#sessions-body tr[data-id]').count(), 25);
  await page.selectOption('#f-status', 'archived');
  await page.click('#filters button[type=submit]');
  await page.waitForFunction(() => location.hash.includes('status=archived'));
  await page.waitForFunction(() => document.querySelectorAll('#sessions-body tr[data-id]').length >= 2);
});

test('a search shows the matching message marked, and its rows stay live', async () => {
  const [, chat] = await openWidget();
  await say(chat, 'Do you offer teeth whitening for sensitive teeth?');
  await waitForReply(chat, 1);
  await say(chat, 'Grace Hopper');
  await waitForReply(chat, 2);
  const staff = await newPage();
  // The unfiltered first page answers late, after the search has started:
  // its late answer must not replace the search results.
  const unfiltered = (url) => url.pathname === '/api/sessions' && !url.searchParams.get('q');
  const slow = async (route) => { await new Promise((r) => setTimeout(r, 1500)); await route.continue(); };
  await staff.route(unfiltered, slow);
  await signIn(staff, 'admin', ADMIN_PASSWORD);
  const row = await findSessionRow(staff, 'whitening');
  await staff.waitForTimeout(1800);
  await staff.unroute(unfiltered, slow);
  // Not the last message (the name), but the one that matched, with the word marked.
  assert.equal(await row.locator('.preview mark').first().textContent(), 'whitening');
  assert.match(await row.locator('.preview').textContent(), /teeth whitening for sensitive/);
  const count = Number(await row.locator('td').nth(7).textContent());
  await say(chat, 'grace@example.com');
  await staff.waitForFunction(([id, n]) => {
    const tr = document.querySelector(`#sessions-body tr[data-id="${id}"]`);
    return tr && Number(tr.querySelectorAll('td')[7].textContent) > n;
  }, [await row.getAttribute('data-id'), count]);
  assert.equal(await staff.locator('#sessions-body tr[data-id] .preview mark').first().textContent(), 'whitening', 'still marked after the live update');
});

test('deliveries show their session and payload, page, and a skipped one says why it cannot be retried', async () => {
  const page = await newPage();
  await signIn(page, 'devi', 'devi-password');
  await page.goto(`${base}/#/deliveries`);
  await page.selectOption('#d-status', 'skipped');
  const row = page.locator('#deliveries-body tr[data-delivery]', { hasText: 'lead.completed' }).first();
  await row.waitFor();
  assert.equal(await row.locator('a[href^="#/sessions/"]').count(), 1, 'links to its session');
  await row.locator('summary').click();
  assert.match(await row.locator('pre.payload').textContent(), /"rule": "booking_link"/);
  await row.locator('button:text("Retry")').click();
  await page.waitForSelector('#toasts .toast:has-text("N8N_WEBHOOK_URL is not set")');
  assert.match(await page.locator('#deliveries-pager .page-info').textContent(), /^1–\d+ of \d+$/);
});

test('axe finds no serious or critical accessibility violations on any screen, light or dark', async () => {
  const login = await newPage();
  await login.goto(base + '/');
  await login.waitForSelector('#login-form');
  await assertAccessible(login, 'sign-in');
  const page = await newPage();
  await signIn(page, 'admin', ADMIN_PASSWORD);
  for (const theme of ['light', 'dark']) {
    if (await page.getAttribute('html', 'data-bs-theme') !== theme) await page.click('#theme-toggle');
    for (const [hash, ready] of [['#/sessions', '#sessions-body tr[data-id]'], [`#/sessions/${sessionId}`, '#transcript li'],
      ['#/escalations', '#escalations-body tr'], ['#/errors', '#errors-body tr'], ['#/deliveries', '#deliveries-body tr'],
      ['#/email-templates', '#templates-body tr'], ['#/users', '#users-body tr'], ['#/settings', '#sites-body tr'],
      ['#/replays', '#view-replays:not(.d-none)']]) {
      await page.evaluate((h) => { location.hash = h; }, hash);
      await page.waitForSelector(ready);
      await assertAccessible(page, `${hash} (${theme})`);
    }
    await page.click('#test-ai-open');
    const frame = await waitForFrame(page);
    await frame.waitForSelector('#state:text("Online")');
    await assertAccessible(frame, `Test AI (${theme})`);
    await page.click('#test-ai-close');
  }
  await page.click('#theme-toggle');
  const [demo, chat] = await openWidget();
  await assertAccessible(demo, 'demo page');
  await say(chat, 'Checking accessibility');
  await waitForReply(chat, 1);
  await assertAccessible(chat, 'widget');
});

test('no page broke its Content-Security-Policy or failed to load a module', () => {
  assert.deepEqual(brokenPage, []);
});
