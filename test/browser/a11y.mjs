// node a11y.mjs --url HUB-URL --user ADMIN --password P --camera CAM --users JSON
//   [--node-url NODE-URL] [--shots DIR]
// Role-aware menus and accessibility, in Chromium:
// - for each demo user (JSON: [{user, password, role, at: "hub"|"node"}]),
//   the menu entries shown after login (a role sees no menu it would get
//   403 for);
// - axe-core's WCAG 2.1 A/AA rules (serious and critical) on every view,
//   in Indonesian and in English;
// - the keyboard: the skip link comes first and moves focus to the
//   content; every menu entry is reachable with Tab.
import { axe, launch, login, logout, parseArgs, result, watchdog } from './lib.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const a = parseArgs(process.argv.slice(2));
const timeout = Number(a.timeout || 30000);
watchdog(timeout * 12);
if (a.shots) mkdirSync(a.shots, { recursive: true });
const users = JSON.parse(a.users || '[]');

const navShown = (page) => page.$$eval('#nav a', (as) => as.filter((x) => !x.hidden).map((x) => x.id.replace('nav-', '')));

let b;
try {
  b = await launch();
  const page = await b.ctx.newPage();
  page.on('dialog', (d) => d.dismiss());
  const out = { ok: true, views: {}, menus: {} };

  // The login page, and the keyboard from the top of the page.
  await page.goto(a.url + '/#/login');
  await page.waitForSelector('#login-form');
  out.views.login = await axe(page);
  await page.keyboard.press('Tab');
  out.first_tab = await page.evaluate(() => document.activeElement.className + ':' + document.activeElement.textContent);
  await page.keyboard.press('Enter');
  out.after_skip = await page.evaluate(() => document.activeElement.id);

  await login(page, a.url, a.user, a.password);
  // Tab through the header: every menu entry is reachable.
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
  const reached = new Set();
  for (let i = 0; i < 24; i++) {
    await page.keyboard.press('Tab');
    reached.add(await page.evaluate(() => document.activeElement.id || document.activeElement.tagName));
  }
  out.tab_reached = [...reached];

  const settle = (fn, arg) => page.waitForFunction(fn, arg, { timeout });
  const views = [
    ['overview', () => settle(() => document.querySelectorAll('#ov-groups details').length > 0)],
    ['wall', () => settle(() => document.querySelectorAll('#wall-grid .tile').length > 0 && document.querySelectorAll('#wall-cameras li').length > 0)],
    ['search', () => settle(() => srch.areas && srch.areas.length > 0)],
    ['nodes', () => settle(() => document.querySelectorAll('#nodes-table tbody tr').length > 0)],
    ['cameras', () => settle(() => document.querySelectorAll('#cameras-table tbody tr').length > 0)],
    ['camera/' + encodeURIComponent(a.camera), () => settle(() => document.querySelectorAll('#timeline .span').length > 0 && document.getElementById('camera-state').textContent !== '')],
    ['evidence', () => settle(() => ev.exports !== null)],
    ['cases', () => settle(() => cs.cases !== null)],
    ['audit', () => settle(() => document.getElementById('au-verify').dataset.ok !== undefined)],
    ['admin', () => settle(() => document.querySelectorAll('#ad-members tbody tr').length > 0 && document.querySelectorAll('#ad-users tbody tr').length > 0)],
  ];
  for (const [route, ready] of views) {
    await page.goto(a.url + '/#/' + route);
    await ready();
    const name = route.split('/')[0];
    out.views[name] = await axe(page);
  }
  // English: the same rules on the overview and the admin view.
  await page.click('#lang-toggle');
  out.views['admin-en'] = await axe(page);
  await page.goto(a.url + '/#/overview');
  await views[0][1]();
  out.views['overview-en'] = await axe(page);
  out.html_lang = await page.evaluate(() => document.documentElement.lang);
  await page.click('#lang-toggle');
  if (a.shots) await page.screenshot({ path: join(a.shots, 'ui-a11y-overview.png') });

  // Menus per role.
  out.menus[a.user] = await navShown(page);
  for (const u of users) {
    await logout(page);
    await login(page, u.at === 'node' ? a['node-url'] : a.url, u.user, u.password);
    await page.waitForFunction(() => ui.me && ui.me.can, null, { timeout });
    out.menus[u.user] = await navShown(page);
    if (u.role === 'viewer') {
      // The camera page without export or hold for a viewer.
      await page.goto((u.at === 'node' ? a['node-url'] : a.url) + '/#/cameras');
      await settle(() => document.querySelectorAll('#cameras-table tbody tr[data-camera]').length > 0);
      const cam = await page.$eval('#cameras-table tbody tr[data-camera]', (tr) => tr.dataset.camera);
      await page.goto((u.at === 'node' ? a['node-url'] : a.url) + '/#/camera/' + encodeURIComponent(cam));
      await settle(() => document.querySelectorAll('#timeline .span').length > 0);
      out.viewer_camera = await page.evaluate(() => ({
        export_shown: !document.getElementById('sel-export').hidden, hold_shown: !document.getElementById('sel-hold').hidden,
        live_shown: !document.getElementById('view-live').hidden, playback_shown: !document.getElementById('view-playback').hidden,
      }));
      out.views['camera-viewer'] = await axe(page);
      if (a.shots) await page.screenshot({ path: join(a.shots, 'ui-camera-viewer.png'), fullPage: true });
    }
  }
  await b.close();
  result(out);
} catch (err) {
  if (b) await b.close().catch(() => {});
  result({ ok: false, error: String(err && err.stack || err) });
}
