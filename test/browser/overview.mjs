// node overview.mjs --url URL --user U --password P --camera ID --expect-nodes n1,n2,n3
//   [--viewer-user V --viewer-password VP --viewer-camera CAM] [--shots DIR]
// Logs in, waits for the city overview to list the expected nodes (each
// online, in its kota and kecamatan group) and to draw its map, switches
// the language to English and back, then logs in as an RT/RW viewer and
// checks the viewer sees only its camera. Saves a screenshot of each view.
import { launch, login, parseArgs, result, watchdog } from './lib.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const a = parseArgs(process.argv.slice(2));
const timeout = Number(a.timeout || 30000);
watchdog(timeout + 20000);
const shots = a.shots || '';
if (shots) mkdirSync(shots, { recursive: true });
const shot = async (page, name) => { if (shots) await page.screenshot({ path: join(shots, name), fullPage: true }); };

let b;
try {
  b = await launch();
  const page = await b.ctx.newPage();
  await login(page, a.url, a.user, a.password);
  await page.waitForFunction(() => location.hash === '#/overview' && document.body.dataset.overviewRenderMs, null, { timeout });
  const expect = (a['expect-nodes'] || '').split(',').filter(Boolean);
  const rows = await page.waitForFunction((expect) => {
    const out = [];
    for (const tr of document.querySelectorAll('[data-testid="ov-row"]')) {
      const badge = tr.querySelector('.badge');
      if (badge && badge.dataset.state !== 'nonode') out.push({ kel: tr.dataset.kelurahan, state: badge.dataset.state, text: tr.textContent });
    }
    return out.length >= expect.length ? out : false;
  }, expect, { timeout });
  const listed = await rows.jsonValue();
  const summary = await page.textContent('#ov-summary');
  const mapLabel = await page.getAttribute('#ov-map', 'aria-label');
  const renderMs = Number(await page.evaluate(() => document.body.dataset.overviewRenderMs));
  const allRows = Number(await page.evaluate(() => document.body.dataset.overviewRows));
  // Map pixels: something other than the background was drawn.
  const painted = await page.evaluate(() => {
    const c = document.getElementById('ov-map');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] !== 11 || d[i + 1] !== 15 || d[i + 2] !== 19) n++;
    return n;
  });
  await shot(page, 'ui-overview.png');
  const titleId = await page.textContent('#overview-title');
  await page.click('#lang-toggle');
  const titleEn = await page.textContent('#overview-title');
  const summaryEn = await page.textContent('#ov-summary');
  const htmlLang = await page.evaluate(() => document.documentElement.lang);
  await shot(page, 'ui-overview-en.png');
  await page.click('#lang-toggle');
  // The problems filter and the search box.
  await page.fill('#ov-filter', listed[0].kel);
  const filtered = await page.$$eval('[data-testid="ov-row"]', (trs) => trs.map((tr) => tr.dataset.kelurahan));
  await page.fill('#ov-filter', '');

  let viewer = null;
  if (a['viewer-user']) {
    await page.click('#logout');
    await login(page, a.url, a['viewer-user'], a['viewer-password']);
    await page.waitForFunction(() => document.body.dataset.overviewRenderMs, null, { timeout });
    const vrows = await page.$$eval('[data-testid="ov-row"]', (trs) => trs.map((tr) => tr.dataset.kelurahan));
    await shot(page, 'ui-overview-viewer.png');
    await page.goto(a.url + '/#/cameras');
    await page.waitForFunction(() => document.querySelectorAll('#cameras-table tbody tr').length > 0, null, { timeout });
    const cams = await page.$$eval('#cameras-table tbody tr', (trs) => trs.map((tr) => tr.dataset.camera || tr.textContent));
    await shot(page, 'ui-cameras-viewer.png');
    viewer = { rows: vrows, cameras: cams };
  }
  await b.close();
  result({ ok: true, listed, summary, map_label: mapLabel, painted, render_ms: renderMs, rows: allRows, title_id: titleId, title_en: titleEn,
    summary_en: summaryEn, html_lang: htmlLang, filtered, viewer });
} catch (err) {
  if (b) await b.close().catch(() => {});
  result({ ok: false, error: String(err && err.stack || err) });
}
