// node camera.mjs --url NODE-URL --user U --password P --camera ID [--shots DIR] [--timeout 45000]
// The camera's playback in Chromium: scrub the timeline to a recorded
// minute and check the frames shown are from that time (the clock follows
// the file's time), play at 4x, step a frame, select a range and export it,
// then download the export.
import { launch, login, parseArgs, result, watchdog } from './lib.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const a = parseArgs(process.argv.slice(2));
const timeout = Number(a.timeout || 45000);
watchdog(timeout * 4);
if (a.shots) mkdirSync(a.shots, { recursive: true });

let b;
try {
  b = await launch();
  const page = await b.ctx.newPage();
  await login(page, a.url, a.user, a.password);
  await page.goto(a.url + '/#/playback/' + encodeURIComponent(a.camera));
  await page.waitForFunction(() => {
    const v = document.getElementById('playback-video');
    return v.duration > 30 && document.querySelector('#timeline .span');
  }, null, { timeout });
  // Count decoded frames from here on.
  await page.evaluate(() => {
    const v = document.getElementById('playback-video');
    window.__frames = 0;
    const cb = () => { window.__frames++; v.requestVideoFrameCallback(cb); };
    v.requestVideoFrameCallback(cb);
  });
  // Scrub: click in the middle of the newest recorded span on the timeline.
  const box = await page.locator('#timeline').boundingBox();
  const spanBox = await page.locator('#timeline .span').last().boundingBox();
  const rec = await page.evaluate(() => ({ from: Date.parse(ui.rec.from), to: Date.parse(ui.rec.to) }));
  const x = spanBox.x + spanBox.width * 0.4;
  const target = rec.from + ((x - box.x) / box.width) * (rec.to - rec.from);
  await page.mouse.click(x, box.y + box.height / 2);
  const framesAtSeek = await page.evaluate(() => window.__frames);
  await page.waitForFunction(({ target, n0 }) => {
    const ms = Number(document.getElementById('playback-clock').dataset.epochMs || 0);
    return Math.abs(ms - target) < 3000 && window.__frames >= n0 + 5;
  }, { target, n0: framesAtSeek }, { timeout });
  const shown = Number(await page.evaluate(() => document.getElementById('playback-clock').dataset.epochMs));
  const clockText = await page.textContent('#playback-clock');
  if (a.shots) await page.screenshot({ path: join(a.shots, 'ui-camera-scrubbed.png') });

  // 4x: the shown time runs about four times as fast as the wall clock.
  await page.selectOption('#playback-speed', '4');
  const s0 = await page.evaluate(() => [Date.now(), Number(document.getElementById('playback-clock').dataset.epochMs)]);
  await page.waitForTimeout(2000);
  const s1 = await page.evaluate(() => [Date.now(), Number(document.getElementById('playback-clock').dataset.epochMs)]);
  const speed = (s1[1] - s0[1]) / (s1[0] - s0[0]);
  await page.selectOption('#playback-speed', '1');

  // Step one frame.
  const st0 = await page.evaluate(() => document.getElementById('playback-video').currentTime);
  await page.click('#step-fwd');
  await page.waitForFunction((t0) => { const v = document.getElementById('playback-video'); return v.paused && v.currentTime > t0; }, st0, { timeout: 5000 });
  const st1 = await page.evaluate(() => document.getElementById('playback-video').currentTime);

  // Select a range (mark in here, 8 s later mark out) and export it.
  await page.click('#mark-in');
  await page.evaluate(() => { const v = document.getElementById('playback-video'); v.currentTime += 8; });
  await page.waitForFunction(() => document.getElementById('playback-video').readyState >= 2);
  await page.click('#mark-out');
  const sel = await page.textContent('#sel-text');
  await page.fill('#sel-reason', 'JAKI-2026-004211');
  await page.click('#sel-export');
  await page.waitForSelector('[data-testid="export-download"]', { timeout });
  const exportId = await page.evaluate(() => document.getElementById('sel-result').dataset.exportId);
  const fileUrl = await page.getAttribute('[data-testid="export-download"]', 'data-url');
  const dl = await page.evaluate(async (u) => {
    const r = await fetch(u, { headers: { Authorization: 'Bearer ' + sessionStorage.getItem('ronda.token') } });
    const buf = await r.arrayBuffer();
    const head = new TextDecoder().decode(new Uint8Array(buf.slice(4, 8)));
    return { status: r.status, type: r.headers.get('Content-Type'), bytes: buf.byteLength, box: head };
  }, fileUrl);
  if (a.shots) await page.screenshot({ path: join(a.shots, 'ui-camera-export.png'), fullPage: true });
  await b.close();
  result({ ok: true, target_ms: target, shown_ms: shown, clock: clockText, speed, step: [st0, st1], selection: sel, export_id: exportId, download: dl });
} catch (err) {
  if (b) await b.close().catch(() => {});
  result({ ok: false, error: String(err && err.stack || err) });
}
