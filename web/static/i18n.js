// Bahasa Indonesia by default, English one click away (remembered in localStorage).
'use strict';

const I18N = {
  id: {
    'skip': 'Langsung ke isi', 'lang.switch': 'Switch to English',
    'nav.nodes': 'Node', 'nav.cameras': 'Kamera', 'logout': 'Keluar', 'nav.overview': 'Ikhtisar',
    'overview.title': 'Ikhtisar kota', 'overview.filter': 'Cari kelurahan, kecamatan, kota atau node',
    'overview.problemsonly': 'Hanya yang bermasalah', 'overview.problems': 'Masalah lebih dulu',
    'overview.summary': '{nodes} node: {dark} luring, {degraded} terganggu · {up} dari {cams} kamera mengalir',
    'overview.noproblems': 'Tidak ada masalah: semua node daring dan semua kamera mengalir.',
    'overview.more': 'dan {n} lagi', 'overview.nonode': '{n} kelurahan tanpa node', 'overview.camsdown': '{n} kamera mati',
    'overview.groupsum': '{nodes} node di {kel} kelurahan · kamera {up} ▲ {down} ▼',
    'overview.cams': 'Kamera hidup / mati', 'overview.lastsync': 'Sinkron terakhir', 'overview.since': 'sejak',
    'overview.map': 'Peta {n} kamera dan {k} kantor kelurahan', 'overview.nomap': 'Tidak ada koordinat untuk peta.',
    'overview.legend': 'Kotak: kantor kelurahan (hijau daring, kuning terganggu, merah luring, abu-abu tanpa node). Titik: kamera (hijau mengalir, merah tidak). Klik untuk memilih kelurahan.',
    'node.online': 'daring', 'node.degraded': 'terganggu', 'node.offline': 'luring', 'node.nonode': 'tanpa node',
    'login.title': 'Masuk', 'login.user': 'Nama pengguna', 'login.password': 'Kata sandi', 'login.submit': 'Masuk',
    'nodes.title': 'Node kelurahan', 'nodes.empty': 'Belum ada node.',
    'cameras.title': 'Kamera', 'cameras.empty': 'Belum ada kamera.',
    'col.kelurahan': 'Kelurahan', 'col.kecamatan': 'Kecamatan', 'col.kota': 'Kota', 'col.state': 'Status',
    'col.lastseen': 'Terakhir terlihat', 'col.cameras': 'Kamera', 'col.camera': 'Kamera', 'col.video': 'Video',
    'col.recording': 'Merekam', 'col.actions': 'Aksi',
    'online': 'daring', 'offline': 'luring', 'yes': 'ya', 'no': 'tidak',
    'btn.live': 'Langsung', 'btn.playback': 'Putar ulang',
    'live.title': 'Siaran langsung', 'live.playback': 'Putar ulang rekaman', 'live.retry': 'Coba lagi',
    'live.connecting': 'Menghubungkan…', 'live.waiting': 'Terhubung, menunggu gambar…', 'live.playing': 'Memutar',
    'live.disconnected': 'Koneksi terputus, mencoba lagi…', 'live.error': 'Gagal',
    'live.stream': 'Kualitas', 'live.stream.main': 'Utama (HD)', 'live.stream.sub': 'Ringan (sub-stream)',
    'live.relay': 'Lewat relay hub (TURN)', 'live.path.direct': 'Video langsung dari node kelurahan',
    'live.path.turn': 'Video lewat relay hub (TURN)', 'live.firstframe': 'gambar pertama',
    'live.bframes': 'Kamera mengirim B-frame: siaran langsung bisa tersendat. Atur encoder kamera tanpa B-frame (profil Baseline).',
    'playback.title': 'Putar ulang', 'playback.range': 'Rentang', 'playback.play': 'Putar',
    'playback.last1': '1 menit terakhir', 'playback.last5': '5 menit terakhir', 'playback.last15': '15 menit terakhir',
    'playback.custom': 'Pilih waktu…', 'playback.from': 'Dari', 'playback.to': 'Sampai',
    'playback.badrange': 'Isi waktu mulai dan selesai; mulai harus sebelum selesai.',
    'playback.loading': 'Memuat rekaman…', 'playback.recorded': 'terekam', 'playback.gap': 'celah',
    'gap.camera_offline': 'kamera tidak terjangkau', 'gap.network': 'jaringan terputus', 'gap.node_down': 'node mati',
    'gap.disk_full': 'disk penuh', 'gap.write_failed': 'gagal menulis ke disk', 'gap.clock_step': 'jam node melompat',
    'gap.deleted': 'dihapus oleh retensi',
    'gap.not_recorded': 'tidak terekam',
    'playback.nogaps': 'Tidak ada celah dalam rentang ini.', 'playback.timeline': 'Garis waktu rekaman',
    'state.streaming': 'mengalir', 'state.connecting': 'menghubungkan', 'state.failing': 'gagal', 'state.unknown': 'tidak diketahui',
    'hub': 'Hub Kota', 'kelurahan': 'Kelurahan', 'loggedout': 'Sesi berakhir, silakan masuk lagi.',
  },
  en: {
    'skip': 'Skip to content', 'lang.switch': 'Ganti ke Bahasa Indonesia',
    'nav.nodes': 'Nodes', 'nav.cameras': 'Cameras', 'logout': 'Log out', 'nav.overview': 'Overview',
    'overview.title': 'City overview', 'overview.filter': 'Search kelurahan, kecamatan, kota or node',
    'overview.problemsonly': 'Problems only', 'overview.problems': 'Problems first',
    'overview.summary': '{nodes} nodes: {dark} offline, {degraded} degraded · {up} of {cams} cameras streaming',
    'overview.noproblems': 'No problems: every node is online and every camera is streaming.',
    'overview.more': 'and {n} more', 'overview.nonode': '{n} kelurahan without a node', 'overview.camsdown': '{n} cameras down',
    'overview.groupsum': '{nodes} nodes in {kel} kelurahan · cameras {up} ▲ {down} ▼',
    'overview.cams': 'Cameras up / down', 'overview.lastsync': 'Last sync', 'overview.since': 'since',
    'overview.map': 'Map of {n} cameras and {k} kelurahan offices', 'overview.nomap': 'No coordinates to map.',
    'overview.legend': 'Squares: kelurahan offices (green online, yellow degraded, red offline, grey no node). Dots: cameras (green streaming, red not). Click to pick a kelurahan.',
    'node.online': 'online', 'node.degraded': 'degraded', 'node.offline': 'offline', 'node.nonode': 'no node',
    'login.title': 'Log in', 'login.user': 'User name', 'login.password': 'Password', 'login.submit': 'Log in',
    'nodes.title': 'Kelurahan nodes', 'nodes.empty': 'No nodes yet.',
    'cameras.title': 'Cameras', 'cameras.empty': 'No cameras yet.',
    'col.kelurahan': 'Kelurahan', 'col.kecamatan': 'Kecamatan', 'col.kota': 'City', 'col.state': 'State',
    'col.lastseen': 'Last seen', 'col.cameras': 'Cameras', 'col.camera': 'Camera', 'col.video': 'Video',
    'col.recording': 'Recording', 'col.actions': 'Actions',
    'online': 'online', 'offline': 'offline', 'yes': 'yes', 'no': 'no',
    'btn.live': 'Live', 'btn.playback': 'Playback',
    'live.title': 'Live', 'live.playback': 'Play back recordings', 'live.retry': 'Retry',
    'live.connecting': 'Connecting…', 'live.waiting': 'Connected, waiting for video…', 'live.playing': 'Playing',
    'live.disconnected': 'Connection lost, retrying…', 'live.error': 'Failed',
    'live.stream': 'Quality', 'live.stream.main': 'Main (HD)', 'live.stream.sub': 'Light (sub stream)',
    'live.relay': "Through the hub's relay (TURN)", 'live.path.direct': "Video straight from the kelurahan's node",
    'live.path.turn': "Video through the hub's relay (TURN)", 'live.firstframe': 'first frame',
    'live.bframes': "The camera sends B-frames: live view may stutter. Set the camera's encoder to a profile without B-frames (Baseline).",
    'playback.title': 'Playback', 'playback.range': 'Range', 'playback.play': 'Play',
    'playback.last1': 'Last minute', 'playback.last5': 'Last 5 minutes', 'playback.last15': 'Last 15 minutes',
    'playback.custom': 'Choose times…', 'playback.from': 'From', 'playback.to': 'To',
    'playback.badrange': 'Fill in both times; the start must be before the end.',
    'playback.loading': 'Loading footage…', 'playback.recorded': 'recorded', 'playback.gap': 'gap',
    'gap.camera_offline': 'camera unreachable', 'gap.network': 'network dropped', 'gap.node_down': 'node down',
    'gap.disk_full': 'disk full', 'gap.write_failed': 'disk write failed', 'gap.clock_step': 'node clock jumped',
    'gap.deleted': 'deleted by retention',
    'gap.not_recorded': 'not recorded',
    'playback.nogaps': 'No gaps in this range.', 'playback.timeline': 'Recording timeline',
    'state.streaming': 'streaming', 'state.connecting': 'connecting', 'state.failing': 'failing', 'state.unknown': 'unknown',
    'hub': 'City hub', 'kelurahan': 'Kelurahan', 'loggedout': 'Session ended, please log in again.',
  },
};

let lang = localStorage.getItem('ronda.lang') === 'en' ? 'en' : 'id';

function t(key) { return (I18N[lang] && I18N[lang][key]) || I18N.id[key] || key; }

function applyI18n() {
  document.documentElement.lang = lang;
  document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
  const toggle = document.getElementById('lang-toggle');
  toggle.textContent = lang === 'id' ? 'EN' : 'ID';
  toggle.setAttribute('aria-label', t('lang.switch'));
  document.getElementById('timeline').setAttribute('aria-label', t('playback.timeline'));
}
