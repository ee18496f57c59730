// node views.mjs --url HUB-URL --user ADMIN --password P --camera CAM --export ID --node n1
//   --hold-reason R --token-kel CODE --new-user NAME --new-password P
//   --node-url NODE-URL --node-user U --node-password P [--shots DIR]
// The camera page, evidence, audit and admin views in Chromium, at the hub
// and at a node, as a user would check them:
// - camera page: live frames decode, the timeline shows recorded spans, a
//   click on it plays the recording there;
// - evidence (hub): the node's export with its reason, verified against the
//   hub's audit log; the hold placed at the hub, applied at the node;
// - audit (hub): the log verifies; filters by user and action, and by
//   outcome "denied";
// - admin (hub): members and nodes, a join token, a new user, disabled;
// - evidence and audit at the node: the export downloads (an MP4) and
//   verifies against its signed manifest; the node's hash chain verifies.
import { frames, launch, login, logout, parseArgs, result, watchdog } from './lib.mjs';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const a = parseArgs(process.argv.slice(2));
const timeout = Number(a.timeout || 30000);
watchdog(timeout * 12);
if (a.shots) mkdirSync(a.shots, { recursive: true });
const shot = async (page, name) => { if (a.shots) await page.screenshot({ path: join(a.shots, name), fullPage: true }); };

// rows returns the text of a table's body rows (with a data attribute).
const rows = (page, sel, attr) => page.$$eval(sel + ' tbody tr', (trs, attr) => trs.map((tr) => ({ key: tr.dataset[attr] || '', text: tr.textContent })), attr);

async function verdict(page, rowSel) {
  await page.click(rowSel + ' [data-testid=ev-verify]');
  const h = await page.waitForFunction((sel) => {
    const v = document.querySelector(sel + ' [data-testid=ev-verdict]');
    return v && !v.textContent.endsWith('…') ? { text: v.textContent, cls: v.className, checks: v.title } : false;
  }, rowSel, { timeout });
  return h.jsonValue();
}

let b;
try {
  b = await launch();
  const page = await b.ctx.newPage();
  page.on('dialog', (d) => d.accept());
  await login(page, a.url, a.user, a.password);
  const out = { ok: true };

  // ---- the camera page: live and the timeline together ----
  await page.goto(a.url + '/#/camera/' + encodeURIComponent(a.camera));
  await page.waitForFunction(() => document.querySelectorAll('#timeline .span').length > 0, null, { timeout });
  await page.waitForFunction(() => { const v = document.getElementById('live-video'); return v.videoWidth > 0 && !v.paused; }, null, { timeout });
  const cam = {
    title: await page.textContent('#camhead-name'),
    state: await page.textContent('#camera-state'),
    state_class: await page.getAttribute('#camera-state', 'class'),
    live_frames: await frames(page, '#live-video', 2000),
    spans: await page.$$eval('#timeline .span', (x) => x.length),
    both_shown: await page.evaluate(() => !document.getElementById('view-live').hidden && !document.getElementById('view-playback').hidden),
  };
  // Click the middle of the newest recorded span.
  await page.locator('#timeline').scrollIntoViewIfNeeded();
  const box = await page.locator('#timeline').boundingBox();
  const rng = await page.evaluate(() => {
    const sp = ui.rec.spans[ui.rec.spans.length - 1];
    return { from: new Date(ui.rec.from).getTime(), to: new Date(ui.rec.to).getTime(), s: new Date(sp.start).getTime(), e: new Date(sp.end).getTime() };
  });
  cam.clicked_ms = (rng.s + rng.e) / 2;
  await page.mouse.click(box.x + box.width * (cam.clicked_ms - rng.from) / (rng.to - rng.from), box.y + box.height / 2);
  await page.waitForFunction(() => { const v = document.getElementById('playback-video'); return v.readyState >= 2 && !v.paused && v.currentTime > 0; }, null, { timeout });
  cam.playback_frames = await frames(page, '#playback-video', 2000);
  cam.clock_ms = Number(await page.getAttribute('#playback-clock', 'data-epoch-ms'));
  cam.live_frames_after = await frames(page, '#live-video', 1000);
  await shot(page, 'ui-camera-page.png');
  out.camera = cam;

  // ---- evidence at the hub ----
  await page.goto(a.url + '/#/evidence');
  const exRow = `#ev-exports tr[data-export="${a.export}"]`;
  await page.waitForSelector(exRow, { timeout });
  await page.waitForFunction((r) => [...document.querySelectorAll('#ev-holds tbody tr')].some((tr) => tr.textContent.includes(r)), a['hold-reason'], { timeout });
  const ev = { export_row: await page.textContent(exRow) };
  ev.verdict = await verdict(page, exRow);
  ev.holds = (await rows(page, '#ev-holds', 'hold')).filter((r) => r.text.includes(a['hold-reason']));
  ev.summary = await page.textContent('#ev-summary');
  await page.fill('#ev-filter', a['hold-reason']);
  ev.filtered_exports = (await rows(page, '#ev-exports', 'export')).filter((r) => r.key).length;
  ev.filtered_holds = (await rows(page, '#ev-holds', 'hold')).filter((r) => r.key).length;
  await page.fill('#ev-filter', '');
  await shot(page, 'ui-evidence.png');
  out.evidence = ev;

  // ---- audit at the hub ----
  await page.goto(a.url + '/#/audit');
  await page.waitForFunction(() => document.getElementById('au-verify').dataset.ok !== undefined &&
    document.querySelectorAll('#au-table tbody tr[data-seq]').length > 0, null, { timeout: timeout * 2 });
  const au = {
    verify_ok: await page.getAttribute('#au-verify', 'data-ok'),
    verdict: await page.textContent('[data-testid=au-verdict]'),
    rows: (await rows(page, '#au-table', 'seq')).length,
  };
  const filtered = async () => {
    const resp = page.waitForResponse((r) => r.url().includes('/api/v1/audit?') && r.request().method() === 'GET');
    await page.click('#au-go');
    await resp;
    await page.waitForTimeout(100); // rendered in the same turn; a margin for slow machines
    return page.$$eval('#au-table tbody tr[data-seq]', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  };
  await page.fill('#au-user', a.user);
  await page.selectOption('#au-action', 'login');
  au.logins = await filtered();
  await page.fill('#au-user', '');
  await page.selectOption('#au-action', '');
  await page.selectOption('#au-outcome', 'denied');
  au.denied = await filtered();
  await shot(page, 'ui-audit.png');
  out.audit = au;

  // ---- admin at the hub ----
  await page.goto(a.url + '/#/admin');
  await page.waitForFunction(() => document.querySelectorAll('#ad-members tbody tr').length >= 3 &&
    document.querySelectorAll('#ad-nodes tbody tr[data-node]').length >= 1 && document.querySelectorAll('#ad-users tbody tr').length >= 1, null, { timeout });
  const ad = {
    summary: await page.textContent('#ad-cluster-summary'),
    summary_class: await page.getAttribute('#ad-cluster-summary', 'class'),
    members: await rows(page, '#ad-members', 'member'),
    nodes: (await rows(page, '#ad-nodes', 'node')).map((r) => r.key),
  };
  await page.fill('#ad-enroll-kel', a['token-kel']);
  await page.click('#ad-enroll-go');
  await page.waitForSelector('[data-testid=ad-token]', { timeout });
  ad.token_len = (await page.textContent('[data-testid=ad-token]')).length;
  ad.token_text = await page.textContent('#ad-enroll-out');
  await page.fill('#ad-user-name', a['new-user']);
  await page.selectOption('#ad-user-role', 'viewer');
  await page.fill('#ad-user-cameras', a.camera);
  await page.fill('#ad-user-hours', '24');
  await page.fill('#ad-user-password', a['new-password']);
  await page.click('#ad-user-save');
  const userRow = `#ad-users tr[data-user="${a['new-user']}"]`;
  await page.waitForSelector(userRow, { timeout });
  ad.user_row = await page.textContent(userRow);
  await page.click(userRow + ' [data-testid=ad-user-toggle]');
  await page.waitForFunction((sel) => document.querySelector(sel) && document.querySelector(sel).textContent.includes('nonaktif'), userRow, { timeout });
  ad.user_row_disabled = await page.textContent(userRow);
  await shot(page, 'ui-admin.png');
  out.admin = ad;

  // ---- evidence and audit at the node, as its node admin ----
  await logout(page);
  await login(page, a['node-url'], a['node-user'], a['node-password']);
  await page.goto(a['node-url'] + '/#/evidence');
  await page.waitForSelector(exRow, { timeout });
  const nev = { export_row: await page.textContent(exRow) };
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout }), page.click(exRow + ' [data-testid=ev-download]')]);
  const file = readFileSync(await dl.path());
  nev.download = { name: dl.suggestedFilename(), bytes: file.length, box: file.subarray(4, 8).toString('latin1') };
  nev.verdict = await verdict(page, exRow);
  await shot(page, 'ui-evidence-node.png');
  await page.goto(a['node-url'] + '/#/audit');
  await page.waitForFunction(() => document.getElementById('au-verify').dataset.ok !== undefined, null, { timeout });
  nev.audit_ok = await page.getAttribute('#au-verify', 'data-ok');
  nev.audit_verdict = await page.textContent('[data-testid=au-verdict]');
  nev.audit_rows = (await rows(page, '#au-table', 'seq')).length;
  out.node = nev;

  await b.close();
  result(out);
} catch (err) {
  if (b) await b.close().catch(() => {});
  result({ ok: false, error: String(err && err.stack || err) });
}
