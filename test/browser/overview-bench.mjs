// node overview-bench.mjs [--cameras 30000] [--runs 5]
// The city overview with a synthetic city — 267 nodes (one per kelurahan of
// the real table) and 30,000 cameras with positions, 3 % of them down and 8
// nodes offline — measured in headless Chromium. The UI is served from
// web/static by a small local server; the API calls are answered with the
// synthetic data by the page's request interception, so only the browser's
// work is timed. Side by side: the overview (one row per kelurahan and a
// canvas map) and the baseline it replaces, a table with one row per camera
// (the #/cameras view), with the same data.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join, extname } from 'node:path';
import { launch, result, watchdog } from './lib.mjs';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, v, i, arr) => (v.startsWith('--') ? acc.concat([[v.slice(2), arr[i + 1]]]) : acc), []));
const CAMERAS = Number(args.cameras || 30000);
const RUNS = Number(args.runs || 5);
watchdog(600000);

const root = new URL('../../', import.meta.url).pathname;
const staticDir = join(root, 'web', 'static');
const csv = readFileSync(join(root, 'kelurahan', 'jakarta-kelurahan.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));

// The synthetic city.
const areas = [], nodes = [], cameras = [], points = [];
const seen = new Set();
csv.forEach((r, i) => {
  const [code, name, kecCode, kec, kotaCode, kota, lat, lon] = r;
  areas.push({ code, name, level: 'kelurahan', parent: kecCode, lat: +lat, lon: +lon, nodes: 1, cameras: 0 });
  if (!seen.has(kecCode)) { seen.add(kecCode); areas.push({ code: kecCode, name: kec, level: 'kecamatan', parent: kotaCode }); }
  if (!seen.has(kotaCode)) { seen.add(kotaCode); areas.push({ code: kotaCode, name: kota, level: 'kota' }); }
  const offline = i % 33 === 5;
  nodes.push({ node_id: 'n' + (i + 1), kelurahan_code: code, kelurahan: name, kecamatan: kec, kota, online: !offline,
    status: offline ? 'offline' : (i % 41 === 7 ? 'degraded' : 'online'), offline_since: offline ? new Date(Date.now() - 3600e3).toISOString() : undefined,
    last_seen: new Date().toISOString(), cameras: 0 });
});
for (let c = 0; c < CAMERAS; c++) {
  const n = nodes[c % nodes.length], a = areas.find((x) => x.code === n.kelurahan_code) || {};
  const id = n.kelurahan_code.replaceAll('.', '') + '-cam' + (Math.floor(c / nodes.length) + 1);
  const down = c % 33 === 3 || n.status === 'offline';
  cameras.push({ id, name: 'cam' + (Math.floor(c / nodes.length) + 1), kelurahan_code: n.kelurahan_code, kelurahan: n.kelurahan, node_id: n.node_id,
    state: down ? 'failing' : 'streaming', reason: down ? 'dial tcp: i/o timeout' : '', codec: 'H264', width: 1920, height: 1080, recording: !down });
  points.push({ id, node_id: n.node_id, kelurahan_code: n.kelurahan_code, lat: a.lat + ((c * 7919) % 200 - 100) / 20000, lon: a.lon + ((c * 104729) % 200 - 100) / 20000, state: down ? 'failing' : 'streaming' });
  n.cameras++;
}
const bodies = {
  '/api/v1/me': { user: 'admin', role: 'admin', served_by: 'hub', name: 'Hub Kota Jakarta' },
  '/api/v1/nodes': { nodes },
  '/api/v1/cameras': { cameras },
  '/api/v1/areas': { version: 'synthetic', areas },
  '/api/v1/search': { cameras: points, total: points.length },
};
const json = Object.fromEntries(Object.entries(bodies).map(([k, v]) => [k, JSON.stringify(v)]));
json['/api/v1/areas?level=kelurahan'] = JSON.stringify({ version: 'synthetic', areas: areas.filter((a) => a.level === 'kelurahan') });

const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
const server = createServer((req, res) => {
  const path = req.url.split('?')[0];
  const file = path === '/' ? 'index.html' : path.slice(1);
  try {
    const data = readFileSync(join(staticDir, file));
    res.writeHead(200, { 'Content-Type': types[extname(file)] || 'application/octet-stream' });
    res.end(data);
  } catch { res.writeHead(404); res.end(); }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = 'http://127.0.0.1:' + server.address().port;

const stats = (xs) => { const s = [...xs].sort((a, b) => a - b); return { p50: s[Math.floor(s.length / 2)], max: s[s.length - 1] }; };
let b;
try {
  b = await launch();
  const page = await b.ctx.newPage();
  await page.route('**/api/v1/**', (route) => {
    const u = new URL(route.request().url());
    const path = u.pathname;
    const body = path === '/api/v1/areas' && u.searchParams.get('level') === 'kelurahan' ? json['/api/v1/areas?level=kelurahan'] : json[path];
    if (!body) return route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":"not in the synthetic city"}' });
    return route.fulfill({ status: 200, contentType: 'application/json', body });
  });
  await page.goto(base + '/#/login');
  await page.evaluate(() => sessionStorage.setItem('ronda.token', 'synthetic'));
  const overview = [], overviewTotal = [], filter = [], tableTotal = [];
  let rows = 0;
  for (let i = 0; i < RUNS; i++) {
    // Overview: from navigation to the rendered rows and map.
    await page.goto('about:blank');
    const t0 = Date.now();
    await page.goto(base + '/#/overview');
    await page.waitForFunction(() => document.body.dataset.overviewRenderMs, null, { timeout: 60000 });
    overviewTotal.push(Date.now() - t0);
    overview.push(Number(await page.evaluate(() => document.body.dataset.overviewRenderMs)));
    rows = Number(await page.evaluate(() => document.body.dataset.overviewRows || 0));
    // Typing in the filter re-renders everything.
    const f = await page.evaluate(() => {
      const el = document.getElementById('ov-filter');
      el.value = 'Gambir';
      const s = performance.now();
      el.dispatchEvent(new Event('input'));
      return performance.now() - s;
    });
    filter.push(f);
    await page.evaluate(() => { const el = document.getElementById('ov-filter'); el.value = ''; el.dispatchEvent(new Event('input')); });
    // Baseline: one table row per camera.
    await page.goto('about:blank');
    const t1 = Date.now();
    await page.goto(base + '/#/cameras');
    await page.waitForFunction((n) => document.querySelectorAll('#cameras-table tbody tr').length >= n, CAMERAS, { timeout: 120000, polling: 100 });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    tableTotal.push(Date.now() - t1);
  }
  await b.close();
  server.close();
  const o = stats(overview), ot = stats(overviewTotal), fl = stats(filter), tt = stats(tableTotal);
  console.error(`synthetic city: ${nodes.length} nodes, ${CAMERAS} cameras, ${RUNS} runs in headless Chromium; the overview shows ${rows} kelurahan rows`);
  console.error(`overview (rows per kelurahan + canvas map): render p50 ${o.p50.toFixed(0)} ms (max ${o.max.toFixed(0)}); navigation to rendered p50 ${ot.p50} ms (max ${ot.max}); filter keystroke p50 ${fl.p50.toFixed(0)} ms`);
  console.error(`baseline (one table row per camera, #/cameras): navigation to rendered p50 ${tt.p50} ms (max ${tt.max})`);
  result({ ok: true, nodes: nodes.length, cameras: CAMERAS, runs: RUNS, overview_render_ms: o, overview_total_ms: ot, filter_ms: fl, baseline_table_total_ms: tt, rows });
} catch (err) {
  if (b) await b.close().catch(() => {});
  server.close();
  result({ ok: false, error: String(err && err.stack || err) });
}
