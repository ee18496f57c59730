// Ronda web UI: login, city overview (overview.js), video wall (wall.js),
// search (search.js), nodes, cameras, the camera page (live view and its
// timeline), evidence, audit and admin (evidence.js, audit.js, admin.js).
// Plain JavaScript, no build step. Hash routes: #/login #/overview #/wall
// #/search #/nodes #/cameras #/camera/{id} #/live/{id} #/playback/{id}
// #/evidence #/audit #/admin.
'use strict';

const $ = (id) => document.getElementById(id);
const VIEWS = ['login', 'overview', 'wall', 'search', 'nodes', 'cameras', 'camhead', 'live', 'playback', 'evidence', 'cases', 'audit', 'admin'];
// The camera page is the live view and the playback view together, under
// a heading with the camera's state.
const SECTIONS = { camera: ['camhead', 'live', 'playback'], live: ['camhead', 'live'], playback: ['camhead', 'playback'] };
const NAV = [['nav-overview', 'overview'], ['nav-wall', 'wall'], ['nav-search', 'search'], ['nav-nodes', 'nodes'],
  ['nav-cameras', 'cameras'], ['nav-evidence', 'evidence'], ['nav-cases', 'cases'], ['nav-audit', 'audit'], ['nav-admin', 'admin']];
const REFRESH_MS = 15000; // nodes and cameras tables refresh while shown

const ui = {
  view: null,
  me: null,
  flash: '', // a message for the next route (e.g. why we are back at login)
  nodes: null, // last data, re-rendered when the language changes
  cameras: null,
  refresh: 0,
  liveId: null,
  live: null, // { id, pc, location, status: [i18n key, detail, isError] }
  playbackAbort: null,
  rec: null,
};

function token() { return sessionStorage.getItem('ronda.token'); }

function setStatus(msg, isError) {
  const el = $('status');
  el.textContent = msg || '';
  el.className = isError ? 'error' : '';
}

// api calls the JSON API with the session's bearer token. A 401 ends the
// session (back to login); other errors throw the server's {"error"} text.
async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers);
  const sent = token();
  if (sent) headers.Authorization = 'Bearer ' + sent;
  const resp = await fetch(path, Object.assign({}, opts, { headers }));
  // Only a refusal of the session's current token ends it: a late answer
  // to a call made before a logout (or another login) must not.
  if (resp.status === 401 && path !== '/api/v1/login' && sent && sent === token()) {
    endSession(t('loggedout'), false); // keep the page: after login the user is back where they were
    throw new Error(t('loggedout'));
  }
  if (!resp.ok) {
    let msg = resp.status + ' ' + resp.statusText;
    try {
      const body = await resp.json();
      if (body && body.error) msg = body.error;
    } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return resp;
}

function endSession(msg, toLogin) {
  stopLive(); // while the token still authorizes the DELETE
  sessionStorage.removeItem('ronda.token');
  ui.me = null;
  ui.flash = msg || '';
  renderHeader();
  if (toLogin && location.hash !== '#/login') location.hash = '#/login'; // hashchange routes
  else route();
}

function show(view) {
  const shown = SECTIONS[view] || [view];
  if (ui.view && (SECTIONS[ui.view] || [ui.view]).includes('live')) stopLive();
  if (ui.view && (SECTIONS[ui.view] || [ui.view]).includes('playback')) stopPlayback();
  if (ui.view === 'wall') stopWall();
  clearInterval(ui.refresh);
  ui.refresh = 0;
  ui.view = view;
  VIEWS.forEach((v) => { $('view-' + v).hidden = !shown.includes(v); });
  document.body.dataset.view = view;
  $('nav').hidden = view === 'login';
  NAV.forEach(([id, v]) => {
    if (v === view) $(id).setAttribute('aria-current', 'page'); else $(id).removeAttribute('aria-current');
  });
}

// can reports whether the logged-in user may do action at all (GET
// /api/v1/me lists them): menus and buttons a role would get 403 for are
// not shown. The server decides each call anyway.
function can(action) { return !!(ui.me && (ui.me.can || []).includes(action)); }

function every(load) {
  ui.refresh = setInterval(() => load().catch((err) => setStatus(err.message, true)), REFRESH_MS);
}

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

// button makes a button: its text, the name a screen reader says (the
// text and what it acts on), a test id, and what a click does.
function button(text, label, testid, onclick, secondary) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.setAttribute('aria-label', label);
  if (testid) b.dataset.testid = testid;
  if (secondary) b.className = 'secondary-btn';
  b.onclick = onclick;
  return b;
}

function emptyRow(tbody, cols, key, text) {
  const tr = document.createElement('tr');
  const td = cell(text || t(key), text ? 'bad' : 'muted');
  td.colSpan = cols;
  tr.append(td);
  tbody.append(tr);
}

function fmtTime(s) {
  if (!s) return '—';
  const d = new Date(s);
  return isNaN(d) ? '—' : d.toLocaleString(lang === 'id' ? 'id-ID' : 'en-GB');
}

function fmtRange(from, to) {
  const a = new Date(from), b = new Date(to);
  if (isNaN(a) || isNaN(b)) return '—';
  const secs = Math.round((b - a) / 1000);
  const dur = secs < 120 ? secs + ' s' : Math.round(secs / 60) + ' min';
  return fmtTime(from) + ' – ' + b.toLocaleTimeString(lang === 'id' ? 'id-ID' : 'en-GB') + ' (' + dur + ')';
}

function fmtBytes(n) {
  if (!n) return '';
  if (n < 1 << 20) return Math.round(n / 1024) + ' KiB';
  return (n / (1 << 20)).toFixed(1) + ' MiB';
}

function fmtDuration(ms) {
  if (ms <= 0) return '0';
  const h = ms / 3600000;
  if (h < 1) return Math.ceil(ms / 60000) + ' min';
  if (h < 48) return Math.round(h) + ' ' + t('ev.hours');
  return Math.round(h / 24) + ' ' + t('overview.days');
}

// saveFile downloads an API file with the session's token (a plain link
// would not carry it).
async function saveFile(url, name) {
  const blob = await (await api(url)).blob();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  return blob;
}

// ---- header ----

async function loadMe() {
  ui.me = await (await api('/api/v1/me')).json();
  renderHeader();
}

function renderHeader() {
  const me = ui.me;
  $('served-by').textContent = !me ? '' :
    '· ' + (me.served_by === 'hub' ? (me.name || t('hub')) : (me.name.startsWith('Kelurahan') ? me.name : t('kelurahan') + ' ' + me.name));
  $('whoami').textContent = me ? me.user + ' (' + t('role.' + me.role) + ')' : '';
  // City-wide search is the hub's; the rest follows what the role may do.
  $('nav-search').hidden = !me || me.served_by !== 'hub';
  $('nav-wall').hidden = !can('live');
  $('nav-evidence').hidden = !can('exports-read') && !can('holds-read');
  $('nav-audit').hidden = !can('audit-read');
  $('nav-cases').hidden = !can('case') || me.served_by !== 'hub'; // cases are the hub's
  $('nav-admin').hidden = !can('users') && !can('cluster') && !can('enrollment');
}

// ---- nodes ----

async function loadNodes() {
  ui.nodes = (await (await api('/api/v1/nodes')).json()).nodes || [];
  if (ui.view === 'nodes') renderNodes();
}

function renderNodes() {
  const tbody = $('nodes-table').querySelector('tbody');
  tbody.replaceChildren();
  if (!ui.nodes || ui.nodes.length === 0) { emptyRow(tbody, 6, 'nodes.empty'); return; }
  ui.nodes.forEach((n) => {
    const tr = document.createElement('tr');
    tr.dataset.node = n.node_id;
    tr.dataset.kelurahan = n.kelurahan_code;
    const badge = document.createElement('td');
    const b = document.createElement('span');
    b.className = 'badge ' + (n.online ? 'ok' : 'bad');
    b.textContent = n.online ? t('online') : t('offline');
    badge.append(b);
    tr.append(cell(n.kelurahan + ' (' + n.kelurahan_code + ')'), cell(n.kecamatan), cell(n.kota), badge,
      cell(fmtTime(n.last_seen)), cell(String(n.cameras)));
    tbody.append(tr);
  });
}

async function showNodes() {
  show('nodes');
  await loadNodes();
  every(loadNodes);
}

// ---- cameras ----

async function loadCameras() {
  ui.cameras = (await (await api('/api/v1/cameras')).json()).cameras || [];
  if (ui.view === 'cameras') renderCameras();
}

function linkButton(href, text, label, testid) {
  const a = document.createElement('a');
  a.href = href;
  a.textContent = text;
  a.className = 'button';
  a.setAttribute('aria-label', label);
  a.dataset.testid = testid;
  return a;
}

function renderCameras() {
  const tbody = $('cameras-table').querySelector('tbody');
  tbody.replaceChildren();
  if (!ui.cameras || ui.cameras.length === 0) { emptyRow(tbody, 6, 'cameras.empty'); return; }
  ui.cameras.forEach((c) => {
    const tr = document.createElement('tr');
    tr.dataset.camera = c.id;
    const state = t('state.' + c.state) + (c.state !== 'streaming' && c.reason ? ' — ' + c.reason : '');
    const video = c.codec ? c.codec + ' ' + c.width + '×' + c.height : '—';
    const id = encodeURIComponent(c.id);
    const actions = document.createElement('td');
    actions.className = 'actions';
    actions.append(linkButton('#/camera/' + id, t('btn.open'), t('btn.open') + ': ' + c.name, 'camera-open'));
    if (can('live')) actions.append(' ', linkButton('#/live/' + id, t('btn.live'), t('btn.live') + ': ' + c.name, 'camera-live'));
    if (can('playback')) actions.append(' ', linkButton('#/playback/' + id, t('btn.playback'), t('btn.playback') + ': ' + c.name, 'camera-playback'));
    const name = document.createElement('td');
    const a = document.createElement('a');
    a.href = '#/camera/' + id;
    a.textContent = c.name + ' (' + c.id + ')';
    name.append(a);
    tr.append(name, cell(c.kelurahan), cell(state, c.state === 'streaming' ? 'ok' : 'bad'),
      cell(video), cell(c.recording ? t('yes') : t('no'), c.recording ? 'ok' : 'bad'), actions);
    tbody.append(tr);
  });
}

async function showCameras() {
  show('cameras');
  await loadCameras();
  every(loadCameras);
}

// ---- live (WHEP) ----

function setLiveStatus(live, key, detail, isError) {
  if (ui.live !== live) return; // a newer session (or none) owns the page
  live.status = [key, detail || '', !!isError];
  renderLiveStatus();
}

function renderLiveStatus() {
  const [key, detail, isError] = ui.live ? ui.live.status : ['', '', false];
  const el = $('live-status');
  el.textContent = key ? t(key) + (detail ? ': ' + detail : '') : '';
  el.className = isError ? 'error' : '';
  $('live-retry').hidden = !isError;
}

// ICE servers (the hub's TURN relay, with short-lived credentials) are
// fetched once and refreshed every 30 minutes.
const ice = { servers: null, at: 0 };

async function iceServers() {
  if (ice.servers && Date.now() - ice.at < 30 * 60000) return ice.servers;
  try {
    const body = await (await api('/api/v1/live/ice-servers')).json();
    ice.servers = body.ice_servers || [];
    ice.at = Date.now();
  } catch (_) {
    ice.servers = ice.servers || []; // live view still works directly
  }
  return ice.servers;
}

function relayOnly() { return localStorage.getItem('ronda.liveRelay') === '1'; }
// The light sub stream (grids, thin links) or the main one (default).
function liveStream() { return localStorage.getItem('ronda.liveStream') === 'sub' ? 'sub' : 'main'; }

// deleteSession ends a WHEP session; keepalive lets it finish while the
// page is being closed.
function deleteSession(location) {
  const headers = token() ? { Authorization: 'Bearer ' + token() } : {};
  fetch(location, { method: 'DELETE', headers, keepalive: true }).catch(() => {});
}

// trickle sends the browser's candidates gathered after the offer to the
// session (WHEP PATCH, RFC 8840 fragments), batched per event-loop turn.
function trickle(live) {
  const pending = [];
  let done = false;
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (!live.location || (!pending.length && !done) || ui.live !== live) return;
    const sdp = live.pc.localDescription.sdp;
    const ufrag = (sdp.match(/a=ice-ufrag:(.*)\r?\n/) || [])[1];
    const pwd = (sdp.match(/a=ice-pwd:(.*)\r?\n/) || [])[1];
    let frag = 'a=ice-ufrag:' + ufrag + '\r\na=ice-pwd:' + pwd + '\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n';
    for (const c of pending.splice(0)) frag += 'a=' + c + '\r\n';
    if (done) { frag += 'a=end-of-candidates\r\n'; done = false; }
    api(live.location, { method: 'PATCH', headers: { 'Content-Type': 'application/trickle-ice-sdpfrag' }, body: frag })
      .catch(() => {}); // a lost candidate only costs a path; the host ones are in the offer
  };
  const schedule = () => { if (!scheduled) { scheduled = true; setTimeout(flush, 0); } };
  live.pc.onicecandidate = (ev) => {
    if (ev.candidate && ev.candidate.candidate) pending.push(ev.candidate.candidate);
    else done = true;
    schedule();
  };
  return schedule; // called once the session's Location is known
}

async function showPath(live) {
  try {
    const s = await (await api(live.location)).json();
    if (ui.live !== live) return;
    live.info = s;
    const v = $('live-video');
    $('live-path').textContent = (s.path ? t('live.path.' + s.path) : '') +
      ' · ' + t('live.stream.' + (s.stream || 'main')) + (v.videoWidth ? ' ' + v.videoWidth + '×' + v.videoHeight : '') +
      (s.first_frame_ms ? ' · ' + t('live.firstframe') + ' ' + s.first_frame_ms + ' ms' : '');
  } catch (_) { /* informative only */ }
}

async function startLive(id) {
  stopLive();
  const servers = await iceServers();
  if (!isLiveView() || ui.liveId !== id || ui.live) return; // left (or restarted) meanwhile
  $('live-relay-label').hidden = !servers.some((s) => (s.urls || []).some((u) => u.startsWith('turn')));
  $('live-relay').checked = relayOnly();
  $('live-stream').value = liveStream();
  const pc = new RTCPeerConnection({ iceServers: servers, iceTransportPolicy: relayOnly() && servers.length ? 'relay' : 'all' });
  const live = { id, pc, location: null, status: ['live.connecting', '', false] };
  ui.live = live;
  renderLiveStatus();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.ontrack = (ev) => { $('live-video').srcObject = ev.streams[0] || new MediaStream([ev.track]); };
  pc.onconnectionstatechange = () => {
    switch (pc.connectionState) {
      case 'connected':
        if (live.status[0] !== 'live.playing') setLiveStatus(live, 'live.waiting');
        setTimeout(() => showPath(live), 500);
        break;
      case 'disconnected': setLiveStatus(live, 'live.disconnected'); break;
      case 'failed': setLiveStatus(live, 'live.error', 'ICE', true); break;
      default:
    }
  };
  const flush = trickle(live);
  try {
    await pc.setLocalDescription(await pc.createOffer());
    // Trickle ICE: the offer goes at once with the candidates gathered so
    // far; later ones (a TURN relay's) follow by PATCH.
    const q = new URLSearchParams();
    if (liveStream() === 'sub') q.set('stream', 'sub');
    if (localStorage.getItem('ronda.gopCache') === '0') q.set('gop_cache', '0'); // for benchmarks
    const resp = await api('/api/v1/cameras/' + encodeURIComponent(id) + '/whep' + (q.toString() ? '?' + q : ''), {
      method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp,
    });
    const location = resp.headers.get('Location');
    const answer = await resp.text();
    if (ui.live !== live) { if (location) deleteSession(location); return; } // left meanwhile
    live.location = location;
    const warning = resp.headers.get('Ronda-Warning');
    $('live-warning').hidden = !warning;
    $('live-warning').textContent = warning ? t('live.bframes') + ' (' + warning + ')' : '';
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    flush();
  } catch (err) {
    setLiveStatus(live, 'live.error', err.message, true);
  }
}

function stopLive() {
  const live = ui.live;
  ui.live = null;
  if (live) {
    if (live.location) deleteSession(live.location); // before close(): the server ends it cleanly
    live.pc.close();
  }
  $('live-video').srcObject = null;
  $('live-path').textContent = '';
  $('live-warning').hidden = true;
  renderLiveStatus();
}

function isLiveView() { return ui.view === 'live' || ui.view === 'camera'; }

function showLive(id) {
  show('live');
  ui.liveId = id;
  $('live-name').textContent = id;
  $('live-to-playback').href = '#/playback/' + encodeURIComponent(id);
  startLive(id);
  showCameraState(id);
}

// ---- playback ----

function setPlaybackStatus(msg, isError) {
  const el = $('playback-status');
  el.textContent = msg || '';
  el.className = isError ? 'error' : '';
}

function localInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' +
    p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
}

function playbackRange() {
  const v = $('playback-range').value;
  if (v === 'custom') {
    // datetime-local values have no offset: they are parsed as local time.
    const from = new Date($('playback-from').value);
    const to = new Date($('playback-to').value);
    return isNaN(from) || isNaN(to) || from >= to ? null : { from, to };
  }
  const to = new Date(Date.now() - 3000); // the last seconds are still being written
  return { from: new Date(to.getTime() - Number(v) * 60000), to };
}

function renderTimeline(rec) {
  const el = $('timeline');
  el.replaceChildren();
  const from = new Date(rec.from).getTime();
  const span = Math.max(1, new Date(rec.to).getTime() - from);
  const bar = (s, e, cls, title) => {
    const d = document.createElement('div');
    d.className = cls;
    d.style.left = (100 * (new Date(s).getTime() - from) / span) + '%';
    d.style.width = Math.max(0.3, 100 * (new Date(e) - new Date(s)) / span) + '%';
    d.title = title;
    el.append(d);
  };
  const spans = rec.spans || [];
  const gaps = rec.gaps || [];
  spans.forEach((s) => bar(s.start, s.end, 'span', t('playback.recorded') + ': ' + fmtTime(s.start) + ' – ' + fmtTime(s.end)));
  const why = (g) => t('gap.' + g.reason) + (g.detail ? ' (' + g.detail + ')' : '');
  gaps.forEach((g) => bar(g.start, g.end, 'gap', t('playback.gap') + ': ' + why(g)));
  $('timeline-from').textContent = fmtTime(rec.from);
  $('timeline-to').textContent = fmtTime(rec.to);
  const list = $('gaps');
  list.replaceChildren();
  if (gaps.length === 0) {
    const li = document.createElement('li');
    li.textContent = t('playback.nogaps');
    list.append(li);
  }
  gaps.forEach((g) => {
    const li = document.createElement('li');
    li.textContent = t('playback.gap') + ' ' + fmtTime(g.start) + ' – ' + fmtTime(g.end) + ': ' + why(g);
    list.append(li);
  });
}

async function loadPlayback(id, opts = {}) {
  const range = playbackRange();
  if (!range) { setPlaybackStatus(t('playback.badrange'), true); return; }
  if (ui.playbackAbort) ui.playbackAbort.abort();
  const ctl = new AbortController();
  ui.playbackAbort = ctl;
  const base = '/api/v1/cameras/' + encodeURIComponent(id);
  const q = 'from=' + encodeURIComponent(range.from.toISOString()) + '&to=' + encodeURIComponent(range.to.toISOString());
  setPlaybackStatus(t('playback.loading'));
  try {
    ui.rec = await (await api(base + '/recordings?' + q, { signal: ctl.signal })).json();
    renderTimeline(ui.rec);
    const media = await api(base + '/media.mp4?' + q, { signal: ctl.signal });
    // The file's time 0 is this instant (an edit list skips to it).
    ui.mediaFrom = new Date(media.headers.get('X-Ronda-From') || range.from);
    const blob = await media.blob();
    const v = $('playback-video');
    if (v.src.startsWith('blob:')) URL.revokeObjectURL(v.src);
    v.src = URL.createObjectURL(blob);
    if (ui.seekTo) {
      const at = ui.seekTo;
      ui.seekTo = null;
      v.addEventListener('loadedmetadata', () => { v.currentTime = Math.max(0, (at - ui.mediaFrom) / 1000); }, { once: true });
    }
    if (opts.autoplay !== false || ui.seekTo) v.play().catch(() => { /* autoplay refused: the controls are there */ });
    if (typeof afterPlaybackLoad === 'function') afterPlaybackLoad(id);
    setPlaybackStatus(fmtTime(range.from) + ' – ' + fmtTime(range.to) + ' (' + Math.round(blob.size / 1024) + ' KiB)');
  } catch (err) {
    if (err.name !== 'AbortError') setPlaybackStatus(err.message, true);
  }
}

function stopPlayback() {
  if (ui.playbackAbort) ui.playbackAbort.abort();
  ui.playbackAbort = null;
  ui.rec = null;
  const v = $('playback-video');
  v.pause();
  if (v.src.startsWith('blob:')) URL.revokeObjectURL(v.src);
  v.removeAttribute('src');
  v.load();
  $('timeline').replaceChildren();
  $('gaps').replaceChildren();
  $('timeline-from').textContent = '';
  $('timeline-to').textContent = '';
  setPlaybackStatus('');
}

function showPlayback(id) {
  show('playback');
  cameraRights();
  $('playback-name').textContent = id;
  $('playback-form').onsubmit = (ev) => { ev.preventDefault(); loadPlayback(id); };
  loadPlayback(id);
  showCameraState(id);
}

// The camera page: the live view on top and, below it, the timeline of
// the last 15 minutes with its recorded spans, gaps and holds; a click on
// the timeline plays the recording there.
async function showCamera(id) {
  show('camera');
  cameraRights();
  $('live-name').textContent = id;
  $('playback-name').textContent = id;
  $('live-to-playback').href = '#/playback/' + encodeURIComponent(id);
  ui.liveId = id;
  $('view-live').hidden = !can('live');
  if (can('live')) startLive(id);
  if (can('playback')) {
    if ($('playback-range').value === 'custom') { $('playback-range').value = '15'; onRangeChange(); }
    $('playback-form').onsubmit = (ev) => { ev.preventDefault(); loadPlayback(id); };
    $('view-playback').hidden = false;
    loadPlayback(id, { autoplay: false });
  } else {
    $('view-playback').hidden = true;
  }
  await showCameraState(id);
}

// showCameraState says on the camera's page whether it is streaming and,
// if not, why.
async function showCameraState(id) {
  const el = $('camera-state');
  el.textContent = '';
  $('camhead-name').textContent = id;
  try {
    const c = await (await api('/api/v1/cameras/' + encodeURIComponent(id))).json();
    if (!$('view-camhead').hidden) {
      $('camhead-name').textContent = c.name + ' (' + c.id + ')';
      el.textContent = t('state.' + c.state) + (c.state !== 'streaming' && c.reason ? ' — ' + c.reason : '') +
        (c.codec ? ' · ' + c.codec + ' ' + c.width + '×' + c.height : '') + ' · ' + (c.recording ? t('cam.recording') : t('cam.notrecording'));
      el.className = c.state === 'streaming' ? 'ok' : 'bad';
    }
  } catch (err) {
    el.textContent = err.message;
    el.className = 'bad';
  }
}

function onRangeChange() {
  const custom = $('playback-range').value === 'custom';
  $('playback-custom').hidden = !custom;
  $('playback-custom-to').hidden = !custom;
  if (custom && !$('playback-from').value) {
    const to = new Date(Date.now() - 3000);
    $('playback-from').value = localInput(new Date(to.getTime() - 5 * 60000));
    $('playback-to').value = localInput(to);
  }
}

// ---- routing ----

async function route() {
  const [, view = '', arg = ''] = location.hash.split('/');
  setStatus(ui.flash, !!ui.flash);
  ui.flash = '';
  if (!token()) {
    show('login');
    return;
  }
  if (view === '' || view === 'login') { location.replace('#/overview'); return; } // hashchange routes again
  try {
    if (!ui.me) await loadMe();
    switch (view) {
      case 'overview': await showOverview(); break;
      case 'wall': await showWall(decodeURIComponent(arg)); break;
      case 'search': await showSearch(); break;
      case 'nodes': await showNodes(); break;
      case 'cameras': await showCameras(); break;
      case 'camera': await showCamera(decodeURIComponent(arg)); break;
      case 'live': showLive(decodeURIComponent(arg)); break;
      case 'playback': showPlayback(decodeURIComponent(arg)); break;
      case 'evidence': await showEvidence(); break;
      case 'cases': await showCases(decodeURIComponent(arg)); break;
      case 'audit': await showAudit(); break;
      case 'admin': await showAdmin(); break;
      default: location.replace('#/overview');
    }
  } catch (err) {
    setStatus(err.message, true);
  }
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  setStatus('');
  try {
    const resp = await api('/api/v1/login', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user: $('login-user').value, password: $('login-password').value }),
    });
    sessionStorage.setItem('ronda.token', (await resp.json()).token);
    $('login-password').value = '';
    ui.me = null;
    route(); // the page asked for (a deep link survives the login), else #/overview
  } catch (err) {
    setStatus(err.message, true);
  }
});

$('logout').addEventListener('click', () => endSession('', true));

$('lang-toggle').addEventListener('click', () => {
  lang = lang === 'id' ? 'en' : 'id';
  localStorage.setItem('ronda.lang', lang);
  applyI18n();
  renderHeader();
  if (ui.view === 'overview' && ov.nodes) renderOverview();
  if (ui.view === 'nodes') renderNodes();
  if (ui.view === 'cameras') renderCameras();
  renderLiveStatus();
  if ((ui.view === 'playback' || ui.view === 'camera') && ui.rec) { renderTimeline(ui.rec); renderSelection(); }
  if (ui.view === 'evidence') renderEvidence();
  if (ui.view === 'cases') renderCases();
  if (ui.view === 'audit') renderAudit();
  if (ui.view === 'admin') renderAdmin();
});

$('live-retry').addEventListener('click', () => { if (ui.liveId) startLive(ui.liveId); });
$('live-video').addEventListener('playing', () => {
  if (!ui.live) return;
  setLiveStatus(ui.live, 'live.playing');
  if (ui.live.location) showPath(ui.live); // now with the first frame's time
});
$('live-stream').addEventListener('change', (ev) => {
  localStorage.setItem('ronda.liveStream', ev.target.value);
  if (ui.liveId && isLiveView()) startLive(ui.liveId);
});
$('live-relay').addEventListener('change', (ev) => {
  localStorage.setItem('ronda.liveRelay', ev.target.checked ? '1' : '0');
  if (ui.liveId && isLiveView()) startLive(ui.liveId);
});
$('playback-range').addEventListener('change', onRangeChange);
window.addEventListener('hashchange', route);
window.addEventListener('pagehide', () => { stopLive(); stopWall(); });

applyI18n();
route();
