// Evidence cases (#/cases, #/cases/ID; hub): every case with its reason,
// owner, deadline and how far its holds and pulls are; a new case by place
// or area and time; a case's items with their hold (pending while a node is
// offline) and pull progress; pull, close, and download the bundle.
'use strict';

const cs = { cases: null, open: '', err: '' };

async function loadCases() {
  try {
    cs.cases = (await (await api('/api/v1/cases')).json()).cases || [];
    cs.err = '';
  } catch (err) {
    cs.cases = [];
    cs.err = err.message;
  }
  if (ui.view === 'cases') renderCases();
}

function caseState(c) {
  if (c.status === 'closed') return [t('cs.closed'), 'muted'];
  if (!c.items.length) return [t('cs.nocameras'), 'warn'];
  if (c.holds_pending > 0) return [t('cs.holdspending', { n: c.holds_pending }), 'warn'];
  const wanted = c.items.filter((i) => i.pull.state !== 'not_requested').length;
  if (wanted > 0) return [t('cs.pulled', { n: c.items_stored, of: wanted }), c.items_stored === wanted ? 'ok' : 'warn'];
  return [t('cs.holding'), 'ok'];
}

function timeLeft(deadline) {
  const ms = new Date(deadline) - Date.now();
  return ms <= 0 ? t('cs.overdue') : t('ev.in') + ' ' + fmtDuration(ms);
}

function renderCases() {
  const list = cs.cases || [];
  $('cs-summary').textContent = cs.err || t('cs.summary', { n: list.length, open: list.filter((c) => c.status === 'open').length });
  $('cs-summary').className = cs.err ? 'bad' : 'muted';
  const tbody = $('cs-table').querySelector('tbody');
  tbody.replaceChildren();
  if (!list.length) emptyRow(tbody, 6, 'cs.none');
  list.forEach((c) => {
    const tr = document.createElement('tr');
    tr.dataset.case = c.id;
    const idTd = document.createElement('td');
    const a = document.createElement('a');
    a.href = '#/cases/' + encodeURIComponent(c.id);
    a.textContent = c.id;
    idTd.append(a);
    if (c.report) idTd.append(document.createElement('br'), document.createTextNode(t('cs.report') + ' ' + c.report));
    const [st, cls] = caseState(c);
    tr.append(idTd, cell(c.reason), cell(c.owner), cell(fmtTime(c.deadline) + ' (' + timeLeft(c.deadline) + ')'), cell(String(c.items.length)), cell(st, cls));
    tbody.append(tr);
  });
  renderCaseDetail();
}

function renderCaseDetail() {
  const c = (cs.cases || []).find((x) => x.id === cs.open);
  $('cs-detail').hidden = !c;
  if (!c) return;
  $('cs-detail-title').textContent = t('cs.case') + ' ' + c.id + ' — ' + c.reason;
  $('cs-detail-meta').textContent = t('cs.meta', { owner: c.owner, created: fmtTime(c.created), deadline: fmtTime(c.deadline), left: timeLeft(c.deadline) }) +
    (c.report ? ' · ' + t('cs.report') + ' ' + c.report : '') + (c.release_after ? ' · ' + t('cs.releaseat', { at: fmtTime(c.release_after) }) : '');
  const open = c.status === 'open';
  $('cs-pull-btn').hidden = !open || c.items.every((i) => i.pull.state !== 'not_requested');
  $('cs-close-btn').hidden = !open;
  $('cs-bundle-btn').disabled = !(c.items_stored > 0 && c.items_stored === c.items.length);
  const tbody = $('cs-items').querySelector('tbody');
  tbody.replaceChildren();
  c.items.forEach((it) => {
    const tr = document.createElement('tr');
    tr.dataset.item = it.id;
    tr.dataset.camera = it.camera;
    const hold = t('ev.hold.' + it.hold_state, { node: it.node_id }, it.hold_state || '—') + (it.hold_error ? ' — ' + it.hold_error : '');
    const p = it.pull;
    const pull = document.createElement('td');
    pull.dataset.testid = 'cs-pull-state';
    pull.dataset.state = p.state;
    let text = t('cs.pull.' + p.state, null, p.state);
    if (p.state === 'pulling' && p.total) text += ' ' + Math.floor(100 * p.bytes / p.total) + '% (' + fmtBytes(p.bytes) + ' / ' + fmtBytes(p.total) + ')';
    if (p.state === 'stored') text += ' · ' + fmtBytes(p.total || p.bytes) + (p.holders && p.holders.length ? ' · ' + t('cs.copies', { members: p.holders.join(', ') }) : '');
    if (p.error) text += ' — ' + p.error;
    if (p.attempts > 1) text += ' · ' + t('cs.attempts', { n: p.attempts });
    pull.textContent = text;
    pull.className = { stored: 'ok', failed: 'bad', pulling: 'warn', exporting: 'warn', waiting: 'muted' }[p.state] || '';
    if (p.state === 'pulling' && p.total) {
      const bar = document.createElement('progress');
      bar.max = p.total;
      bar.value = p.bytes;
      bar.setAttribute('aria-label', t('cs.pullcol') + ' ' + it.camera);
      pull.append(document.createElement('br'), bar);
    }
    const camTd = document.createElement('td');
    const a = document.createElement('a');
    a.href = '#/camera/' + encodeURIComponent(it.camera);
    a.textContent = it.camera + (it.distance_m ? ' (' + it.distance_m + ' m)' : '');
    camTd.append(a);
    tr.append(camTd, cell(it.node_id), cell(fmtRange(it.from, it.to)), cell(hold, it.hold_state === 'applied' ? 'ok' : 'warn'), pull);
    tbody.append(tr);
  });
}

async function caseAction(path, okKey) {
  try {
    await api('/api/v1/cases/' + encodeURIComponent(cs.open) + path, { method: 'POST' });
    setStatus(t(okKey, { id: cs.open }));
    await loadCases();
  } catch (err) {
    setStatus(err.message, true);
  }
}

async function createCase(ev) {
  ev.preventDefault();
  const res = $('cs-result');
  const q = { from: new Date($('cs-from').value).toISOString(), to: new Date($('cs-to').value).toISOString() };
  const lat = parseFloat($('cs-lat').value), lon = parseFloat($('cs-lon').value);
  if (!isNaN(lat) && !isNaN(lon)) Object.assign(q, { lat, lon, radius_m: Number($('cs-radius').value) || 300 });
  else q.area = $('cs-area').value.trim();
  try {
    const c = await (await api('/api/v1/cases', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ reason: $('cs-reason').value.trim(), query: q, pull: $('cs-pull').checked }) })).json();
    res.textContent = t('cs.created', { id: c.id, n: c.items.length });
    res.className = 'ok';
    location.hash = '#/cases/' + encodeURIComponent(c.id);
  } catch (err) {
    res.textContent = err.message;
    res.className = 'bad';
  }
}

async function showCases(id) {
  show('cases');
  cs.open = id || '';
  $('cs-form').onsubmit = createCase;
  $('cs-pull-btn').onclick = () => caseAction('/pull', 'cs.pullasked');
  $('cs-close-btn').onclick = () => { if (window.confirm(t('cs.confirmclose', { id: cs.open }))) caseAction('/close', 'cs.closedok'); };
  $('cs-bundle-btn').onclick = () => saveFile('/api/v1/cases/' + encodeURIComponent(cs.open) + '/bundle', cs.open + '.zip').catch((err) => setStatus(err.message, true));
  if (!$('cs-from').value) {
    const to = new Date(Date.now() - 60000);
    $('cs-from').value = localInput(new Date(to.getTime() - 10 * 60000));
    $('cs-to').value = localInput(to);
  }
  await loadCases();
  if (cs.open) { // someone looked at the case (a report's alert stays quiet)
    api('/api/v1/cases/' + encodeURIComponent(cs.open)).catch(() => {});
  }
  ui.refresh = setInterval(() => loadCases(), 3000); // pull progress
}
