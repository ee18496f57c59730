// Evidence (#/evidence): the exports made (their reason, who asked, status,
// download, and a verification on demand) and the holds that keep footage
// from retention (with their expiry and, at the hub, whether the node has
// applied them yet).
'use strict';

const ev = { exports: null, holds: null, verified: {}, exportsErr: '', holdsErr: '' };

async function loadEvidence() {
  const active = $('ev-active').checked ? '?active=1' : '';
  const [ex, ho] = await Promise.allSettled([
    can('exports-read') ? api('/api/v1/exports').then((r) => r.json()) : Promise.resolve({ exports: [] }),
    can('holds-read') ? api('/api/v1/holds' + active).then((r) => r.json()) : Promise.resolve({ holds: [] }),
  ]);
  ev.exports = ex.status === 'fulfilled' ? ex.value.exports || [] : [];
  ev.exportsErr = ex.status === 'rejected' ? ex.reason.message : '';
  ev.holds = ho.status === 'fulfilled' ? ho.value.holds || [] : [];
  ev.holdsErr = ho.status === 'rejected' ? ho.reason.message : '';
  if (ui.view === 'evidence') renderEvidence();
}

function evMatches(...fields) {
  const q = $('ev-filter').value.trim().toLowerCase();
  return !q || fields.some((f) => String(f || '').toLowerCase().includes(q));
}

function renderVerification(td, e) {
  td.replaceChildren();
  const v = ev.verified[e.id];
  if (!v) {
    td.append(button(t('ev.verify'), t('ev.verify') + ': ' + e.id, 'ev-verify', () => verifyExport(e), true));
    return;
  }
  const span = document.createElement('span');
  span.dataset.testid = 'ev-verdict';
  if (v.pending) {
    span.textContent = t('ev.verifying');
  } else if (v.error) {
    span.className = 'bad';
    span.textContent = t('ev.verifyfailed') + ': ' + v.error;
  } else if (v.verified) {
    span.className = 'ok';
    span.textContent = '✓ ' + t('ev.verified');
    span.title = (v.checks || []).join('\n');
  } else {
    span.className = 'bad';
    span.textContent = '✗ ' + t('ev.notverified') + ': ' + (v.problems || []).join('; ');
  }
  td.append(span);
  if (v.verified && v.checks && v.checks.length) {
    const ul = document.createElement('ul');
    ul.className = 'checks';
    v.checks.forEach((c) => { const li = document.createElement('li'); li.textContent = c; ul.append(li); });
    td.append(ul);
  }
}

async function verifyExport(e) {
  ev.verified[e.id] = { pending: true };
  renderEvidence();
  try {
    const q = e.node_id ? '?node=' + encodeURIComponent(e.node_id) : '';
    ev.verified[e.id] = await (await api('/api/v1/exports/' + encodeURIComponent(e.id) + '/verify' + q)).json();
  } catch (err) {
    ev.verified[e.id] = { error: err.message };
  }
  if (ui.view === 'evidence') renderEvidence();
}

function renderEvidence() {
  const ex = (ev.exports || []).filter((e) => evMatches(e.id, e.camera, e.reason, e.requested_by, e.node_id));
  const ho = (ev.holds || []).filter((h) => evMatches(h.id, h.camera, h.reason, h.created_by, h.node_id));
  $('ev-summary').textContent = t('ev.summary', { exports: ex.length, holds: ho.length });

  const tbody = $('ev-exports').querySelector('tbody');
  tbody.replaceChildren();
  if (ev.exportsErr) emptyRow(tbody, 7, '', ev.exportsErr);
  else if (ex.length === 0) emptyRow(tbody, 7, 'ev.noexports');
  ex.forEach((e) => {
    const tr = document.createElement('tr');
    tr.dataset.export = e.id;
    const status = e.status === 'at_node' ? t('ev.atnode', { node: e.node_id || '?' }) : t('ev.status.' + e.status, null, e.status);
    const ver = document.createElement('td');
    renderVerification(ver, e);
    const actions = document.createElement('td');
    actions.className = 'actions';
    if (e.status !== 'at_node' && e.file_url) {
      const fail = (err) => setStatus(err.message, true);
      actions.append(
        button(t('cam.download') + (e.bytes ? ' (' + fmtBytes(e.bytes) + ')' : ''), t('cam.download') + ': ' + e.id, 'ev-download',
          () => saveFile(e.file_url, e.id + '.mp4').catch(fail)), ' ',
        button(t('ev.manifest'), t('ev.manifest') + ': ' + e.id, 'ev-manifest', () => saveFile(e.manifest_url, e.id + '.manifest.json').catch(fail), true));
    } else if (e.file_url) {
      const a = document.createElement('span');
      a.className = 'muted';
      a.textContent = t('ev.downloadatnode', { node: e.node_id || '' });
      a.title = e.file_url;
      actions.append(a);
    }
    const camTd = document.createElement('td');
    const a = document.createElement('a');
    a.href = '#/camera/' + encodeURIComponent(e.camera);
    a.textContent = e.camera;
    camTd.append(a);
    const sha = document.createElement('div');
    sha.className = 'muted mono';
    sha.textContent = e.id + ' · SHA-256 ' + (e.sha256 || '').slice(0, 16) + '…';
    camTd.append(sha);
    tr.append(camTd, cell(fmtRange(e.from, e.to)), cell(e.reason), cell((e.requested_by || '') + ' · ' + fmtTime(e.created)),
      cell(status, e.status === 'done' || e.status === 'at_node' ? 'ok' : ''), ver, actions);
    tbody.append(tr);
  });

  const hb = $('ev-holds').querySelector('tbody');
  hb.replaceChildren();
  if (ev.holdsErr) emptyRow(hb, 7, '', ev.holdsErr);
  else if (ho.length === 0) emptyRow(hb, 7, 'ev.noholds');
  ho.forEach((h) => {
    const tr = document.createElement('tr');
    tr.dataset.hold = h.id;
    let state = h.active ? t('ev.hold.active') : t('ev.hold.inactive');
    if (h.state) state = t('ev.hold.' + h.state, { node: h.node_id || '' }, h.state) + (h.error ? ' — ' + h.error : '');
    const expires = h.expires ? fmtTime(h.expires) + (h.active ? ' (' + t('ev.in') + ' ' + fmtDuration(new Date(h.expires) - Date.now()) + ')' : '') : t('ev.noexpiry');
    const actions = document.createElement('td');
    actions.className = 'actions';
    if (can('hold') && h.active && h.state !== 'release_pending') {
      actions.append(button(t('ev.release'), t('ev.release') + ': ' + h.id, 'ev-release', () => releaseHold(h), true));
    }
    const camTd = document.createElement('td');
    const a = document.createElement('a');
    a.href = '#/camera/' + encodeURIComponent(h.camera);
    a.textContent = h.camera;
    camTd.append(a);
    tr.append(camTd, cell(fmtRange(h.from, h.to)), cell(h.reason), cell((h.created_by || '') + ' · ' + fmtTime(h.created)),
      cell(expires), cell(state, h.state === 'pending' || h.state === 'failed' ? 'warn' : (h.active ? 'ok' : 'muted')), actions);
    hb.append(tr);
  });
}

async function releaseHold(h) {
  if (!window.confirm(t('ev.confirmrelease', { camera: h.camera, reason: h.reason }))) return;
  try {
    await api('/api/v1/cameras/' + encodeURIComponent(h.camera) + '/holds/' + encodeURIComponent(h.id), { method: 'DELETE' });
    setStatus(t('ev.released', { id: h.id }));
    await loadEvidence();
  } catch (err) {
    setStatus(err.message, true);
  }
}

async function showEvidence() {
  show('evidence');
  $('ev-filter').oninput = renderEvidence;
  $('ev-active').onchange = () => loadEvidence().catch((err) => setStatus(err.message, true));
  await loadEvidence();
  every(loadEvidence);
}
