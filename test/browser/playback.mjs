// node playback.mjs --url URL --user U --password P --camera ID [--minutes 1] [--timeout 20000] [--screenshot out.png]
// Opens the camera's playback page, plays the last N minutes and waits until
// #playback-video plays (currentTime advances past 1 s with a picture).
// Prints one JSON line; exit 0 only on success.
import { parseArgs, watchdog, launch, login, result } from './lib.mjs';

const a = parseArgs(process.argv.slice(2));
const timeout = Number(a.timeout || 20000);
watchdog(timeout + 45000);
let browser;
let page;
try {
  browser = await launch();
  page = await browser.ctx.newPage();
  await login(page, a.url, a.user, a.password);
  await page.goto(a.url + '/#/playback/' + encodeURIComponent(a.camera));
  await page.selectOption('#playback-range', String(a.minutes || '1'));
  await page.click('#playback-load');
  await page.waitForFunction(() => {
    const v = document.getElementById('playback-video');
    return v.currentTime > 1 && v.videoWidth > 0;
  }, null, { timeout, polling: 100 }).catch(async () => {
    const st = await page.evaluate(() => document.getElementById('playback-status').textContent);
    throw new Error(`playback did not advance within ${timeout} ms; status: ${st}`);
  });
  const stats = await page.evaluate(() => {
    const v = document.getElementById('playback-video');
    return {
      videoWidth: v.videoWidth, videoHeight: v.videoHeight, currentTime: v.currentTime, duration: v.duration,
      spans: document.querySelectorAll('#timeline .span').length, gaps: document.querySelectorAll('#timeline .gap').length,
    };
  });
  if (a.screenshot) await page.screenshot({ path: a.screenshot });
  await browser.close();
  result({ ok: true, ...stats });
} catch (err) {
  if (page && a.screenshot) await page.screenshot({ path: a.screenshot }).catch(() => {});
  if (browser) await browser.close().catch(() => {});
  result({ ok: false, error: String((err && err.message) || err) });
}
