// Shared helpers: launch Debian's Chromium headless (never a downloaded
// browser) in a fresh profile and log in through the UI's form.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) {
      const k = argv[i].slice(2);
      const v = argv[i + 1] !== undefined && !argv[i + 1].startsWith('--') ? argv[++i] : 'true';
      out[k] = v;
    }
  }
  for (const k of ['url', 'user', 'password', 'camera']) {
    if (!out[k]) result({ ok: false, error: `missing --${k}` });
  }
  out.url = out.url.replace(/\/+$/, '');
  return out;
}

// watchdog ends the process if anything hangs past the script's own timeout.
export function watchdog(ms) {
  setTimeout(() => result({ ok: false, error: `watchdog: no result within ${ms} ms` }), ms).unref();
}

export async function launch() {
  const dir = mkdtempSync(join(tmpdir(), 'ronda-chromium-'));
  let ctx;
  try {
    ctx = await chromium.launchPersistentContext(dir, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      ignoreHTTPSErrors: true, // the API is HTTPS with the city's private CA
      viewport: { width: 1280, height: 800 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required'],
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return { ctx, close: async () => { await ctx.close(); rmSync(dir, { recursive: true, force: true }); } };
}

// login fills the login form and waits until the app shows its menu, or
// fails with the message the app showed.
export async function login(page, url, user, password) {
  await page.goto(url + '/#/login');
  await page.fill('#login-user', user);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
  const outcome = await page.waitForFunction(() => {
    if (!document.getElementById('nav').hidden) return 'ok';
    const s = document.getElementById('status');
    return s.className === 'error' && s.textContent ? s.textContent : false;
  }, null, { timeout: 15000 });
  const v = await outcome.jsonValue();
  if (v !== 'ok') throw new Error('login failed: ' + v);
}

export function result(obj) {
  console.log(JSON.stringify(obj));
  process.exit(obj.ok ? 0 : 1);
}

// axe runs axe-core (the accessibility engine, from npm) on the page as it
// is and returns the serious and critical WCAG 2 A/AA violations: what is
// wrong, and where.
let axeSource = null;
export async function axe(page) {
  if (!axeSource) {
    const { readFileSync } = await import('node:fs');
    const { createRequire } = await import('node:module');
    axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  }
  // evaluate is not an inline <script>: the app's CSP (script-src 'self') stays on.
  if (!(await page.evaluate('typeof axe !== "undefined"'))) await page.evaluate(axeSource);
  const res = await page.evaluate(async () => {
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }, resultTypes: ['violations'] });
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ') + ': ' + (n.failureSummary || '').split('\n').slice(1, 2).join('')) }));
  });
  return res;
}

// logout ends the session through the menu and waits for the login form.
export async function logout(page) {
  await page.click('#logout');
  await page.waitForFunction(() => !document.getElementById('view-login').hidden, null, { timeout: 10000 });
}

// frames counts decoded frames of a <video> for ms milliseconds.
export async function frames(page, selector, ms) {
  return page.evaluate(([sel, ms]) => new Promise((resolve) => {
    const v = document.querySelector(sel);
    let n = 0;
    const tick = () => { n++; v.requestVideoFrameCallback(tick); };
    v.requestVideoFrameCallback(tick);
    setTimeout(() => resolve(n), ms);
  }), [selector, ms]);
}
