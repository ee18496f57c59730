// node search.mjs --url HUB-URL --user U --password P --camera - --kelurahan CODE [--shots DIR]
// The search view in Chromium: click the map at a kelurahan's office, a
// 1 km radius over the last minutes, search; the cameras found are listed
// with their distance, nearest first.
import { launch, login, parseArgs, result, watchdog } from './lib.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const a = parseArgs(process.argv.slice(2));
const timeout = Number(a.timeout || 30000);
watchdog(timeout * 3);
if (a.shots) mkdirSync(a.shots, { recursive: true });

let b;
try {
  b = await launch();
  const page = await b.ctx.newPage();
  await login(page, a.url, a.user, a.password);
  await page.goto(a.url + '/#/search');
  await page.waitForFunction(() => srch.project && srch.areas && srch.areas.length > 0, null, { timeout });
  // Where the kelurahan's office is on the map, in page pixels.
  const at = await page.evaluate((code) => {
    const k = srch.areas.find((x) => x.code === code);
    const c = document.getElementById('search-map');
    const r = c.getBoundingClientRect();
    return { x: r.left + srch.project.x(k.lon) * r.width / c.width, y: r.top + srch.project.y(k.lat) * r.height / c.height, lat: k.lat, lon: k.lon };
  }, a.kelurahan);
  await page.mouse.click(at.x, at.y);
  await page.fill('#search-radius', '1000');
  await page.click('#search-go');
  await page.waitForFunction(() => document.getElementById('search-summary').textContent !== '', null, { timeout });
  const rows = await page.$$eval('#search-table tbody tr', (trs) => trs.map((tr) => ({ camera: tr.dataset.camera, text: tr.textContent })));
  const picked = await page.textContent('#search-at');
  const summary = await page.textContent('#search-summary');
  if (a.shots) await page.screenshot({ path: join(a.shots, 'ui-search.png') });
  await b.close();
  result({ ok: true, office: at, picked, summary, rows });
} catch (err) {
  if (b) await b.close().catch(() => {});
  result({ ok: false, error: String(err && err.stack || err) });
}
