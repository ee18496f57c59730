// Video wall: 1, 4, 9 or 16 tiles, each a WHEP session of a camera's light
// sub stream; drag a camera from the list onto a tile (or pick it in the
// tile's menu); double-click a tile for the main stream, large. Tiles
// recover by themselves: a session that fails, or shows no new frame for 6
// s, is replaced, with a growing pause between tries. Layouts are saved by
// name in this browser.
'use strict';

const wall = { size: 4, tiles: [], cameras: [], health: null, gen: 0 };

// openWhep starts a WHEP session of camera id into video; onState(key,
// detail) reports progress. It returns { close, location }.
function openWhep(id, stream, video, onState) {
  const s = { closed: false, location: null, pc: null };
  (async () => {
    const servers = await iceServers();
    if (s.closed) return;
    const pc = new RTCPeerConnection({ iceServers: servers });
    s.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.ontrack = (ev) => { video.srcObject = ev.streams[0] || new MediaStream([ev.track]); };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed') onState('live.error', 'ICE');
      if (pc.connectionState === 'disconnected') onState('live.disconnected');
    };
    pc.onicecandidate = () => {};
    await pc.setLocalDescription(await pc.createOffer());
    const q = stream === 'sub' ? '?stream=sub' : '';
    const resp = await api('/api/v1/cameras/' + encodeURIComponent(id) + '/whep' + q, {
      method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp,
    });
    s.location = resp.headers.get('Location');
    video.dataset.session = s.location || '';
    const answer = await resp.text();
    if (s.closed) { if (s.location) deleteSession(s.location); return; }
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    onState('live.waiting');
  })().catch((err) => { if (!s.closed) onState('live.error', err.message); });
  s.close = () => {
    s.closed = true;
    if (s.location) deleteSession(s.location);
    if (s.pc) s.pc.close();
    video.srcObject = null;
  };
  return s;
}

function wallLayouts() {
  try { return JSON.parse(localStorage.getItem('ronda.walls') || '{}'); } catch (_) { return {}; }
}

function cameraName(id) {
  const c = wall.cameras.find((x) => x.id === id);
  return c ? c.name + ' · ' + (c.kelurahan || c.kelurahan_code || '') : id;
}

// Tile: one camera in one cell.
function makeTile(i) {
  const el = document.createElement('div');
  el.className = 'tile';
  el.dataset.testid = 'wall-tile';
  el.dataset.index = String(i);
  el.tabIndex = 0;
  const video = document.createElement('video');
  video.muted = true; video.autoplay = true; video.playsInline = true;
  const label = document.createElement('div');
  label.className = 'tile-label';
  const state = document.createElement('div');
  state.className = 'tile-state';
  state.setAttribute('role', 'status');
  const pick = document.createElement('select');
  pick.className = 'tile-pick';
  pick.setAttribute('aria-label', t('wall.pick') + ' ' + (i + 1));
  el.append(video, label, state, pick);
  const tile = { el, video, label, state, pick, id: '', stream: 'sub', session: null, frames: 0, lastFrame: 0, tries: 0, timer: 0 };
  const countFrames = () => {
    if (!video.isConnected) return;
    tile.frames++;
    tile.lastFrame = performance.now();
    el.dataset.frames = String(tile.frames);
    video.requestVideoFrameCallback(countFrames);
  };
  video.requestVideoFrameCallback(countFrames);
  video.addEventListener('playing', () => { tile.tries = 0; setTileState(tile, ''); });
  el.addEventListener('dragover', (ev) => { ev.preventDefault(); el.classList.add('drop'); });
  el.addEventListener('dragleave', () => el.classList.remove('drop'));
  el.addEventListener('drop', (ev) => {
    ev.preventDefault();
    el.classList.remove('drop');
    const id = ev.dataTransfer.getData('text/x-ronda-camera');
    if (id) assignTile(tile, id);
  });
  el.addEventListener('dblclick', () => toggleMain(tile));
  el.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' && ev.target === el) toggleMain(tile); });
  pick.addEventListener('change', () => assignTile(tile, pick.value));
  return tile;
}

function setTileState(tile, key, detail) {
  tile.state.textContent = key ? t(key) + (detail ? ': ' + detail : '') : '';
  tile.el.dataset.state = key || 'playing';
}

function fillPick(tile) {
  const opts = [['', t('wall.empty')]].concat(wall.cameras.map((c) => [c.id, cameraName(c.id)]));
  tile.pick.replaceChildren(...opts.map(([v, text]) => { const o = document.createElement('option'); o.value = v; o.textContent = text; return o; }));
  tile.pick.value = tile.id;
}

function startTile(tile) {
  if (tile.session) tile.session.close();
  tile.session = null;
  clearTimeout(tile.timer);
  tile.timer = 0;
  tile.el.dataset.camera = tile.id;
  tile.el.dataset.stream = tile.stream;
  tile.label.textContent = tile.id ? cameraName(tile.id) + (tile.stream === 'main' ? ' · HD' : '') : '';
  if (!tile.id) { setTileState(tile, 'wall.empty'); return; }
  const cam = wall.cameras.find((c) => c.id === tile.id);
  if (cam && cam.state !== 'streaming') {
    // Camera health at a glance: why this tile is dark, and keep trying.
    setTileState(tile, 'wall.camdown', cam.reason || t('state.' + cam.state));
  } else {
    setTileState(tile, 'live.connecting');
  }
  tile.lastFrame = performance.now();
  tile.session = openWhep(tile.id, tile.stream, tile.video, (key, detail) => {
    setTileState(tile, key, detail);
    if (key === 'live.error') retryTile(tile);
  });
}

// retryTile replaces a failed or frozen session, waiting 1, 2, 4 … 15 s.
function retryTile(tile) {
  clearTimeout(tile.timer);
  const wait = Math.min(15000, 1000 * 2 ** tile.tries);
  tile.tries++;
  tile.el.dataset.retries = String((Number(tile.el.dataset.retries) || 0) + 1);
  setTileState(tile, 'wall.recovering', Math.round(wait / 1000) + ' s');
  tile.timer = setTimeout(() => { if (wall.tiles.includes(tile)) startTile(tile); }, wait);
}

function assignTile(tile, id) {
  tile.id = id;
  tile.stream = 'sub';
  tile.tries = 0;
  tile.pick.value = id;
  tile.el.classList.remove('focus');
  startTile(tile);
}

function toggleMain(tile) {
  if (!tile.id) return;
  tile.stream = tile.stream === 'sub' ? 'main' : 'sub';
  tile.el.classList.toggle('focus', tile.stream === 'main');
  startTile(tile);
}

function renderWall(ids) {
  for (const tile of wall.tiles) { if (tile.session) tile.session.close(); clearTimeout(tile.timer); }
  const grid = $('wall-grid');
  grid.className = 'wall-grid n' + wall.size;
  wall.tiles = [];
  const frag = document.createDocumentFragment();
  for (let i = 0; i < wall.size; i++) {
    const tile = makeTile(i);
    fillPick(tile);
    wall.tiles.push(tile);
    frag.append(tile.el);
  }
  grid.replaceChildren(frag);
  wall.tiles.forEach((tile, i) => assignTile(tile, (ids || [])[i] || ''));
}

function renderWallCameras() {
  const list = $('wall-cameras');
  list.replaceChildren(...wall.cameras.map((c) => {
    const li = document.createElement('li');
    li.draggable = true;
    li.dataset.camera = c.id;
    li.dataset.testid = 'wall-camera';
    li.className = c.state === 'streaming' ? '' : 'bad';
    li.textContent = cameraName(c.id) + (c.state === 'streaming' ? '' : ' — ' + (c.reason || t('state.' + c.state)));
    li.addEventListener('dragstart', (ev) => { ev.dataTransfer.setData('text/x-ronda-camera', c.id); });
    return li;
  }));
  const sel = $('wall-layouts');
  const names = Object.keys(wallLayouts()).sort();
  sel.replaceChildren(...[''].concat(names).map((n) => { const o = document.createElement('option'); o.value = n; o.textContent = n || t('wall.layouts'); return o; }));
}

// The watchdog: a tile with a camera and no new frame for 6 s is replaced.
function wallWatch() {
  const now = performance.now();
  for (const tile of wall.tiles) {
    if (tile.id && tile.session && !tile.timer && now - tile.lastFrame > 6000) {
      tile.lastFrame = now;
      retryTile(tile);
    }
  }
}

async function showWall(arg) {
  show('wall');
  const gen = ++wall.gen; // a newer showWall (or another view) wins
  const cameras = (await (await api('/api/v1/cameras')).json()).cameras || [];
  if (gen !== wall.gen || ui.view !== 'wall') return;
  wall.cameras = cameras;
  const layouts = wallLayouts();
  let ids = [];
  if (arg && layouts[arg]) { wall.size = layouts[arg].size; ids = layouts[arg].cameras; }
  else ids = wall.cameras.slice(0, wall.size).map((c) => c.id);
  $('wall-size').value = String(wall.size);
  renderWallCameras();
  renderWall(ids);
  ui.refresh = setInterval(wallWatch, 1000);
}

function stopWall() {
  for (const tile of wall.tiles) { if (tile.session) tile.session.close(); clearTimeout(tile.timer); }
  wall.tiles = [];
  wall.gen++;
  $('wall-grid').replaceChildren(); // a later showWall renders afresh, never on stale tiles
}

$('wall-size').addEventListener('change', (ev) => {
  const ids = wall.tiles.map((x) => x.id);
  wall.size = Number(ev.target.value);
  renderWall(ids);
});
$('wall-save').addEventListener('click', () => {
  const name = $('wall-name').value.trim();
  if (!name) { setStatus(t('wall.needname'), true); return; }
  const layouts = wallLayouts();
  layouts[name] = { size: wall.size, cameras: wall.tiles.map((x) => x.id) };
  localStorage.setItem('ronda.walls', JSON.stringify(layouts));
  renderWallCameras();
  setStatus(t('wall.saved').replace('{name}', name));
});
$('wall-layouts').addEventListener('change', (ev) => { if (ev.target.value) location.hash = '#/wall/' + encodeURIComponent(ev.target.value); });
