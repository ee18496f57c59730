// Ronda web UI: login, nodes, cameras, live (WHEP) and playback (fMP4).
'use strict';

const $ = (id) => document.getElementById(id);
const views = ['login', 'nodes', 'cameras', 'live', 'playback'];
let me = null;
let livePC = null;
let liveLocation = null;
let cameras = [];

function token() { return sessionStorage.getItem('ronda.token'); }

function setStatus(msg, isError) {
  const el = $('status');
  el.textContent = msg || '';
  el.className = isError ? 'error' : '';
}

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (token()) headers.Authorization = 'Bearer ' + token();
  const resp = await fetch(path, Object.assign({}, opts, { headers }));
  if (resp.status === 401 && path !== '/api/v1/login') {
    sessionStorage.removeItem('ronda.token');
    location.hash = '#/login';
    throw new Error(t('loggedout'));
  }
  if (!resp.ok) {
    let msg = resp.status + ' ' + resp.statusText;
    try { const body = await resp.json(); if (body.error) msg = body.error; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return resp;
}

function show(view) {
  views.forEach((v) => { $('view-' + v).hidden = v !== view; });
  $('nav').hidden = view === 'login';
  if (view !== 'live') stopLive();
}

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fmtTime(s) {
  if (!s) return '—';
  const d = new Date(s);
  return isNaN(d) ? '—' : d.toLocaleString(lang === 'id' ? 'id-ID' : 'en-GB');
}

async function loadMe() {
  me = await (await api('/api/v1/me')).json();
  $('served-by').textContent = me.served_by === 'hub' ? '· ' + t('hub') : '· ' + me.name;
  $('whoami').textContent = me.user + ' (' + me.role + ')';
}

async function showNodes() {
  show('nodes');
  const { nodes } = await (await api('/api/v1/nodes')).json();
  const tbody = $('nodes-table').querySelector('tbody');
  tbody.replaceChildren();
  nodes.forEach((n) => {
    const tr = document.createElement('tr');
    tr.dataset.kelurahan = n.kelurahan_code;
    tr.append(cell(n.kelurahan + ' (' + n.kelurahan_code + ')'), cell(n.kecamatan), cell(n.kota),
      cell(n.online ? t('online') : t('offline'), n.online ? 'ok' : 'bad'),
      cell(fmtTime(n.last_seen)), cell(String(n.cameras)));
    tbody.append(tr);
  });
}

async function showCameras() {
  show('cameras');
  cameras = (await (await api('/api/v1/cameras')).json()).cameras;
  const tbody = $('cameras-table').querySelector('tbody');
  tbody.replaceChildren();
  cameras.forEach((c) => {
    const tr = document.createElement('tr');
    tr.dataset.camera = c.id;
    const state = t('state.' + c.state) + (c.reason ? ' — ' + c.reason : '');
    const video = c.codec ? c.codec + ' ' + c.width + '×' + c.height : '—';
    const actions = document.createElement('td');
    const live = document.createElement('a');
    live.href = '#/live/' + encodeURIComponent(c.id);
    live.textContent = t('btn.live');
    live.className = 'button';
    const pb = document.createElement('a');
    pb.href = '#/playback/' + encodeURIComponent(c.id);
    pb.textContent = t('btn.playback');
    pb.className = 'button';
    actions.append(live, ' ', pb);
    tr.append(cell(c.name + ' (' + c.id + ')'), cell(c.kelurahan), cell(state, c.state === 'streaming' ? 'ok' : 'bad'),
      cell(video), cell(c.recording ? t('yes') : t('no'), c.recording ? 'ok' : 'bad'), actions);
    tbody.append(tr);
  });
}

function stopLive() {
  if (livePC) { livePC.close(); livePC = null; }
  if (liveLocation) { api(liveLocation, { method: 'DELETE' }).catch(() => {}); liveLocation = null; }
  const v = $('live-video');
  if (v) v.srcObject = null;
}

async function showLive(id) {
  show('live');
  $('live-name').textContent = id;
  $('live-to-playback').href = '#/playback/' + encodeURIComponent(id);
  const status = $('live-status');
  status.textContent = t('live.connecting');
  const pc = new RTCPeerConnection();
  livePC = pc;
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.ontrack = (ev) => { $('live-video').srcObject = ev.streams[0] || new MediaStream([ev.track]); };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === 'connected') status.textContent = t('live.playing');
    if (pc.connectionState === 'failed') status.textContent = t('live.error') + ': ICE';
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      const timer = setTimeout(resolve, 1000);
      pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') { clearTimeout(timer); resolve(); } };
    });
    const resp = await api('/api/v1/cameras/' + encodeURIComponent(id) + '/whep', {
      method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp,
    });
    liveLocation = resp.headers.get('Location');
    await pc.setRemoteDescription({ type: 'answer', sdp: await resp.text() });
  } catch (err) {
    status.textContent = t('live.error') + ': ' + err.message;
    status.className = 'error';
  }
}

function renderTimeline(rec) {
  const el = $('timeline');
  el.replaceChildren();
  const from = new Date(rec.from).getTime();
  const span = new Date(rec.to).getTime() - from;
  const bar = (s, e, cls, title) => {
    const d = document.createElement('div');
    d.className = cls;
    d.style.left = (100 * (new Date(s).getTime() - from) / span) + '%';
    d.style.width = Math.max(0.3, 100 * (new Date(e) - new Date(s)) / span) + '%';
    d.title = title;
    el.append(d);
  };
  rec.spans.forEach((s) => bar(s.start, s.end, 'span', t('playback.recorded')));
  rec.gaps.forEach((g) => bar(g.start, g.end, 'gap', t('playback.gap') + ': ' + g.reason));
  const list = $('gaps');
  list.replaceChildren();
  rec.gaps.forEach((g) => {
    const li = document.createElement('li');
    li.textContent = fmtTime(g.start) + ' – ' + fmtTime(g.end) + ': ' + g.reason;
    list.append(li);
  });
}

async function loadPlayback(id) {
  const minutes = Number($('playback-range').value);
  const to = new Date(Date.now() - 3000);
  const from = new Date(to.getTime() - minutes * 60000);
  const q = 'from=' + encodeURIComponent(from.toISOString()) + '&to=' + encodeURIComponent(to.toISOString());
  const status = $('playback-status');
  status.textContent = t('playback.loading');
  status.className = '';
  try {
    const rec = await (await api('/api/v1/cameras/' + encodeURIComponent(id) + '/recordings?' + q)).json();
    renderTimeline(rec);
    const blob = await (await api('/api/v1/cameras/' + encodeURIComponent(id) + '/media.mp4?' + q)).blob();
    const v = $('playback-video');
    if (v.src) URL.revokeObjectURL(v.src);
    v.src = URL.createObjectURL(blob);
    await v.play().catch(() => {});
    status.textContent = fmtTime(from) + ' – ' + fmtTime(to) + ' (' + Math.round(blob.size / 1024) + ' KiB)';
  } catch (err) {
    status.textContent = err.message;
    status.className = 'error';
  }
}

function showPlayback(id) {
  show('playback');
  $('playback-name').textContent = id;
  $('playback-form').onsubmit = (ev) => { ev.preventDefault(); loadPlayback(id); };
  loadPlayback(id);
}

async function route() {
  setStatus('');
  const [, view, arg] = location.hash.split('/');
  if (!token()) { show('login'); return; }
  try {
    if (!me) await loadMe();
    switch (view) {
      case 'cameras': await showCameras(); break;
      case 'live': await showLive(decodeURIComponent(arg)); break;
      case 'playback': showPlayback(decodeURIComponent(arg)); break;
      default: await showNodes();
    }
  } catch (err) {
    setStatus(err.message, true);
  }
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  try {
    const resp = await api('/api/v1/login', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user: $('login-user').value, password: $('login-password').value }),
    });
    sessionStorage.setItem('ronda.token', (await resp.json()).token);
    me = null;
    location.hash = '#/nodes';
    route();
  } catch (err) {
    setStatus(err.message, true);
  }
});

$('logout').addEventListener('click', () => {
  sessionStorage.removeItem('ronda.token');
  me = null;
  location.hash = '#/login';
});

$('lang-toggle').addEventListener('click', () => {
  lang = lang === 'id' ? 'en' : 'id';
  localStorage.setItem('ronda.lang', lang);
  applyI18n();
  if (me) { me = null; route(); }
});

window.addEventListener('hashchange', route);
applyI18n();
route();
