// node live.mjs --url https://127.0.0.1:PORT --user U --password P --camera ID [--timeout 30000] [--screenshot out.png]
// Logs in through the UI, clicks the camera's "Live" button in the cameras
// table (falls back to the #/live/ID route if the camera is not listed) and
// waits until #live-video has decoded ≥ 10 frames. Prints one JSON line;
// exit 0 only on success. ttff_ms: from the click to the first frame shown.
import { parseArgs, watchdog, launch, login, result } from './lib.mjs';

const a = parseArgs(process.argv.slice(2));
const timeout = Number(a.timeout || 30000);
watchdog(timeout + 45000);
let browser;
let page;
try {
  browser = await launch();
  page = await browser.ctx.newPage();
  await login(page, a.url, a.user, a.password);
  await page.goto(a.url + '/#/cameras');
  const button = page.locator(`#cameras-table tbody tr[data-camera=${JSON.stringify(a.camera)}] [data-testid="camera-live"]`);
  const listed = await button.waitFor({ timeout: 10000 }).then(() => true, () => false);
  // Count presented frames with requestVideoFrameCallback from the click on.
  await page.evaluate(() => {
    const v = document.getElementById('live-video');
    const s = { t0: performance.now(), frames: 0, first: null };
    window.__live = s;
    const onFrame = () => {
      s.frames++;
      if (s.first === null) s.first = performance.now() - s.t0;
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
  });
  if (listed) await button.click();
  else await page.goto(a.url + '/#/live/' + encodeURIComponent(a.camera));
  await page.waitForFunction(() => window.__live.frames >= 10 && document.getElementById('live-video').videoWidth > 0,
    null, { timeout, polling: 50 }).catch(async () => {
    const st = await page.evaluate(() => ({ status: document.getElementById('live-status').textContent, frames: window.__live.frames }));
    throw new Error(`no video within ${timeout} ms (${st.frames} frames); status: ${st.status}`);
  });
  const stats = await page.evaluate(() => {
    const v = document.getElementById('live-video');
    const whep = performance.getEntriesByType('resource').filter((e) => e.name.includes('/whep')).pop();
    return {
      videoWidth: v.videoWidth, videoHeight: v.videoHeight, frames: window.__live.frames,
      decoded: v.getVideoPlaybackQuality().totalVideoFrames,
      ttff_ms: Math.round(window.__live.first), whep_ms: whep ? Math.round(whep.duration) : null,
      status: document.getElementById('live-status').textContent,
    };
  });
  if (a.screenshot) await page.screenshot({ path: a.screenshot });
  await browser.close();
  result({ ok: true, ...stats, via: listed ? 'cameras-table' : 'route' });
} catch (err) {
  if (page && a.screenshot) await page.screenshot({ path: a.screenshot }).catch(() => {});
  if (browser) await browser.close().catch(() => {});
  result({ ok: false, error: String((err && err.message) || err) });
}
