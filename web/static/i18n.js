// Bahasa Indonesia by default, English one click away.
const I18N = {
  id: {
    'nav.nodes': 'Node', 'nav.cameras': 'Kamera', 'logout': 'Keluar',
    'login.title': 'Masuk', 'login.user': 'Nama pengguna', 'login.password': 'Kata sandi', 'login.submit': 'Masuk',
    'nodes.title': 'Node kelurahan', 'cameras.title': 'Kamera',
    'col.kelurahan': 'Kelurahan', 'col.kecamatan': 'Kecamatan', 'col.kota': 'Kota', 'col.state': 'Status',
    'col.lastseen': 'Terakhir terlihat', 'col.cameras': 'Kamera', 'col.camera': 'Kamera', 'col.video': 'Video',
    'col.recording': 'Merekam',
    'online': 'daring', 'offline': 'luring', 'yes': 'ya', 'no': 'tidak',
    'btn.live': 'Langsung', 'btn.playback': 'Putar ulang',
    'live.title': 'Siaran langsung', 'live.playback': 'Putar ulang rekaman',
    'live.connecting': 'Menghubungkan…', 'live.playing': 'Memutar', 'live.error': 'Gagal',
    'playback.title': 'Putar ulang', 'playback.range': 'Rentang', 'playback.play': 'Putar',
    'playback.last1': '1 menit terakhir', 'playback.last5': '5 menit terakhir', 'playback.last15': '15 menit terakhir',
    'playback.loading': 'Memuat rekaman…', 'playback.recorded': 'terekam', 'playback.gap': 'celah',
    'state.streaming': 'mengalir', 'state.connecting': 'menghubungkan', 'state.failing': 'gagal', 'state.unknown': 'tidak diketahui',
    'hub': 'Hub Kota', 'loggedout': 'Silakan masuk.',
  },
  en: {
    'nav.nodes': 'Nodes', 'nav.cameras': 'Cameras', 'logout': 'Log out',
    'login.title': 'Log in', 'login.user': 'User name', 'login.password': 'Password', 'login.submit': 'Log in',
    'nodes.title': 'Kelurahan nodes', 'cameras.title': 'Cameras',
    'col.kelurahan': 'Kelurahan', 'col.kecamatan': 'Kecamatan', 'col.kota': 'City', 'col.state': 'State',
    'col.lastseen': 'Last seen', 'col.cameras': 'Cameras', 'col.camera': 'Camera', 'col.video': 'Video',
    'col.recording': 'Recording',
    'online': 'online', 'offline': 'offline', 'yes': 'yes', 'no': 'no',
    'btn.live': 'Live', 'btn.playback': 'Playback',
    'live.title': 'Live', 'live.playback': 'Play back recordings',
    'live.connecting': 'Connecting…', 'live.playing': 'Playing', 'live.error': 'Failed',
    'playback.title': 'Playback', 'playback.range': 'Range', 'playback.play': 'Play',
    'playback.last1': 'Last minute', 'playback.last5': 'Last 5 minutes', 'playback.last15': 'Last 15 minutes',
    'playback.loading': 'Loading footage…', 'playback.recorded': 'recorded', 'playback.gap': 'gap',
    'state.streaming': 'streaming', 'state.connecting': 'connecting', 'state.failing': 'failing', 'state.unknown': 'unknown',
    'hub': 'City hub', 'loggedout': 'Please log in.',
  },
};
let lang = localStorage.getItem('ronda.lang') || 'id';
function t(key) { return (I18N[lang] && I18N[lang][key]) || I18N.id[key] || key; }
function applyI18n() {
  document.documentElement.lang = lang;
  document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.getElementById('lang-toggle').textContent = lang === 'id' ? 'EN' : 'ID';
}
