// Audit (#/audit, auditors and admins; a node admin at its node): the
// audit log newest first, filtered by node, user, action, camera and
// outcome, and the log's verification status — at the hub the Merkle log
// checked against the signed checkpoints, at a node its hash chain.
'use strict';

const au = { events: [], next: null, scanned: 0, verify: null, verifyErr: '', query: '' };
const AUDIT_PAGE = 200;

function auditQuery() {
  const q = new URLSearchParams({ order: 'newest', limit: String(AUDIT_PAGE) });
  [['node', 'au-node'], ['user', 'au-user'], ['action', 'au-action'], ['camera', 'au-camera'], ['outcome', 'au-outcome']].forEach(([k, id]) => {
    const v = $(id).value.trim();
    if (v) q.set(k, v);
  });
  return q;
}

async function loadAudit(more) {
  const q = more ? new URLSearchParams(au.query) : auditQuery();
  if (more && au.next != null) q.set('before', String(au.next));
  const body = await (await api('/api/v1/audit?' + q)).json();
  if (!more) { au.events = []; au.scanned = 0; au.query = q.toString(); }
  au.events = au.events.concat(body.events || []);
  au.next = body.next_before == null ? null : body.next_before;
  au.scanned += body.scanned || 0;
  if (ui.view === 'audit') renderAudit();
}

async function loadAuditVerify() {
  try {
    au.verify = await (await api('/api/v1/audit/verify')).json();
    au.verifyErr = '';
  } catch (err) {
    au.verify = null;
    au.verifyErr = err.message;
  }
  if (ui.view === 'audit') renderAuditVerify();
}

function renderAuditVerify() {
  const box = $('au-verify');
  box.replaceChildren();
  const head = document.createElement('p');
  head.dataset.testid = 'au-verdict';
  const v = au.verify;
  if (!v) {
    head.textContent = au.verifyErr ? t('au.verifyfailed') + ': ' + au.verifyErr : t('au.verifying');
    head.className = au.verifyErr ? 'bad' : 'muted';
    box.append(head);
    return;
  }
  head.className = v.ok ? 'ok' : 'bad';
  box.dataset.ok = v.ok ? '1' : '0';
  if (v.newest !== undefined || v.checkpoints !== undefined) { // the hub's Merkle log
    const at = v.newest && v.newest.at_unix_nano ? fmtTime(new Date(v.newest.at_unix_nano / 1e6).toISOString()) : '—';
    head.textContent = (v.ok ? '✓ ' + t('au.intact') : '✗ ' + t('au.tampered')) + ' · ' + t('au.hubsummary', {
      leaves: v.leaves, chains: v.chains, checkpoints: v.checkpoints, size: v.newest ? v.newest.size : 0,
      member: v.newest ? v.newest.member : '', at, incl: v.inclusion_proofs_checked, cons: v.consistency_proofs_checked,
    });
  } else {
    head.textContent = (v.ok ? '✓ ' + t('au.intact') : '✗ ' + t('au.tampered')) + ' · ' + t('au.nodesummary', { events: v.events });
    if (v.note) head.title = v.note;
  }
  box.append(head);
  const sub = document.createElement('p');
  sub.className = 'muted';
  sub.textContent = t('au.checkedat', { member: v.member || v.node_id || (ui.me && ui.me.name) || '', at: fmtTime(v.checked), ms: v.took_ms != null ? v.took_ms : '?' });
  box.append(sub);
  if (v.findings && v.findings.length) {
    const ul = document.createElement('ul');
    ul.className = 'bad';
    ul.dataset.testid = 'au-findings';
    v.findings.forEach((f) => {
      const li = document.createElement('li');
      let where = '';
      if (f.leaf >= 0) where = t('au.leaf') + ' ' + f.leaf + (f.node_id ? ' (' + f.node_id + ' #' + f.seq + ')' : '') + ': ';
      else if (f.seq) where = (f.node_id || '') + ' #' + f.seq + ': '; // a node's chain: no leaves
      li.textContent = where + f.problem;
      ul.append(li);
    });
    box.append(ul);
  }
}

function renderAudit() {
  renderAuditVerify();
  $('au-summary').textContent = t('au.summary', { n: au.events.length, scanned: au.scanned }) + (au.next != null ? ' · ' + t('au.hasmore') : '');
  const tbody = $('au-table').querySelector('tbody');
  tbody.replaceChildren();
  if (au.events.length === 0) emptyRow(tbody, 7, 'au.none');
  const frag = document.createDocumentFragment();
  au.events.forEach((e) => {
    const tr = document.createElement('tr');
    tr.dataset.node = e.node_id;
    tr.dataset.seq = String(e.seq);
    const denied = (e.outcome || '').startsWith('denied');
    const failed = !denied && !(e.outcome || '').startsWith('ok');
    if (denied || failed) tr.className = 'row-bad';
    const evt = e.node_id + ' #' + e.seq + (e.leaf != null ? ' · ' + t('au.leaf') + ' ' + e.leaf : '');
    const range = e.from ? ' ' + fmtRange(e.from, e.to) : '';
    const outcome = cell(e.outcome + (e.chain_error ? ' · ' + t('au.chainerror') + ': ' + e.chain_error : ''), denied || failed || e.chain_error ? 'bad' : 'ok');
    tr.append(cell(fmtTime(e.time)), cell(evt, 'mono'), cell(e.user), cell(e.action), cell((e.camera_id || '') + range), cell(e.reason || ''), outcome);
    frag.append(tr);
  });
  tbody.append(frag);
  $('au-more').hidden = au.next == null;
}

async function showAudit() {
  show('audit');
  $('au-form').onsubmit = (ev) => { ev.preventDefault(); loadAudit(false).catch((err) => setStatus(err.message, true)); };
  $('au-more').onclick = () => loadAudit(true).catch((err) => setStatus(err.message, true));
  renderAuditVerify();
  await Promise.all([loadAudit(false), loadAuditVerify()]);
}
