// node live.mjs --url https://127.0.0.1:PORT --user U --password P --camera ID [--timeout 30000] [--screenshot out.png]
// Logs in through the UI, opens the camera's live view (WHEP) and waits until
// the <video> has decoded frames. Prints one JSON line; exit 0 only on success.
import { parseArgs, launch, login, result } from './lib.mjs';

const a = parseArgs(process.argv.slice(2));
const timeout = Number(a.timeout || 30000);
let browser;
try {
  browser = await launch();
  const page = await browser.ctx.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  await login(page, a.url, a.user, a.password);
  const t0 = Date.now();
  await page.goto(a.url + '/#/live/' + encodeURIComponent(a.camera));
  const stats = await page.evaluate(async ({ timeout }) => {
    const v = document.getElementById('live-video');
    const start = performance.now();
    let frames = 0;
    let ttff = null;
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no frames within ' + timeout + ' ms; status: ' +
        document.getElementById('live-status').textContent)), timeout);
      const onFrame = () => {
        frames++;
        if (ttff === null) ttff = performance.now() - start;
        if (frames >= 10 && v.videoWidth > 0) { clearTimeout(timer); resolve(); return; }
        v.requestVideoFrameCallback(onFrame);
      };
      v.requestVideoFrameCallback(onFrame);
    });
    return { videoWidth: v.videoWidth, videoHeight: v.videoHeight, frames, ttff_ms: ttff };
  }, { timeout });
  if (a.screenshot) await page.screenshot({ path: a.screenshot });
  await browser.close();
  result({ ok: true, ...stats, total_ms: Date.now() - t0 });
} catch (err) {
  if (browser) await browser.close().catch(() => {});
  result({ ok: false, error: String(err && err.message || err) });
}
