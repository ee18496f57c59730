// node ttff.mjs --url U --user U --password P --camera ID [--trials 20] [--no-gop-cache]
// Time to first frame, as an operator sees it: log in once, then per trial
// open the cameras page, wait a random 0-2.5 s (so the clicks fall on every
// phase of the camera's GOP), click "Live" and time until the first frame
// is presented (requestVideoFrameCallback), then leave (the UI ends the
// session). Prints {"ok":true,"ttff_ms":[...],"started_from":[...]}.
import { parseArgs, watchdog, launch, login, result } from './lib.mjs';

const a = parseArgs(process.argv.slice(2));
const trials = Number(a.trials || 20);
watchdog(60000 + trials * 15000);
let browser;
try {
  browser = await launch();
  const page = await browser.ctx.newPage();
  await login(page, a.url, a.user, a.password);
  await page.evaluate((nocache) => localStorage.setItem('ronda.gopCache', nocache ? '0' : '1'), a['no-gop-cache'] === 'true');
  const ttff = [];
  const from = [];
  for (let i = 0; i < trials; i++) {
    await page.goto(a.url + '/#/cameras');
    const button = page.locator(`#cameras-table tbody tr[data-camera=${JSON.stringify(a.camera)}] [data-testid="camera-live"]`);
    await button.waitFor({ timeout: 10000 });
    await page.waitForTimeout(Math.random() * 2500);
    await page.evaluate(() => {
      const v = document.getElementById('live-video');
      window.__first = null;
      window.__t0 = performance.now();
      v.requestVideoFrameCallback(() => { window.__first = performance.now() - window.__t0; });
    });
    await button.click();
    await page.waitForFunction(() => window.__first !== null, null, { timeout: 10000, polling: 'raf' });
    ttff.push(Math.round(await page.evaluate(() => window.__first)));
    const info = await page.waitForFunction(() => ui.live && ui.live.info && ui.live.info.started_from ? ui.live.info.started_from : false,
      null, { timeout: 5000, polling: 50 }).then((h) => h.jsonValue(), () => 'unknown');
    from.push(info);
  }
  await browser.close();
  result({ ok: true, ttff_ms: ttff, started_from: from });
} catch (err) {
  if (browser) await browser.close().catch(() => {});
  result({ ok: false, error: String((err && err.message) || err) });
}
