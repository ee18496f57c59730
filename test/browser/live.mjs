// node live.mjs --url https://127.0.0.1:PORT --user U --password P --camera ID [--timeout 30000] [--screenshot out.png]
//                [--relay] [--no-gop-cache] [--stream sub] [--keyframe-epoch-ms K --gop-ms G]
// Logs in through the UI, clicks the camera's "Live" button in the cameras
// table (falls back to the #/live/ID route if the camera is not listed) and
// waits until #live-video has decoded ≥ 10 frames. Prints one JSON line;
// exit 0 only on success. ttff_ms: from the click to the first frame shown;
// click_epoch_ms and first_frame_epoch_ms: the same two moments on the wall
// clock (to compare with the camera's keyframe times); session: the
// server's view of the session (GET /api/v1/whep/{session}: path, where it
// started). --relay ticks "through the hub's relay (TURN)" (the browser
// then uses TURN candidates only); --no-gop-cache asks for ?gop_cache=0;
// --stream sub picks the light sub stream in the quality menu.
// --keyframe-epoch-ms/--gop-ms: the camera had a keyframe at K (wall clock,
// ms) and has one every G ms; the click then waits until just after one, so
// the camera's next keyframe is most of a GOP away.
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
  await page.evaluate(([relay, nocache, stream]) => {
    localStorage.setItem('ronda.liveRelay', relay ? '1' : '0');
    localStorage.setItem('ronda.gopCache', nocache ? '0' : '1');
    localStorage.setItem('ronda.liveStream', stream);
  }, [a.relay === 'true', a['no-gop-cache'] === 'true', a.stream === 'sub' ? 'sub' : 'main']);
  await page.goto(a.url + '/#/cameras');
  const button = page.locator(`#cameras-table tbody tr[data-camera=${JSON.stringify(a.camera)}] [data-testid="camera-live"]`);
  const listed = await button.waitFor({ timeout: 10000 }).then(() => true, () => false);
  // Count presented frames with requestVideoFrameCallback from the click on.
  await page.evaluate(() => {
    const v = document.getElementById('live-video');
    const s = { t0: performance.now(), frames: 0, first: null, clickEpoch: Date.now(), firstEpoch: null };
    window.__live = s;
    const onFrame = () => {
      s.frames++;
      if (s.first === null) { s.first = performance.now() - s.t0; s.firstEpoch = Date.now(); }
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
  });
  if (a['keyframe-epoch-ms'] && a['gop-ms']) {
    const k = Number(a['keyframe-epoch-ms']);
    const g = Number(a['gop-ms']);
    const phase = ((Date.now() - k) % g + g) % g;
    await new Promise((r) => setTimeout(r, (g + 100 - phase) % g)); // 100 ms after a keyframe
  }
  await page.evaluate(() => { window.__live.t0 = performance.now(); window.__live.clickEpoch = Date.now(); });
  if (listed) await button.click();
  else await page.goto(a.url + '/#/live/' + encodeURIComponent(a.camera));
  await page.waitForFunction(() => window.__live.frames >= 10 && document.getElementById('live-video').videoWidth > 0,
    null, { timeout, polling: 50 }).catch(async () => {
    const st = await page.evaluate(() => ({ status: document.getElementById('live-status').textContent, frames: window.__live.frames }));
    throw new Error(`no video within ${timeout} ms (${st.frames} frames); status: ${st.status}`);
  });
  // The session as the server sees it (the UI fetches it once connected).
  const session = await page.waitForFunction(() => ui.live && ui.live.info && ui.live.info.path ? ui.live.info : false,
    null, { timeout: 10000, polling: 100 }).then((h) => h.jsonValue(), () => null);
  const stats = await page.evaluate(() => {
    const v = document.getElementById('live-video');
    const whep = performance.getEntriesByType('resource').filter((e) => e.name.includes('/whep')).pop();
    return {
      videoWidth: v.videoWidth, videoHeight: v.videoHeight, frames: window.__live.frames,
      decoded: v.getVideoPlaybackQuality().totalVideoFrames,
      ttff_ms: Math.round(window.__live.first), whep_ms: whep ? Math.round(whep.duration) : null,
      click_epoch_ms: window.__live.clickEpoch, first_frame_epoch_ms: window.__live.firstEpoch,
      status: document.getElementById('live-status').textContent,
      path_text: document.getElementById('live-path').textContent,
    };
  });
  if (a.screenshot) await page.screenshot({ path: a.screenshot });
  await browser.close();
  result({ ok: true, ...stats, session, via: listed ? 'cameras-table' : 'route' });
} catch (err) {
  if (page && a.screenshot) await page.screenshot({ path: a.screenshot }).catch(() => {});
  if (browser) await browser.close().catch(() => {});
  result({ ok: false, error: String((err && err.message) || err) });
}
