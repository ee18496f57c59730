// node wall.mjs --url URL --user U --password P --camera - [--shots DIR] [--timeout 45000]
// The video wall in Chromium: 4 tiles, one camera dragged onto a tile, every
// tile decoding frames (counted with requestVideoFrameCallback); a tile
// whose session is ended server-side recovers by itself; a double-click
// switches a tile to the main stream; a saved layout comes back by name.
import { launch, login, parseArgs, result, watchdog } from './lib.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const a = parseArgs(process.argv.slice(2));
const timeout = Number(a.timeout || 45000);
watchdog(timeout * 4);
if (a.shots) mkdirSync(a.shots, { recursive: true });

const tiles = (page) => page.$$eval('[data-testid="wall-tile"]', (els) => els.map((el) => ({
  camera: el.dataset.camera, frames: Number(el.dataset.frames || 0), stream: el.dataset.stream, state: el.dataset.state,
  retries: Number(el.dataset.retries || 0), w: el.querySelector('video').videoWidth, h: el.querySelector('video').videoHeight,
})));

let b;
try {
  b = await launch();
  const page = await b.ctx.newPage();
  await login(page, a.url, a.user, a.password);
  await page.goto(a.url + '/#/wall');
  await page.waitForSelector('[data-testid="wall-tile"]');
  await page.selectOption('#wall-size', '4');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="wall-tile"]').length === 4);
  // Drag a camera that is not on the wall yet onto the last tile.
  const beforeDrag = (await tiles(page)).map((x) => x.camera);
  const drag = await page.evaluate((shown) => [...document.querySelectorAll('li[data-camera]')].map((li) => li.dataset.camera).find((id) => !shown.includes(id)), beforeDrag);
  if (!drag) throw new Error('every camera is on the wall already; nothing to drag');
  await page.dragAndDrop(`li[data-camera="${drag}"]`, '[data-testid="wall-tile"][data-index="3"]');
  await page.waitForFunction((cam) => document.querySelector('[data-testid="wall-tile"][data-index="3"]').dataset.camera === cam, drag, { timeout: 5000 });
  const t0 = Date.now();
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="wall-tile"]')].every((el) => Number(el.dataset.frames || 0) >= 10 && el.querySelector('video').videoWidth > 0), null, { timeout });
  const allPlaying = Date.now() - t0;
  const four = await tiles(page);
  if (a.shots) await page.screenshot({ path: join(a.shots, 'ui-wall.png') });

  // A dropped stream: end tile 0's session at the server; the tile recovers.
  const before = four[0].frames;
  const dropped = await page.evaluate(async () => {
    const v = document.querySelector('[data-testid="wall-tile"][data-index="0"] video');
    const loc = v.dataset.session;
    const r = await fetch(loc, { method: 'DELETE', headers: { Authorization: 'Bearer ' + sessionStorage.getItem('ronda.token') } });
    return { loc, status: r.status };
  });
  const t1 = Date.now();
  await page.waitForFunction(() => {
    const el = document.querySelector('[data-testid="wall-tile"][data-index="0"]');
    return Number(el.dataset.retries || 0) >= 1 && el.dataset.state === 'playing';
  }, null, { timeout });
  const resumedAt = Number(await page.evaluate(() => document.querySelector('[data-testid="wall-tile"][data-index="0"]').dataset.frames));
  await page.waitForFunction((n) => Number(document.querySelector('[data-testid="wall-tile"][data-index="0"]').dataset.frames) >= n + 10, resumedAt, { timeout });
  const recoveredMs = Date.now() - t1;
  const newSession = await page.evaluate(() => document.querySelector('[data-testid="wall-tile"][data-index="0"] video').dataset.session);

  // Double-click: the main stream, large.
  await page.dblclick('[data-testid="wall-tile"][data-index="1"]');
  await page.waitForFunction(() => {
    const el = document.querySelector('[data-testid="wall-tile"][data-index="1"]');
    return el.dataset.stream === 'main' && el.classList.contains('focus') && el.dataset.state === 'playing' && el.querySelector('video').videoWidth > 0;
  }, null, { timeout });
  const main = (await tiles(page))[1];

  // Save the layout, open it again by name.
  await page.fill('#wall-name', 'ruang-kontrol');
  await page.click('#wall-save');
  const saved = (await tiles(page)).map((x) => x.camera);
  await page.goto(a.url + '/#/overview');
  await page.goto(a.url + '/#/wall/ruang-kontrol');
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="wall-tile"]').length === n, saved.length);
  const reopened = (await tiles(page)).map((x) => x.camera);
  // 16 tiles: the grid and every session start (responsiveness under load).
  await page.selectOption('#wall-size', '16');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="wall-tile"]').length === 16);
  // Fill every tile (cameras repeat when there are fewer than 16), through
  // each tile's own menu, and wait for all 16 to decode.
  const ids = await page.$$eval('li[data-camera]', (lis) => lis.map((li) => li.dataset.camera));
  for (let i = 0; i < 16; i++) {
    await page.selectOption(`[data-testid="wall-tile"][data-index="${i}"] select`, ids[i % ids.length]);
  }
  const t16 = Date.now();
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="wall-tile"]')].every((el) => Number(el.dataset.frames || 0) >= 5), null, { timeout });
  const sixteenMs = Date.now() - t16;
  const lag = await page.evaluate(() => new Promise((resolve) => {
    const start = performance.now();
    let worst = 0, last = start;
    const tick = () => {
      const now = performance.now();
      worst = Math.max(worst, now - last);
      last = now;
      if (now - start < 5000) requestAnimationFrame(tick); else resolve(worst);
    };
    requestAnimationFrame(tick);
  }));
  if (a.shots) await page.screenshot({ path: join(a.shots, 'ui-wall-16.png') });
  await b.close();
  result({ ok: true, before_drag: beforeDrag, dragged: drag, tiles: four, all_playing_ms: allPlaying, dropped, frames_before_drop: before, recovered_ms: recoveredMs, new_session: newSession,
    main, saved, reopened, worst_frame_gap_ms_16_tiles: lag, sixteen_playing_ms: sixteenMs });
} catch (err) {
  if (b) await b.close().catch(() => {});
  result({ ok: false, error: String(err && err.stack || err) });
}
