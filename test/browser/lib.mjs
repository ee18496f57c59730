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
