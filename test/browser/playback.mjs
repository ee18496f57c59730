// node playback.mjs --url URL --user U --password P --camera ID [--screenshot out.png]
// Opens the camera's playback page (last 1 minute) and waits until the
// recorded video plays (currentTime advances, frames decoded).
import { parseArgs, launch, login, result } from './lib.mjs';

const a = parseArgs(process.argv.slice(2));
let browser;
try {
  browser = await launch();
  const page = await browser.ctx.newPage();
  await login(page, a.url, a.user, a.password);
  await page.goto(a.url + '/#/playback/' + encodeURIComponent(a.camera));
  await page.selectOption('#playback-range', '1');
  await page.click('#playback-load');
  const stats = await page.evaluate(async () => {
    const v = document.getElementById('playback-video');
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('playback did not advance; status: ' +
        document.getElementById('playback-status').textContent)), 20000);
      const check = () => {
        if (v.currentTime > 1 && v.videoWidth > 0) { clearTimeout(timer); resolve(); } else setTimeout(check, 100);
      };
      check();
    });
    return { videoWidth: v.videoWidth, videoHeight: v.videoHeight, currentTime: v.currentTime, duration: v.duration,
      spans: document.querySelectorAll('#timeline .span').length };
  });
  if (a.screenshot) await page.screenshot({ path: a.screenshot });
  await browser.close();
  result({ ok: true, ...stats });
} catch (err) {
  if (browser) await browser.close().catch(() => {});
  result({ ok: false, error: String(err && err.message || err) });
}
