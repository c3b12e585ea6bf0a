//! The live preview page: plain HTML, CSS and a little JavaScript, served as it is.

pub(super) const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bulletin live preview</title>
<style>
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: #e9e9ee; color: #222; }
  header { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid #ccc; padding: 8px 16px; display: flex; flex-wrap: wrap; gap: 8px 24px; align-items: center; }
  .inbox { flex: 1 1 420px; min-width: 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  .inbox b { margin-right: 8px; } .inbox .pre { color: #777; }
  .meter { width: 160px; height: 8px; background: #eee; border-radius: 4px; display: inline-block; vertical-align: middle; }
  .meter i { display: block; height: 100%; border-radius: 4px; background: #3a7; }
  .meter.over i { background: #c33; }
  #error { display: none; margin: 12px 16px; padding: 8px 12px; background: #fee; border: 1px solid #c33; white-space: pre-wrap; font-family: ui-monospace, monospace; }
  main { padding: 12px 16px; }
  .panes { display: flex; gap: 16px; align-items: flex-start; overflow-x: auto; }
  .pane { flex: none; } .pane h2 { font-size: 13px; margin: 0 0 4px; color: #555; }
  iframe { border: 1px solid #bbb; background: #fff; display: block; }
  #desktop { width: 640px; } #mobile { width: 375px; } #dark { width: 375px; background: #111; }
  details { margin-top: 12px; background: #fff; border: 1px solid #ccc; padding: 6px 10px; }
  pre { white-space: pre-wrap; word-break: break-word; font: 12px/1.45 ui-monospace, monospace; margin: 6px 0; }
  #diagnostics li.error { color: #b00; } #diagnostics li.warning { color: #8a5a00; }
  #state { color: #777; font-size: 12px; }
</style>
</head>
<body>
<header>
  <div class="inbox" title="As the inbox shows it"><b id="from"></b><span id="subject"></span> <span class="pre">— <span id="preheader"></span></span></div>
  <label>Member <select id="member"></select></label>
  <label>or address <input id="to" type="email" size="22" placeholder="name@example.org"></label>
  <label id="lang-picker" hidden>Language <select id="lang"></select></label>
  <span id="size"></span>
  <span id="state">connecting…</span>
</header>
<div id="error"></div>
<main>
  <div class="panes">
    <div class="pane"><h2>Desktop (640 px)</h2><iframe id="desktop" title="Desktop"></iframe></div>
    <div class="pane"><h2>Phone (375 px)</h2><iframe id="mobile" title="Phone"></iframe></div>
    <div class="pane"><h2>Dark mode (375 px)</h2><iframe id="dark" title="Dark mode"></iframe></div>
  </div>
  <details open><summary>Check: <span id="summary"></span></summary><ul id="diagnostics"></ul></details>
  <details><summary>Text part</summary><pre id="text"></pre></details>
  <details><summary>Headers</summary><pre id="headers"></pre></details>
  <details><summary>Raw MIME</summary><pre id="raw"></pre></details>
</main>
<script>
const $ = (id) => document.getElementById(id);
let pick = new URLSearchParams(location.search);
let shown = -1;

function fit(frame) {
  const doc = frame.contentDocument;
  if (doc && doc.documentElement) frame.style.height = (doc.documentElement.scrollHeight + 4) + 'px';
}
for (const id of ['desktop', 'mobile', 'dark']) $(id).addEventListener('load', () => fit($(id)));

function show(data) {
  const err = $('error');
  if (data.ok) { err.style.display = 'none'; err.textContent = ''; }
  else {
    err.style.display = 'block';
    err.textContent = data.error + (data.view ? '\n\n(showing the last render that worked)' : '');
  }
  const v = data.view;
  document.body.dataset.version = data.version;
  $('state').textContent = 'rendered version ' + data.version + (data.ok ? '' : ' (error)');
  if (!v) return;
  $('from').textContent = v.from;
  $('subject').textContent = v.subject;
  $('preheader').textContent = v.preheader;
  for (const [id, html] of [['desktop', v.html], ['mobile', v.html], ['dark', v.dark_html]]) {
    if ($(id).srcdoc !== html) $(id).srcdoc = html;
  }
  $('text').textContent = v.text;
  $('headers').textContent = v.headers;
  $('raw').textContent = v.raw;
  const kb = (n) => (n / 1024).toFixed(1) + ' KB';
  const share = Math.min(1, v.html_bytes / v.clip_bytes);
  $('size').innerHTML = '';
  const label = document.createElement('span');
  label.textContent = 'HTML ' + kb(v.html_bytes) + ' of Gmail\'s ' + kb(v.clip_bytes) + ' · message ' + kb(v.message_bytes) + ' ';
  const meter = document.createElement('span');
  meter.className = 'meter' + (v.html_bytes > v.clip_bytes ? ' over' : '');
  const bar = document.createElement('i');
  bar.style.width = (share * 100).toFixed(1) + '%';
  meter.appendChild(bar);
  $('size').append(label, meter);
  const sel = $('member');
  sel.innerHTML = '';
  for (const m of v.members) {
    const o = document.createElement('option');
    o.value = m.row; o.textContent = m.row + ': ' + m.email;
    if (m.row === v.row) o.selected = true;
    sel.appendChild(o);
  }
  const langs = $('lang');
  langs.innerHTML = '';
  for (const [value, label] of [['', 'the member\'s own'], ...v.languages.map((l) => [l, l])]) {
    const o = document.createElement('option');
    o.value = value; o.textContent = label;
    langs.appendChild(o);
  }
  langs.value = v.lang_picked ? v.lang : '';
  $('lang-picker').hidden = v.languages.length < 2;
  document.body.dataset.lang = v.lang;
  const list = $('diagnostics');
  list.innerHTML = '';
  for (const d of v.diagnostics) {
    const li = document.createElement('li');
    li.className = d.startsWith('error') ? 'error' : 'warning';
    li.textContent = d;
    list.appendChild(li);
  }
  $('summary').textContent = v.errors + ' errors, ' + (v.diagnostics.length - v.errors) + ' warnings, for ' + v.member + ' (' + v.lang + ')';
}

async function load() {
  try {
    const res = await fetch('/api/view?' + pick.toString(), { cache: 'no-store' });
    show(await res.json());
  } catch (e) {
    $('state').textContent = 'cannot reach the preview server: ' + e;
  }
}

// The member (by row or address) and the language are picked independently.
function repick(set, drop) {
  for (const [k, v] of Object.entries(set)) pick.set(k, v);
  if (drop) pick.delete(drop);
  history.replaceState(null, '', '?' + pick);
  load();
}
$('member').addEventListener('change', (e) => repick({ row: e.target.value }, 'to'));
$('to').addEventListener('change', (e) => repick({ to: e.target.value }, 'row'));
// An empty `lang` is the member's own, even when --lang chose another at the start.
$('lang').addEventListener('change', (e) => repick({ lang: e.target.value }));

const events = new EventSource('/events');
events.addEventListener('reload', load);
events.onopen = () => load();
load();
</script>
</body>
</html>
"#;
