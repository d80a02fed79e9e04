"""The minimal web UI: one static page that uses the JSON API with the user's token."""

INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>camvault</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;max-width:70em}
table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #ddd}
video{max-width:100%;margin-top:1em}.err{color:#b00}
</style></head><body>
<h1>camvault</h1>
<p>API token: <input id="tok" type="password" size="50">
<button onclick="saveTok()">use</button> &middot;
<a href="/docs">API docs</a> &middot; <a href="/openapi.json">OpenAPI</a></p>
<p id="msg" class="err"></p>
<div><select id="cams" onchange="listRecs()"></select>
from <input id="start" type="datetime-local"> to <input id="end" type="datetime-local">
<button onclick="listRecs()">list</button></div>
<table id="recs"></table><video id="player" controls></video>
<script>
const $ = (id) => document.getElementById(id);
function tok() { return sessionStorage.getItem("camvault_token") || ""; }
function saveTok() { sessionStorage.setItem("camvault_token", $("tok").value); $("tok").value="";
  listCams(); }
async function api(path, opts) {
  const r = await fetch(path, Object.assign({headers: {Authorization: "Bearer " + tok()}},
                                            opts || {}));
  const body = await r.json();
  if (!r.ok) { $("msg").textContent = r.status + ": " + (body.detail || r.statusText);
               throw new Error(body.detail); }
  $("msg").textContent = ""; return body;
}
function iso(v) { return v ? new Date(v).toISOString() : ""; }
async function listCams() {
  const cams = await api("/api/cameras");
  $("cams").innerHTML = cams.map(c => `<option value="${encodeURIComponent(c.id)}">` +
    `${c.id} ${c.name ? "(" + c.name.replace(/</g, "&lt;") + ")" : ""}</option>`).join("");
  if (cams.length) listRecs();
}
async function listRecs() {
  const q = new URLSearchParams();
  if ($("start").value) q.set("start", iso($("start").value));
  if ($("end").value) q.set("end", iso($("end").value));
  const page = await api(`/api/cameras/${$("cams").value}/recordings?` + q);
  $("recs").innerHTML = "<tr><th>start (UTC)</th><th>duration</th><th></th></tr>" +
    page.items.map(r => `<tr><td>${r.start_time}</td><td>${r.duration_seconds.toFixed(1)} s` +
    `</td><td><button onclick="play(${r.id})">play</button></td></tr>`).join("");
}
async function play(id) {
  const p = await api(`/api/recordings/${id}/playback`, {method: "POST"});
  $("player").src = p.url; $("player").play();
}
if (tok()) listCams();
</script></body></html>
"""
