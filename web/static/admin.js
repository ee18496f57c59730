// Admin (#/admin): hub cluster health and the node list (admins and the
// control room), join tokens for new nodes, and users with their roles and
// scopes (city admins). Each part shows only when the role may use it.
'use strict';

const ad = { members: null, cluster: null, nodes: null, users: null, kel: null, err: {} };

async function loadAdmin() {
  const jobs = [];
  const get = (key, path, pick) => jobs.push(api(path).then((r) => r.json()).then((b) => { ad[key] = pick(b); ad.err[key] = ''; })
    .catch((err) => { ad.err[key] = err.message; }));
  if (can('cluster')) {
    if (ui.me.served_by === 'hub') get('members', '/api/v1/cluster/members', (b) => b);
    get('cluster', '/api/v1/cluster', (b) => b);
    get('nodes', '/api/v1/nodes', (b) => b.nodes || []);
  }
  if (can('users') && ui.me.served_by === 'hub') get('users', '/api/v1/users', (b) => b.users || []);
  if (can('enrollment') && ui.me.served_by === 'hub' && !ad.kel) {
    get('kel', '/api/v1/areas?level=kelurahan&consistency=stale', (b) => b.areas || []);
  }
  await Promise.all(jobs);
  if (ui.view === 'admin') renderAdmin();
}

function renderAdmin() {
  const hub = ui.me && ui.me.served_by === 'hub';
  $('ad-cluster-box').hidden = !can('cluster');
  $('ad-enroll-box').hidden = !(can('enrollment') && hub);
  $('ad-users-box').hidden = !(can('users') && hub);
  if (can('cluster')) renderCluster(hub);
  if (can('users') && hub) renderUsers();
  if (ad.kel && !$('ad-kel-list').childElementCount) {
    const frag = document.createDocumentFragment();
    ad.kel.forEach((a) => { const o = document.createElement('option'); o.value = a.code; o.label = a.name; frag.append(o); });
    $('ad-kel-list').append(frag);
  }
}

function renderCluster(hub) {
  const sum = $('ad-cluster-summary');
  const tbody = $('ad-members').querySelector('tbody');
  tbody.replaceChildren();
  const c = ad.cluster;
  if (ad.err.cluster || ad.err.members) {
    sum.textContent = ad.err.cluster || ad.err.members;
    sum.className = 'bad';
  } else if (hub && c && ad.members) {
    const ms = ad.members.members || [];
    const healthy = ms.filter((m) => m.reachable && (m.healthy === undefined || m.healthy)).length;
    const voters = ms.filter((m) => m.suffrage === 'voter').length;
    sum.textContent = t('ad.clustersum', { leader: c.leader || '—', term: c.term, healthy, n: ms.length, quorum: Math.floor(voters / 2) + 1, member: c.member });
    sum.className = c.leader && healthy >= Math.floor(voters / 2) + 1 ? 'ok' : 'bad';
    ms.forEach((m) => {
      const tr = document.createElement('tr');
      tr.dataset.member = m.id;
      const state = m.reachable ? t('ad.state.' + m.state, null, m.state) + (m.healthy === false ? ' · ' + t('ad.unhealthy') : '') : t('ad.unreachable') + (m.error ? ': ' + m.error : '');
      tr.append(cell(m.id + (m.id === c.member ? ' (' + t('ad.thismember') + ')' : '')), cell(state, m.reachable && m.healthy !== false ? 'ok' : 'bad'),
        cell(m.suffrage), cell(m.applied_index != null ? String(m.applied_index) : '—'),
        cell(m.state === 'leader' ? '—' : (m.last_contact_ms >= 0 ? m.last_contact_ms + ' ms' : '—')));
      tbody.append(tr);
    });
  } else if (!hub && c) {
    // At a node: its links to the hub members and its outbox.
    const links = c.hub_links || [];
    const up = links.filter((l) => l.connected).length;
    sum.textContent = t('ad.nodesum', { up, n: links.length, pending: c.outbox ? c.outbox.pending : 0 });
    sum.className = up > 0 ? 'ok' : 'bad';
    links.forEach((l) => {
      const tr = document.createElement('tr');
      tr.append(cell(l.address || ''), cell(l.connected ? t('online') : t('offline') + (l.last_error ? ': ' + l.last_error : ''), l.connected ? 'ok' : 'bad'),
        cell('—'), cell('—'), cell(l.connected_since ? t('overview.since') + ' ' + fmtTime(l.connected_since) : '—'));
      tbody.append(tr);
    });
  }
  const nb = $('ad-nodes').querySelector('tbody');
  nb.replaceChildren();
  const nodes = ad.nodes || [];
  if (ad.err.nodes) emptyRow(nb, 6, '', ad.err.nodes);
  else if (!nodes.length) emptyRow(nb, 6, 'nodes.empty');
  const order = { offline: 0, degraded: 1, online: 2 };
  nodes.slice().sort((a, b) => (order[a.status || (a.online ? 'online' : 'offline')] - order[b.status || (b.online ? 'online' : 'offline')]) || a.node_id.localeCompare(b.node_id))
    .forEach((n) => {
      const s = n.status || (n.online ? 'online' : 'offline');
      const tr = document.createElement('tr');
      tr.dataset.node = n.node_id;
      const st = cell(t('node.' + s) + (n.status_detail ? ' — ' + n.status_detail : ''), { online: 'ok', degraded: 'warn', offline: 'bad' }[s]);
      const days = n.storage && typeof n.storage.days_until_full === 'number' ? fmtDays(n.storage.days_until_full) : '—';
      tr.append(cell(n.node_id), cell(n.kelurahan + ' (' + n.kelurahan_code + ')'), st, cell(fmtTime(n.last_seen)), cell(String(n.cameras)), cell(days));
      nb.append(tr);
    });
}

function scopeText(s) {
  if (!s) return '—';
  const parts = [];
  if (s.areas && s.areas.length) parts.push(t('ad.areas.short') + ': ' + s.areas.join(', '));
  if (s.cameras && s.cameras.length) parts.push(t('ad.cameras.short') + ': ' + s.cameras.join(', '));
  if (s.playback_hours) parts.push(t('ad.hours.short', { h: s.playback_hours }));
  return parts.join(' · ') || t('ad.citywide');
}

function renderUsers() {
  const tbody = $('ad-users').querySelector('tbody');
  tbody.replaceChildren();
  if (ad.err.users) { emptyRow(tbody, 6, '', ad.err.users); return; }
  (ad.users || []).forEach((u) => {
    const tr = document.createElement('tr');
    tr.dataset.user = u.name;
    const actions = document.createElement('td');
    actions.className = 'actions';
    if (u.source === 'hub') {
      const toggle = u.disabled ? t('ad.enable') : t('ad.disable');
      actions.append(button(t('ad.edit'), t('ad.edit') + ': ' + u.name, 'ad-user-edit', () => editUser(u), true), ' ',
        button(toggle, toggle + ': ' + u.name, 'ad-user-toggle', () => saveUser(u.name, { disabled: !u.disabled }, false), true));
    } else {
      actions.append(cell(t('ad.fromconfig'), 'muted').firstChild);
    }
    tr.append(cell(u.name), cell(t('role.' + u.role, null, u.role)), cell(scopeText(u.scope)),
      cell(u.disabled ? t('ad.disabled') : t('ad.enabled'), u.disabled ? 'bad' : 'ok'),
      cell(u.changed ? fmtTime(u.changed) + (u.changed_by ? ' · ' + u.changed_by : '') : '—'), actions);
    tbody.append(tr);
  });
}

function editUser(u) {
  $('ad-user-name').value = u.name;
  $('ad-user-role').value = u.role;
  $('ad-user-areas').value = ((u.scope && u.scope.areas) || []).join(', ');
  $('ad-user-cameras').value = ((u.scope && u.scope.cameras) || []).join(', ');
  $('ad-user-hours').value = String((u.scope && u.scope.playback_hours) || 0);
  $('ad-user-password').value = '';
  $('ad-user-name').focus();
}

function list(v) { return v.split(',').map((x) => x.trim()).filter(Boolean); }

async function saveUser(name, body, isNew) {
  const res = $('ad-user-result');
  try {
    if (isNew) await api('/api/v1/users', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(Object.assign({ name }, body)) });
    else await api('/api/v1/users/' + encodeURIComponent(name), { method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    res.textContent = t(isNew ? 'ad.created' : 'ad.saved', { name });
    res.className = 'ok';
    await loadAdmin();
  } catch (err) {
    res.textContent = err.message;
    res.className = 'bad';
  }
}

async function submitUser(ev) {
  ev.preventDefault();
  const name = $('ad-user-name').value.trim();
  const role = $('ad-user-role').value;
  const scope = {};
  const areas = list($('ad-user-areas').value), cams = list($('ad-user-cameras').value);
  if (areas.length) scope.areas = areas;
  if (cams.length) scope.cameras = cams;
  if (role === 'viewer') scope.playback_hours = Number($('ad-user-hours').value) || 0;
  const body = { role, scope };
  const pw = $('ad-user-password').value;
  if (pw) body.password = pw;
  const exists = (ad.users || []).some((u) => u.name === name);
  await saveUser(name, body, !exists);
  $('ad-user-password').value = '';
}

async function submitJoinToken(ev) {
  ev.preventDefault();
  const out = $('ad-enroll-out');
  out.replaceChildren();
  try {
    const kel = $('ad-enroll-kel').value.trim();
    const tok = await (await api('/api/v1/enrollment/tokens', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ kelurahan: kel, ttl: $('ad-enroll-ttl').value }),
    })).json();
    const p = document.createElement('p');
    p.className = 'ok';
    p.textContent = t('ad.tokenmade', { kel: tok.kelurahan, expires: fmtTime(tok.expires) });
    const code = document.createElement('code');
    code.className = 'token';
    code.dataset.testid = 'ad-token';
    code.textContent = tok.token;
    const how = document.createElement('p');
    how.className = 'muted';
    how.textContent = t('ad.tokenhow', { url: location.origin });
    out.append(p, code, how);
  } catch (err) {
    const p = document.createElement('p');
    p.className = 'bad';
    p.textContent = err.message;
    out.append(p);
  }
}

async function showAdmin() {
  show('admin');
  $('ad-user-form').onsubmit = submitUser;
  $('ad-enroll-form').onsubmit = submitJoinToken;
  renderAdmin();
  await loadAdmin();
  every(loadAdmin);
}
