// camvault footage review: sign-in, a per-camera timeline, and seamless playback with
// hls.js over the API's per-range HLS playlist (one entry per recording, with its
// EXT-X-PROGRAM-DATE-TIME, so every frame's wall-clock time is known).
"use strict";
const $ = (id) => document.getElementById(id);
const CSRF = {"X-Camvault-CSRF": "1"};
const HEVC_MIME = 'video/mp4; codecs="hvc1.1.6.L93.B0"';
const S = {cam: null, dayStart: 0, zoom: 86400, viewStart: 0, timeline: null, hls: null,
           frags: [], playing: null, lastFrag: null};

function show(el, on) { $(el).hidden = !on; }
function say(text) { $("notice").textContent = text || ""; }
function fail(text) { $("error").textContent = text || ""; }
function fmt(ms) { return new Date(ms).toLocaleString(undefined, {hour12: false}); }
function fmtT(ms) { return new Date(ms).toLocaleTimeString(undefined, {hour12: false}); }
function dur(s) { return s >= 3600 ? (s / 3600).toFixed(1) + " h" :
                         s >= 60 ? Math.round(s / 60) + " min" : Math.round(s) + " s"; }

async function api(path, opts) {
  const o = Object.assign({credentials: "same-origin"}, opts || {});
  o.headers = Object.assign({}, CSRF, o.headers || {});
  const r = await fetch(path, o);
  if (r.status === 401 && !path.endsWith("/session")) { signedOut("Your session ended."); }
  const body = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) { const e = new Error((body && body.detail) || r.statusText); e.status = r.status;
               throw e; }
  return body;
}

// Sign-in --------------------------------------------------------------------------------
async function start() {
  try { signedIn(await api("/api/session")); } catch (e) { signedOut(""); }
}
function signedOut(why) {
  stopPlayback(); show("review", false); show("signout", false); show("signin", true);
  $("who").textContent = ""; fail(why);
}
function signedIn(s) {
  show("signin", false); show("review", true); show("signout", s.via === "session");
  $("who").textContent = "signed in as " + s.user; fail(""); loadCameras();
}
$("signin").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const s = await api("/api/session", {method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({username: $("username").value, password: $("password").value})});
    $("password").value = ""; signedIn(s);
  } catch (e) { fail(e.message); }
});
$("signout").addEventListener("click", async () => {
  try { await api("/api/session", {method: "DELETE"}); } finally { signedOut("Signed out."); }
});

// Cameras and the timeline ----------------------------------------------------------------
async function loadCameras() {
  const cams = await api("/api/cameras");
  const sel = $("camera"); sel.textContent = "";
  for (const c of cams) {
    const o = document.createElement("option"); o.value = c.id;
    o.textContent = c.name ? `${c.id} (${c.name})` : c.id; sel.appendChild(o);
  }
  if (!cams.length) { say("No camera is shared with you."); show("player-box", false); return; }
  show("player-box", true);
  // a link to an instant: #camera=ID&at=ISO-TIME[&zoom=600]
  const link = new URLSearchParams(location.hash.slice(1));
  const at = Date.parse(link.get("at") || "");
  if (link.get("camera") && cams.some((c) => c.id === link.get("camera"))) sel.value = link.get("camera");
  if (Number(link.get("zoom")) > 0) S.zoom = Number(link.get("zoom"));
  if (!isNaN(at)) { const d = new Date(at);
    $("day").value = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-` +
                     `${String(d.getDate()).padStart(2, "0")}`; }
  if (!$("day").value) { const d = new Date();
    $("day").value = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-` +
                     `${String(d.getDate()).padStart(2, "0")}`; }
  await loadTimeline();
  if (!isNaN(at)) { S.viewStart = Math.max(S.dayStart, at - viewLen() / 2); moveCursor(at); render(); }
}
function dayBounds() {
  const [y, m, d] = $("day").value.split("-").map(Number);
  const t0 = new Date(y, m - 1, d).getTime();
  return [t0, new Date(y, m - 1, d + 1).getTime()];
}
async function loadTimeline() {
  stopPlayback();
  S.cam = $("camera").value; const [t0, t1] = dayBounds(); S.dayStart = t0;
  S.timeline = await api(`/api/cameras/${encodeURIComponent(S.cam)}/timeline?` +
    new URLSearchParams({start: new Date(t0).toISOString(), end: new Date(t1).toISOString()}));
  S.timeline.dayEnd = t1;
  show("export-box", S.timeline.can_export);
  if (S.viewStart < t0 || S.viewStart >= t1) S.viewStart = t0;
  render();
  if (S.timeline.spans.some(undecodable)) {
    say(HEVC_SORRY);
  } else {
    const n = S.timeline.spans.length, g = S.timeline.gaps.length;
    say(n ? `${n} recorded span(s), ${g} gap(s). Click the timeline to play from that instant.`
          : "No footage on this day.");
  }
}
const HEVC_SORRY = "Some footage on this day is H.265 (HEVC), which this browser cannot " +
  "decode: export it and play it in a desktop player instead.";
function undecodable(span) {
  return span.codecs.some((c) => /^(hevc|h265|hvc1|hev1)$/i.test(c)) &&
         !(window.MediaSource && MediaSource.isTypeSupported(HEVC_MIME));
}
function viewLen() { return S.zoom * 1000; }
function xOf(ms) { return (ms - S.viewStart) / viewLen() * 100; }
function render() {
  const tl = $("timeline");
  for (const el of [...tl.querySelectorAll(".span")]) el.remove();
  for (const s of S.timeline.spans) {
    const a = Date.parse(s.start), b = Date.parse(s.end);
    if (b <= S.viewStart || a >= S.viewStart + viewLen()) continue;
    const el = document.createElement("div");
    const st = s.state.toLowerCase();
    el.className = "span " + (["archived", "restoring", "restored"].includes(st) ? st : "rec");
    el.dataset.state = s.state; el.dataset.start = s.start; el.dataset.end = s.end;
    el.title = `${fmt(a)} – ${fmtT(b)} · ${s.state} · ${s.recordings} recording(s)`;
    el.style.left = Math.max(0, xOf(a)) + "%";
    el.style.width = Math.max(0.15, Math.min(100, xOf(b)) - Math.max(0, xOf(a))) + "%";
    tl.appendChild(el);
  }
  const ticks = $("ticks"); ticks.textContent = "";
  const step = S.zoom / 6 * 1000;
  for (let i = 0; i <= 6; i++) {
    const t = document.createElement("span"); t.style.left = (i / 6 * 100) + "%";
    t.textContent = fmtT(S.viewStart + i * step); ticks.appendChild(t);
  }
  for (const b of document.querySelectorAll(".zoom button")) {
    b.classList.toggle("on", Number(b.dataset.zoom) === S.zoom);
  }
  moveCursor(S.cursorAt); drawSelection();
}
function moveCursor(ms) {
  S.cursorAt = ms; const c = $("cursor");
  if (ms === undefined || ms < S.viewStart || ms > S.viewStart + viewLen()) {
    c.style.display = "none"; return; }
  c.style.display = "block"; c.style.left = xOf(ms) + "%";
}
function spanAt(ms) {
  return S.timeline.spans.find((s) => Date.parse(s.start) <= ms && ms < Date.parse(s.end));
}
$("timeline").addEventListener("click", (ev) => {
  const r = $("timeline").getBoundingClientRect();
  const ms = S.viewStart + (ev.clientX - r.left) / r.width * viewLen();
  // click: play from there (and start an export range); shift-click: end the range
  const exporter = S.timeline && S.timeline.can_export;
  if (ev.shiftKey && exporter) { setRange(undefined, ms); return; }
  if (exporter) setRange(ms, undefined);
  pick(ms);
});
function pick(ms) {
  const s = spanAt(ms); show("restore-box", false); moveCursor(ms);
  if (!s) { say(`No footage at ${fmt(ms)}.`); return; }
  const st = s.state.toLowerCase();
  if (st === "archived" || st === "restoring") { offerRestore(s, ms); return; }
  if (undecodable(s)) { stopPlayback(); say(HEVC_SORRY); return; }
  play(ms).catch((e) => fail(e.message));
}
for (const b of document.querySelectorAll(".zoom button")) {
  b.addEventListener("click", () => {
    const centre = S.cursorAt !== undefined ? S.cursorAt : S.viewStart + viewLen() / 2;
    S.zoom = Number(b.dataset.zoom);
    S.viewStart = Math.min(Math.max(S.dayStart, centre - viewLen() / 2),
                           S.timeline.dayEnd - viewLen());
    render();
  });
}
$("earlier").addEventListener("click", () => { S.viewStart = Math.max(S.dayStart,
  S.viewStart - viewLen()); render(); });
$("later").addEventListener("click", () => { S.viewStart = Math.min(S.timeline.dayEnd -
  viewLen(), S.viewStart + viewLen()); render(); });
$("camera").addEventListener("change", () => loadTimeline().catch((e) => fail(e.message)));
$("day").addEventListener("change", () => { S.viewStart = 0;
  loadTimeline().catch((e) => fail(e.message)); });

// Export a range (needs `export` on the camera: the timeline says so) ----------------------
function iso(ms) { return new Date(Math.round(ms / 1000) * 1000).toISOString(); }
function rangeOf() {
  return [Date.parse($("export-start").value), Date.parse($("export-end").value)];
}
function setRange(a, b) {
  if (a !== undefined) {
    $("export-start").value = iso(a);
    const [, end] = rangeOf();
    if (isNaN(end) || end <= a) $("export-end").value = iso(a + 60000);
  }
  if (b !== undefined) {
    const [start] = rangeOf();
    if (!isNaN(start) && b < start) { $("export-end").value = iso(start); $("export-start").value = iso(b); }
    else $("export-end").value = iso(b);
  }
  drawSelection();
}
function drawSelection() {
  const el = $("selection"), [a, b] = rangeOf();
  if (!S.timeline || !S.timeline.can_export || isNaN(a) || isNaN(b) || b <= a || b < S.viewStart || a > S.viewStart + viewLen()) {
    el.style.display = "none"; return; }
  el.style.display = "block"; el.style.left = Math.max(0, xOf(a)) + "%";
  el.style.width = Math.max(0.15, Math.min(100, xOf(b)) - Math.max(0, xOf(a))) + "%";
}
for (const id of ["export-start", "export-end"]) $(id).addEventListener("change", drawSelection);
$("export-box").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const [a, b] = rangeOf(), status = $("export-status"), link = $("export-link");
  show("export-link", false); fail("");
  if (isNaN(a) || isNaN(b) || b <= a) { fail("Pick a range: click its start, shift-click its end."); return; }
  $("export").disabled = true;
  try {
    let job = await api("/api/exports", {method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({camera_id: S.cam, start: new Date(a).toISOString(),
                            end: new Date(b).toISOString()})});
    status.textContent = `Export ${job.id}: ${job.state}…`;
    while (job.state === "queued" || job.state === "running") {
      await new Promise((ok) => setTimeout(ok, 1000));
      job = await api(`/api/exports/${job.id}`);
      status.textContent = `Export ${job.id}: ${job.state} ${Math.round(job.progress || 0)}%`;
    }
    if (job.state !== "done") throw new Error(`export ${job.id} failed: ${job.error || job.state}`);
    const dl = await api(`/api/exports/${job.id}/download`, {method: "POST"});
    status.textContent = `Export ${job.id} done (${dur((Date.parse(job.actual_end) -
      Date.parse(job.actual_start)) / 1000)}).`;
    link.href = dl.url; show("export-link", true);
  } catch (e) { status.textContent = ""; fail(e.message); }
  finally { $("export").disabled = false; }
});

// Archived footage ---------------------------------------------------------------------------
async function offerRestore(span, ms) {
  stopPlayback();
  const st = span.state.toLowerCase();
  $("restore-text").textContent = st === "restoring"
    ? `Footage at ${fmt(ms)} is being restored from Glacier; try again later.`
    : `Footage at ${fmt(ms)} is archived in Glacier.`;
  show("restore", st === "archived" && S.timeline.can_restore);
  show("restore-box", true);
  $("restore").onclick = async () => {
    try {
      const q = new URLSearchParams({start: new Date(ms).toISOString(),
                                     end: new Date(ms + 1000).toISOString(), limit: "1"});
      const page = await api(`/api/cameras/${encodeURIComponent(S.cam)}/recordings?` + q);
      if (!page.items.length) throw new Error("no recording at that instant");
      const r = await api(`/api/recordings/${page.items[0].id}/restore`, {method: "POST"});
      $("restore-text").textContent = `Restore ${r.status}: the footage will play once ` +
        "S3 has restored it (hours for the Standard tier).";
      show("restore", false);
    } catch (e) { fail(e.message); }
  };
}

// Playback -------------------------------------------------------------------------------------
function stopPlayback() {
  if (S.hls) { S.hls.destroy(); S.hls = null; }
  S.frags = []; S.lastFrag = null;
}
function fragAtWall(ms) {
  return S.frags.find((f) => f.programDateTime <= ms &&
                             ms < f.programDateTime + f.duration * 1000);
}
function wallAt(t) {  // media time → wall-clock ms
  const f = S.frags.find((x) => x.start <= t && t < x.start + x.duration) ||
            S.frags[S.frags.length - 1];
  return f ? f.programDateTime + (t - f.start) * 1000 : undefined;
}
function play(ms) {
  const video = $("video");
  stopPlayback(); fail("");
  if (!window.Hls || !Hls.isSupported()) {
    return Promise.reject(new Error("this browser has no Media Source Extensions"));
  }
  const [t0, t1] = [S.dayStart, S.timeline.dayEnd];
  const hls = new Hls({autoStartLoad: false, maxBufferLength: 30, backBufferLength: 60,
                       xhrSetup: (xhr) => { xhr.withCredentials = true; }});
  S.hls = hls;
  return new Promise((resolve, reject) => {
    hls.on(Hls.Events.LEVEL_LOADED, (_ev, data) => {
      if (S.frags.length) return;
      S.frags = data.details.fragments;
      const f = fragAtWall(ms) || S.frags.find((x) => x.programDateTime > ms);
      if (!f) { reject(new Error("no playable footage at that instant")); return; }
      const pos = f.start + Math.max(0, ms - f.programDateTime) / 1000;
      S.startPos = pos; hls.startLoad(pos); video.currentTime = pos;
      video.play().catch(() => {}); resolve(pos);
    });
    hls.on(Hls.Events.FRAG_CHANGED, (_ev, data) => {
      const f = data.frag, p = S.lastFrag; S.lastFrag = f;
      if (!p || f.sn === p.sn) return;
      const hole = f.programDateTime - (p.programDateTime + p.duration * 1000);
      if (hole > 1500) say(`Skipped ${dur(hole / 1000)} without playable footage; ` +
                           `now at ${fmt(f.programDateTime)}.`);
    });
    hls.on(Hls.Events.ERROR, (_ev, data) => {
      if (!data.fatal) return;
      const hevc = /hev|hvc|265/i.test(JSON.stringify(data.reason || data.error || ""));
      fail(hevc ? "This footage is H.265, which this browser cannot decode."
                : `Playback failed: ${data.details}`);
      reject(new Error(data.details));
    });
    hls.loadSource(`/api/cameras/${encodeURIComponent(S.cam)}/playlist.m3u8?` +
      new URLSearchParams({start: new Date(t0).toISOString(), end: new Date(t1).toISOString()}));
    hls.attachMedia(video);
  });
}
function tick() {
  const w = wallAt($("video").currentTime);
  if (w !== undefined && S.hls) {
    $("clock").textContent = fmt(w); moveCursor(w);
    if (w > S.viewStart + viewLen() && S.zoom < 86400) { S.viewStart += viewLen(); render(); }
  }
}
$("video").addEventListener("timeupdate", tick);
$("video").addEventListener("seeked", tick);

// for the browser tests and for debugging from the console
window.camvault = {state: S, wallAt, fragAtWall, play, pick, setRange};
start();
