// node cases.mjs --url HUB-URL --user U --password P --camera - --case ID [--shots DIR]
// The case view in Chromium: the case lists its items with their holds
// and pulls (stored, with the members holding copies), and its evidence
// bundle downloads as a zip.
import { launch, login, parseArgs, result, watchdog } from './lib.mjs';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const a = parseArgs(process.argv.slice(2));
const timeout = Number(a.timeout || 30000);
watchdog(timeout * 4);
if (a.shots) mkdirSync(a.shots, { recursive: true });

let b;
try {
  b = await launch();
  const page = await b.ctx.newPage();
  await login(page, a.url, a.user, a.password);
  await page.goto(a.url + '/#/cases/' + encodeURIComponent(a.case));
  await page.waitForFunction(() => !document.getElementById('cs-detail').hidden && document.querySelectorAll('#cs-items tbody tr').length > 0, null, { timeout });
  const listed = await page.$$eval('#cs-table tbody tr[data-case]', (trs) => trs.map((tr) => ({ id: tr.dataset.case, text: tr.textContent })));
  const items = await page.$$eval('#cs-items tbody tr', (trs) => trs.map((tr) => ({
    camera: tr.dataset.camera, state: tr.querySelector('[data-testid=cs-pull-state]').dataset.state, text: tr.textContent,
  })));
  const title = await page.textContent('#cs-detail-title');
  if (a.shots) await page.screenshot({ path: join(a.shots, 'ui-case.png'), fullPage: true });
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout }), page.click('#cs-bundle-btn')]);
  const zip = readFileSync(await dl.path());
  await b.close();
  result({ ok: true, title, listed, items, download: { name: dl.suggestedFilename(), bytes: zip.length, magic: zip.subarray(0, 2).toString('latin1') } });
} catch (err) {
  if (b) await b.close().catch(() => {});
  result({ ok: false, error: String(err && err.stack || err) });
}
