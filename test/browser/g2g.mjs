// node g2g.mjs --url U --user U --password P --camera ID [--seconds 20]
// Glass-to-glass latency: the camera (bench/livebench) burns its wall clock
// into every frame as a 44-bit barcode (Unix ms mod 2^40 and a 4-bit
// check) in the top 32 rows, 14 px per bit. The page plays the camera live,
// and for every frame presented (requestVideoFrameCallback) draws it to a
// canvas, reads the barcode and subtracts it from Date.now() (same machine,
// same clock). Prints {"ok":true,"latency_ms":[...],"bad":N}.
import { parseArgs, watchdog, launch, login, result } from './lib.mjs';

const a = parseArgs(process.argv.slice(2));
const seconds = Number(a.seconds || 20);
watchdog(90000 + seconds * 1000);
let browser;
try {
  browser = await launch();
  const page = await browser.ctx.newPage();
  await login(page, a.url, a.user, a.password);
  await page.goto(a.url + '/#/live/' + encodeURIComponent(a.camera));
  await page.waitForFunction(() => document.getElementById('live-video').videoWidth > 0, null, { timeout: 20000 });
  await page.waitForTimeout(2000); // past the GOP replay and the jitter buffer's start
  const out = await page.evaluate((ms) => new Promise((resolve) => {
    const v = document.getElementById('live-video');
    const c = document.createElement('canvas');
    c.width = v.videoWidth; c.height = v.videoHeight;
    const g = c.getContext('2d', { willReadFrequently: true });
    const lat = [];
    let bad = 0;
    const end = performance.now() + ms;
    const onFrame = () => {
      const now = Date.now();
      g.drawImage(v, 0, 0, c.width, c.height);
      const row = g.getImageData(0, 16, 44 * 14, 1).data;
      let ts = 0;
      let sum = 0;
      let check = 0;
      for (let i = 0; i < 44; i++) {
        const bit = row[(i * 14 + 7) * 4] > 128 ? 1 : 0;
        if (i < 40) { ts = ts * 2 + bit; } else { check = check * 2 + bit; }
      }
      for (let n = ts, k = 0; k < 10; k++, n = Math.floor(n / 16)) sum += n % 16;
      let d = now % 2 ** 40 - ts;
      if (d < 0) d += 2 ** 40;
      if (sum % 16 === check && d < 60000) lat.push(d); else bad++;
      if (performance.now() < end) v.requestVideoFrameCallback(onFrame);
      else resolve({ lat, bad });
    };
    v.requestVideoFrameCallback(onFrame);
  }), seconds * 1000);
  await browser.close();
  result({ ok: out.lat.length > 0, latency_ms: out.lat, bad: out.bad, error: out.lat.length ? undefined : 'no barcode read' });
} catch (err) {
  if (browser) await browser.close().catch(() => {});
  result({ ok: false, error: String((err && err.message) || err) });
}
