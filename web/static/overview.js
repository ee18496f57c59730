// Overview: every kelurahan grouped by kota and kecamatan with its node's
// state, cameras up and down and last sync; problems first; a filter; and a
// map of cameras drawn from the data we have (no tile server is reachable).
// Rows are one per kelurahan (267 at most) and the map is one canvas, so a
// city of 30,000 cameras renders in well under a second.
'use strict';

const ov = { areas: null, nodes: null, cameras: null, points: null, renderMs: 0, loadMs: 0 };

async function loadOverview() {
  const t0 = performance.now();
  const [nodes, cameras, areas, points] = await Promise.all([
    api('/api/v1/nodes').then((r) => r.json()).then((b) => b.nodes || []),
    api('/api/v1/cameras').then((r) => r.json()).then((b) => b.cameras || []),
    ui.me && ui.me.served_by === 'hub'
      ? api('/api/v1/areas?level=kelurahan&consistency=stale').then((r) => r.json()).then((b) => b.areas || []).catch(() => [])
      : Promise.resolve([]),
    ui.me && ui.me.served_by === 'hub'
      ? api('/api/v1/search?limit=50000&consistency=stale').then((r) => r.json()).then((b) => b.cameras || []).catch(() => [])
      : Promise.resolve([]),
  ]);
  Object.assign(ov, { nodes, cameras, areas, points, loadMs: performance.now() - t0 });
  if (ui.view === 'overview') renderOverview();
}

// overviewRows builds one row per kelurahan: from the area catalog at the
// hub (all 267), else from the nodes the user may see.
function overviewRows() {
  const byKel = new Map();
  const row = (code) => {
    let r = byKel.get(code);
    if (!r) {
      r = { code, name: code, kecamatan: '', kota: '', nodes: [], up: 0, down: 0, recording: 0, reasons: new Map(), problem: 0 };
      byKel.set(code, r);
    }
    return r;
  };
  const scoped = ui.me && ['viewer', 'area_operator', 'node_admin'].includes(ui.me.role);
  if (!scoped) {
    for (const a of ov.areas || []) {
      const r = row(a.code);
      r.name = a.name;
      r.lat = a.lat; r.lon = a.lon;
    }
  }
  for (const n of ov.nodes || []) {
    const r = row(n.kelurahan_code);
    r.name = n.kelurahan; r.kecamatan = n.kecamatan; r.kota = n.kota;
    r.nodes.push(n);
  }
  const nodeKel = new Map((ov.nodes || []).map((n) => [n.node_id, n.kelurahan_code]));
  for (const c of ov.cameras || []) {
    const r = row(c.kelurahan_code || nodeKel.get(c.node_id) || '?');
    if (c.state === 'streaming') r.up++;
    else {
      r.down++;
      const why = c.reason || t('state.' + c.state);
      r.reasons.set(why, (r.reasons.get(why) || 0) + 1);
    }
    if (c.recording) r.recording++;
  }
  // kecamatan and kota names come with the nodes; the area catalog
  // gives them for the rest (codes: 31.71.01.1001 -> 31.71.01 -> 31.71).
  const names = new Map();
  for (const a of ov.areasAll || []) names.set(a.code, a.name);
  for (const r of byKel.values()) {
    const state = nodeState(r);
    r.state = state;
    r.problem = (state === 'offline' ? 3 : state === 'degraded' ? 2 : 0) + (r.down > 0 ? 1 : 0);
    if (!r.kecamatan) r.kecamatan = names.get(r.code.split('.').slice(0, 3).join('.')) || r.code.split('.').slice(0, 3).join('.');
    if (!r.kota) r.kota = names.get(r.code.split('.').slice(0, 2).join('.')) || r.code.split('.').slice(0, 2).join('.');
  }
  return [...byKel.values()];
}

function nodeState(r) {
  if (r.nodes.length === 0) return 'nonode';
  const order = { offline: 3, degraded: 2, online: 1 };
  let worst = 'online';
  for (const n of r.nodes) {
    const s = n.status || (n.online ? 'online' : 'offline');
    if ((order[s] || 0) > order[worst]) worst = s;
  }
  return worst;
}

// fmtDays: days of recording left until retention must delete old footage.
function fmtDays(d) {
  if (d >= 365) return t('overview.years');
  return (d < 10 ? d.toFixed(1) : Math.floor(d)) + ' ' + t('overview.days');
}

function ovMatches(r, q) {
  if (!q) return true;
  return (r.name + ' ' + r.code + ' ' + r.kecamatan + ' ' + r.kota + ' ' + r.nodes.map((n) => n.node_id).join(' ')).toLowerCase().includes(q);
}

function stateBadge(r) {
  const b = document.createElement('span');
  b.className = 'badge ' + ({ online: 'ok', degraded: 'warn', offline: 'bad', nonode: 'muted' }[r.state] || '');
  b.textContent = t('node.' + r.state);
  b.dataset.state = r.state;
  const n = r.nodes[0];
  if (n && r.state === 'offline' && n.offline_since) b.textContent += ' ' + t('overview.since') + ' ' + fmtTime(n.offline_since);
  if (n && n.status_detail) b.title = n.status_detail;
  return b;
}

function renderOverview() {
  const t0 = performance.now();
  const q = $('ov-filter').value.trim().toLowerCase();
  const problemsOnly = $('ov-problems').checked;
  const rows = overviewRows();
  const withNode = rows.filter((r) => r.nodes.length > 0);
  const shown = rows.filter((r) => ovMatches(r, q) && (!problemsOnly || r.problem > 0));

  // Summary and the problems list (dark nodes first, then cameras down).
  const cams = ov.cameras || [];
  const up = cams.filter((c) => c.state === 'streaming').length;
  const dark = withNode.filter((r) => r.state === 'offline').length;
  const degraded = withNode.filter((r) => r.state === 'degraded').length;
  $('ov-summary').textContent = t('overview.summary')
    .replace('{nodes}', withNode.length).replace('{dark}', dark).replace('{degraded}', degraded)
    .replace('{up}', up).replace('{cams}', cams.length);
  const plist = $('ov-problems-list');
  plist.replaceChildren();
  const problems = withNode.filter((r) => r.problem > 0).sort((a, b) => b.problem - a.problem || a.name.localeCompare(b.name));
  for (const r of problems.slice(0, 50)) {
    const li = document.createElement('li');
    li.dataset.kelurahan = r.code;
    li.append(stateBadge(r), ' ', r.name + ' (' + r.nodes.map((n) => n.node_id).join(', ') + ')');
    if (r.down > 0) {
      li.append(' — ' + t('overview.camsdown').replace('{n}', r.down) + ': ' +
        [...r.reasons.entries()].map(([why, n]) => why + (n > 1 ? ' ×' + n : '')).join('; '));
    }
    plist.append(li);
  }
  if (problems.length === 0) {
    const li = document.createElement('li');
    li.className = 'ok';
    li.textContent = t('overview.noproblems');
    plist.append(li);
  } else if (problems.length > 50) {
    const li = document.createElement('li');
    li.textContent = t('overview.more').replace('{n}', problems.length - 50);
    plist.append(li);
  }

  // Groups: kota, then kecamatan; problems first, then by name.
  const groups = new Map();
  for (const r of shown) {
    if (!groups.has(r.kota)) groups.set(r.kota, new Map());
    const kec = groups.get(r.kota);
    if (!kec.has(r.kecamatan)) kec.set(r.kecamatan, []);
    kec.get(r.kecamatan).push(r);
  }
  const score = (list) => Math.max(0, ...list.map((r) => r.problem * 10 + (r.nodes.length > 0 ? 1 : 0)));
  const frag = document.createDocumentFragment();
  const kotas = [...groups.entries()].map(([k, kecs]) => [k, kecs, score([...kecs.values()].flat())])
    .sort((a, b) => b[2] - a[2] || a[0].localeCompare(b[0]));
  for (const [kota, kecs, s] of kotas) {
    const det = document.createElement('details');
    det.open = s > 0 || q !== '' || kotas.length <= 2;
    det.dataset.kota = kota;
    const sum = document.createElement('summary');
    const all = [...kecs.values()].flat();
    sum.textContent = kota + ' — ' + t('overview.groupsum')
      .replace('{nodes}', all.filter((r) => r.nodes.length).length).replace('{kel}', all.length)
      .replace('{up}', all.reduce((n, r) => n + r.up, 0)).replace('{down}', all.reduce((n, r) => n + r.down, 0));
    det.append(sum);
    const table = document.createElement('table');
    table.className = 'ov-table';
    const head = document.createElement('thead');
    head.innerHTML = '<tr><th scope="col"></th><th scope="col"></th><th scope="col"></th><th scope="col"></th><th scope="col"></th><th scope="col"></th></tr>';
    ['col.kelurahan', 'col.state', 'overview.cams', 'col.recording', 'overview.storage', 'overview.lastsync'].forEach((k, i) => { head.rows[0].cells[i].textContent = t(k); });
    table.append(head);
    const tbody = document.createElement('tbody');
    const kecList = [...kecs.entries()].sort((a, b) => score(b[1]) - score(a[1]) || a[0].localeCompare(b[0]));
    for (const [kec, list] of kecList) {
      const th = document.createElement('tr');
      th.className = 'ov-kec';
      const td = cell(t('col.kecamatan') + ' ' + kec);
      td.colSpan = 6;
      th.append(td);
      tbody.append(th);
      list.sort((a, b) => b.problem - a.problem || (b.nodes.length - a.nodes.length) || a.name.localeCompare(b.name));
      // Kelurahan without a node yet: one compact row per kecamatan.
      const bare = list.filter((r) => r.nodes.length === 0 && r.up + r.down === 0);
      const bareRow = () => {
        if (bare.length === 0) return;
        const tr = document.createElement('tr');
        tr.className = 'muted ov-bare';
        tr.dataset.kelurahan = bare.map((r) => r.code).join(' ');
        const td = cell(t('overview.nonode').replace('{n}', bare.length) + ': ' + bare.map((r) => r.name).join(', '));
        td.colSpan = 6;
        tr.append(td);
        tbody.append(tr);
      };
      for (const r of list) {
        if (bare.includes(r)) continue;
        const tr = document.createElement('tr');
        tr.dataset.kelurahan = r.code;
        tr.dataset.testid = 'ov-row';
        if (r.nodes.length === 0) tr.className = 'muted';
        const st = document.createElement('td');
        st.append(stateBadge(r));
        const camsTd = cell(r.nodes.length || r.up + r.down ? r.up + ' ▲ / ' + r.down + ' ▼' : '—', r.down > 0 ? 'bad' : '');
        if (r.down > 0) camsTd.title = [...r.reasons.entries()].map(([why, n]) => why + ' ×' + n).join('\n');
        const last = r.nodes.map((n) => n.last_seen).sort().pop();
        const days = r.nodes.map((n) => n.storage && n.storage.days_until_full).filter((d) => typeof d === 'number').sort((a, b) => a - b)[0];
        const storage = cell(typeof days === 'number' ? fmtDays(days) : '—', typeof days === 'number' && days < 2 ? 'bad' : '');
        storage.dataset.testid = 'ov-storage';
        tr.append(cell(r.name + ' (' + r.code + ')'), st, camsTd, cell(r.up + r.down ? r.recording + '/' + (r.up + r.down) : '—'), storage, cell(last ? fmtTime(last) : '—'));
        tbody.append(tr);
      }
      bareRow();
    }
    table.append(tbody);
    det.append(table);
    frag.append(det);
  }
  $('ov-groups').replaceChildren(frag);
  drawOverviewMap(rows, q);
  ov.renderMs = performance.now() - t0;
  document.body.dataset.overviewRenderMs = ov.renderMs.toFixed(1);
  document.body.dataset.overviewRows = String(shown.length);
}

// drawOverviewMap plots kelurahan offices and cameras by their coordinates
// (an equirectangular projection of the data's own bounds).
function drawOverviewMap(rows, q) {
  const canvas = $('ov-map');
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height;
  ctx.fillStyle = '#0b0f13';
  ctx.fillRect(0, 0, w, h);
  const pts = (ov.points || []).filter((p) => p.lat || p.lon);
  const offices = rows.filter((r) => r.lat || r.lon);
  const all = pts.map((p) => [p.lat, p.lon]).concat(offices.map((r) => [r.lat, r.lon]));
  if (all.length === 0) {
    ctx.fillStyle = '#9aa7b4';
    ctx.font = '14px system-ui';
    ctx.fillText(t('overview.nomap'), 16, 28);
    return;
  }
  let [minLat, maxLat, minLon, maxLon] = [90, -90, 180, -180];
  for (const [la, lo] of all) {
    minLat = Math.min(minLat, la); maxLat = Math.max(maxLat, la); minLon = Math.min(minLon, lo); maxLon = Math.max(maxLon, lo);
  }
  const pad = 0.01;
  minLat -= pad; maxLat += pad; minLon -= pad; maxLon += pad;
  const k = Math.min(w / (maxLon - minLon), h / ((maxLat - minLat) * 1.0));
  const x = (lo) => (lo - minLon) * k + (w - (maxLon - minLon) * k) / 2;
  const y = (la) => h - ((la - minLat) * k + (h - (maxLat - minLat) * k) / 2);
  ov.project = { x, y };
  // Kelurahan offices: grey; with a node: the node's state.
  const colour = { online: '#3ecf8e', degraded: '#ffd166', offline: '#ff6b6b', nonode: '#3a4754' };
  for (const r of offices) {
    const hit = q && ovMatches(r, q);
    ctx.fillStyle = hit ? '#4da3ff' : colour[r.state] || '#3a4754';
    const s = r.nodes.length ? 7 : 3;
    ctx.fillRect(x(r.lon) - s / 2, y(r.lat) - s / 2, s, s);
  }
  // Cameras: one pixel pair each, green streaming, red not.
  const up = new Set((ov.cameras || []).filter((c) => c.state === 'streaming').map((c) => c.id));
  ctx.fillStyle = '#3ecf8e';
  for (const p of pts) if (up.has(p.id)) ctx.fillRect(x(p.lon) - 1, y(p.lat) - 1, 2, 2);
  ctx.fillStyle = '#ff6b6b';
  for (const p of pts) if (!up.has(p.id)) ctx.fillRect(x(p.lon) - 1.5, y(p.lat) - 1.5, 3, 3);
  canvas.setAttribute('aria-label', t('overview.map').replace('{n}', pts.length).replace('{k}', offices.length));
}

async function showOverview() {
  show('overview');
  if (ui.me && ui.me.served_by === 'hub' && !ov.areasAll) {
    ov.areasAll = await api('/api/v1/areas?consistency=stale').then((r) => r.json()).then((b) => b.areas || []).catch(() => []);
  }
  await loadOverview();
  every(loadOverview);
}

$('ov-filter').addEventListener('input', () => { if (ov.nodes) renderOverview(); });
$('ov-problems').addEventListener('change', () => { if (ov.nodes) renderOverview(); });
$('ov-map').addEventListener('click', (ev) => {
  if (!ov.project) return;
  const rect = ev.target.getBoundingClientRect();
  const px = (ev.clientX - rect.left) * (ev.target.width / rect.width), py = (ev.clientY - rect.top) * (ev.target.height / rect.height);
  let best = null, bd = 1e9;
  for (const r of overviewRows()) {
    if (!(r.lat || r.lon)) continue;
    const d = (ov.project.x(r.lon) - px) ** 2 + (ov.project.y(r.lat) - py) ** 2;
    if (d < bd) { bd = d; best = r; }
  }
  if (best && bd < 400) { $('ov-filter').value = best.name; renderOverview(); }
});
