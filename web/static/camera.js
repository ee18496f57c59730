// Camera playback controls on the playback view: a clock of the shown
// frame's time, scrubbing on the timeline (click or drag), jump to a time,
// speeds 1x-16x, steps, the camera's holds on the timeline, and a selected
// range (mark in and out, or shift-click) to export or to hold, with a
// reason.
'use strict';

const cam = { id: '', sel: { from: null, to: null }, holds: [] };

function mediaTime(v) { return ui.mediaFrom ? new Date(ui.mediaFrom.getTime() + v.currentTime * 1000) : null; }

function timelineTime(ev) {
  if (!ui.rec) return null;
  const el = $('timeline');
  const r = el.getBoundingClientRect();
  const from = new Date(ui.rec.from).getTime(), to = new Date(ui.rec.to).getTime();
  const f = Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
  return new Date(from + f * (to - from));
}

// seekWall shows the frame at wall time at: within the loaded file by
// seeking, else by loading the 5 minutes around it.
function seekWall(at) {
  const v = $('playback-video');
  if (ui.mediaFrom && v.duration && at >= ui.mediaFrom && at <= new Date(ui.mediaFrom.getTime() + v.duration * 1000)) {
    v.currentTime = (at - ui.mediaFrom) / 1000;
    v.play().catch(() => {});
    return;
  }
  $('playback-range').value = 'custom';
  onRangeChange();
  $('playback-from').value = localInput(new Date(at.getTime() - 60000));
  $('playback-to').value = localInput(new Date(Math.min(Date.now() - 3000, at.getTime() + 4 * 60000)));
  ui.seekTo = at;
  loadPlayback(cam.id);
}

function renderCursor() {
  const v = $('playback-video');
  const at = mediaTime(v);
  $('playback-clock').textContent = at ? fmtTime(at.toISOString()) : '—';
  $('playback-clock').dataset.epochMs = at ? String(at.getTime()) : '';
  if (!ui.rec || !at) return;
  const from = new Date(ui.rec.from).getTime(), span = Math.max(1, new Date(ui.rec.to).getTime() - from);
  const tl = $('timeline'); // a slider for assistive technology: where playback is, in the loaded range
  tl.setAttribute('aria-valuemin', '0');
  tl.setAttribute('aria-valuemax', String(Math.round(span / 1000)));
  tl.setAttribute('aria-valuenow', String(Math.max(0, Math.round((at.getTime() - from) / 1000))));
  tl.setAttribute('aria-valuetext', fmtTime(at.toISOString()));
  let c = $('timeline').querySelector('.cursor');
  if (!c) { c = document.createElement('div'); c.className = 'cursor'; $('timeline').append(c); }
  c.style.left = (100 * (at.getTime() - from) / span) + '%';
}

function renderSelection() {
  const el = $('timeline');
  el.querySelectorAll('.sel, .hold').forEach((x) => x.remove());
  if (!ui.rec) return;
  const from = new Date(ui.rec.from).getTime(), span = Math.max(1, new Date(ui.rec.to).getTime() - from);
  const bar = (s, e, cls, title) => {
    const d = document.createElement('div');
    d.className = cls;
    d.style.left = Math.max(0, 100 * (s - from) / span) + '%';
    d.style.width = Math.max(0.3, 100 * (Math.min(e, from + span) - Math.max(s, from)) / span) + '%';
    d.title = title;
    el.append(d);
  };
  for (const h of cam.holds) {
    const s = new Date(h.from).getTime(), e = new Date(h.to).getTime();
    if (e > from && s < from + span) bar(s, e, 'hold', t('cam.hold') + ': ' + h.reason + (h.state ? ' (' + h.state + ')' : ''));
  }
  const { from: a, to: b } = cam.sel;
  if (a && b && b > a) bar(a.getTime(), b.getTime(), 'sel', t('cam.selection'));
  $('sel-text').textContent = a || b ? (a ? fmtTime(a.toISOString()) : '…') + ' – ' + (b ? fmtTime(b.toISOString()) : '…') : t('cam.nosel');
  $('sel-export').disabled = $('sel-hold').disabled = !(a && b && b > a);
}

async function loadHolds() {
  if (!can('holds-read')) { cam.holds = []; renderSelection(); return; } // asking would be a refused, audited call
  try {
    cam.holds = (await (await api('/api/v1/cameras/' + encodeURIComponent(cam.id) + '/holds')).json()).holds || [];
  } catch (_) { cam.holds = []; } // a role without holds: none shown
  renderSelection();
}

function afterPlaybackLoad(id) {
  cam.id = id;
  $('playback-speed').value = '1';
  loadHolds();
}

// cameraRights offers on the camera page only what the role may do (the
// server refuses the rest anyway).
function cameraRights() {
  $('sel-export').hidden = !can('export');
  $('sel-hold').hidden = !can('hold');
  document.querySelector('.cam-sel').hidden = !can('export') && !can('hold');
}

function selResult(msg, isError, link) {
  const el = $('sel-result');
  el.replaceChildren(msg);
  el.className = isError ? 'error' : '';
  if (link) { el.append(' '); el.append(link); }
}

async function exportSelection() {
  const reason = $('sel-reason').value.trim();
  if (!reason) { selResult(t('cam.needreason'), true); $('sel-reason').focus(); return; }
  const { from, to } = cam.sel;
  selResult(t('cam.exporting'));
  try {
    const e = await (await api('/api/v1/exports', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ camera: cam.id, from: from.toISOString(), to: to.toISOString(), reason }) })).json();
    const a = document.createElement('a');
    a.href = '#';
    a.dataset.testid = 'export-download';
    a.dataset.url = e.file_url;
    a.textContent = t('cam.download') + ' (' + Math.round(e.bytes / 1024) + ' KiB)';
    a.addEventListener('click', (ev) => {
      ev.preventDefault();
      saveFile(e.file_url, e.id + '.mp4').catch((err) => selResult(err.message, true));
    });
    $('sel-result').dataset.exportId = e.id;
    selResult(t('cam.exported').replace('{id}', e.id).replace('{sha}', (e.sha256 || '').slice(0, 16)), false, a);
  } catch (err) {
    selResult(err.message, true);
  }
}

async function holdSelection() {
  const reason = $('sel-reason').value.trim();
  if (!reason) { selResult(t('cam.needreason'), true); $('sel-reason').focus(); return; }
  const { from, to } = cam.sel;
  try {
    const h = await (await api('/api/v1/cameras/' + encodeURIComponent(cam.id) + '/holds', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ from: from.toISOString(), to: to.toISOString(), reason }) })).json();
    selResult(t('cam.held').replace('{id}', h.id) + (h.state ? ' (' + h.state + ')' : ''));
    loadHolds();
  } catch (err) {
    selResult(err.message, true);
  }
}

(() => {
  const v = $('playback-video');
  const tick = () => { renderCursor(); v.requestVideoFrameCallback(tick); };
  v.requestVideoFrameCallback(tick);
  v.addEventListener('seeked', renderCursor);
  let dragging = false;
  const tl = $('timeline');
  tl.addEventListener('pointerdown', (ev) => {
    const at = timelineTime(ev);
    if (!at) return;
    if (ev.shiftKey) { cam.sel.to = at; renderSelection(); return; }
    dragging = true;
    tl.setPointerCapture(ev.pointerId);
    seekWall(at);
  });
  tl.addEventListener('pointermove', (ev) => { if (dragging) { const at = timelineTime(ev); if (at && v.duration) seekWall(at); } });
  tl.addEventListener('pointerup', () => { dragging = false; });
  tl.tabIndex = 0;
  tl.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowRight') { v.currentTime += ev.shiftKey ? 60 : 5; ev.preventDefault(); }
    if (ev.key === 'ArrowLeft') { v.currentTime = Math.max(0, v.currentTime - (ev.shiftKey ? 60 : 5)); ev.preventDefault(); }
  });
  $('playback-speed').addEventListener('change', (ev) => { v.playbackRate = Number(ev.target.value); });
  $('step-back').addEventListener('click', () => { v.pause(); v.currentTime = Math.max(0, v.currentTime - 1 / 25); });
  $('step-fwd').addEventListener('click', () => { v.pause(); v.currentTime += 1 / 25; });
  $('jump-go').addEventListener('click', () => {
    const at = new Date($('jump-at').value);
    if (!isNaN(at)) seekWall(at);
  });
  $('mark-in').addEventListener('click', () => { const at = mediaTime(v); if (at) { cam.sel.from = at; renderSelection(); } });
  $('mark-out').addEventListener('click', () => { const at = mediaTime(v); if (at) { cam.sel.to = at; renderSelection(); } });
  $('sel-export').addEventListener('click', exportSelection);
  $('sel-hold').addEventListener('click', holdSelection);
})();
