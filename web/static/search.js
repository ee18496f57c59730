// Search: which cameras had footage at this place and time. Pick the place
// on the map (drawn from the kelurahan offices), or name an area; a radius,
// tags and a time window. Answered by the hub's catalog (GET /api/v1/search).
'use strict';

const srch = { areas: null, at: null, project: null };

function drawSearchMap() {
  const canvas = $('search-map');
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height;
  ctx.fillStyle = '#0b0f13';
  ctx.fillRect(0, 0, w, h);
  // The mainland's kelurahan (the islands would shrink everything else).
  const pts = (srch.areas || []).filter((a) => a.level === 'kelurahan' && a.lat < -6.05);
  if (!pts.length) return;
  let [minLat, maxLat, minLon, maxLon] = [90, -90, 180, -180];
  for (const a of pts) { minLat = Math.min(minLat, a.lat); maxLat = Math.max(maxLat, a.lat); minLon = Math.min(minLon, a.lon); maxLon = Math.max(maxLon, a.lon); }
  minLat -= 0.01; maxLat += 0.01; minLon -= 0.01; maxLon += 0.01;
  const k = Math.min(w / (maxLon - minLon), h / (maxLat - minLat));
  const x = (lo) => (lo - minLon) * k + (w - (maxLon - minLon) * k) / 2;
  const y = (la) => h - ((la - minLat) * k + (h - (maxLat - minLat) * k) / 2);
  srch.project = { x, y, lon: (px) => (px - (w - (maxLon - minLon) * k) / 2) / k + minLon, lat: (py) => (h - py - (h - (maxLat - minLat) * k) / 2) / k + minLat, k };
  ctx.fillStyle = '#3a4754';
  for (const a of pts) ctx.fillRect(x(a.lon) - 2, y(a.lat) - 2, 4, 4);
  for (const c of srch.results || []) {
    ctx.fillStyle = c.state === 'streaming' ? '#3ecf8e' : '#ff6b6b';
    ctx.fillRect(x(c.lon) - 3, y(c.lat) - 3, 6, 6);
  }
  if (srch.at) {
    const r = Number($('search-radius').value) || 500;
    const pxPerM = k / 111320;
    ctx.strokeStyle = '#4da3ff';
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(x(srch.at.lon), y(srch.at.lat), Math.max(3, r * pxPerM), 0, 2 * Math.PI);
    ctx.stroke();
  }
}

async function runSearch(ev) {
  if (ev) ev.preventDefault();
  const q = new URLSearchParams();
  const from = new Date($('search-from').value), to = new Date($('search-to').value);
  if (!isNaN(from) && !isNaN(to)) { q.set('from', from.toISOString()); q.set('to', to.toISOString()); }
  if (srch.at) { q.set('lat', srch.at.lat.toFixed(6)); q.set('lon', srch.at.lon.toFixed(6)); q.set('radius_m', $('search-radius').value || '500'); }
  const area = $('search-area').value.trim();
  if (area) q.set(area.split('.').length >= 4 ? 'kelurahan' : area.split('.').length === 3 ? 'kecamatan' : 'kota', area);
  for (const tag of $('search-tags').value.split(',').map((s) => s.trim()).filter(Boolean)) q.append('tag', tag);
  q.set('limit', '500');
  try {
    const res = await (await api('/api/v1/search?' + q)).json();
    srch.results = res.cameras || [];
    $('search-summary').textContent = t('search.found').replace('{n}', res.total).replace('{scanned}', res.scanned);
    const tbody = $('search-table').querySelector('tbody');
    tbody.replaceChildren();
    if (!srch.results.length) emptyRow(tbody, 5, 'search.none');
    for (const c of srch.results) {
      const tr = document.createElement('tr');
      tr.dataset.camera = c.id;
      const actions = document.createElement('td');
      actions.className = 'actions';
      actions.append(linkButton('#/playback/' + encodeURIComponent(c.id), t('btn.playback'), t('btn.playback') + ': ' + c.id, 'search-playback'));
      tr.append(cell(c.name + ' (' + c.id + ')'), cell(c.kelurahan + ', ' + c.kecamatan),
        cell(c.distance_m ? Math.round(c.distance_m) + ' m' : '—'), cell(Math.round(c.recorded_seconds) + ' s'), actions);
      tbody.append(tr);
    }
    drawSearchMap();
  } catch (err) {
    setStatus(err.message, true);
  }
}

async function showSearch() {
  show('search');
  if (!srch.areas) srch.areas = await api('/api/v1/areas?consistency=stale').then((r) => r.json()).then((b) => b.areas || []).catch(() => []);
  if (!$('search-from').value) {
    const to = new Date(Date.now() - 3000);
    $('search-from').value = localInput(new Date(to.getTime() - 15 * 60000));
    $('search-to').value = localInput(to);
  }
  drawSearchMap();
}

$('search-map').addEventListener('click', (ev) => {
  if (!srch.project) return;
  const c = ev.target, r = c.getBoundingClientRect();
  const px = (ev.clientX - r.left) * (c.width / r.width), py = (ev.clientY - r.top) * (c.height / r.height);
  srch.at = { lat: srch.project.lat(py), lon: srch.project.lon(px) };
  $('search-at').textContent = srch.at.lat.toFixed(5) + ', ' + srch.at.lon.toFixed(5);
  drawSearchMap();
});
$('search-clear-at').addEventListener('click', () => { srch.at = null; $('search-at').textContent = t('search.noplace'); drawSearchMap(); });
$('search-form').addEventListener('submit', runSearch);
