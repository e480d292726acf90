// Class view: refresh the course table from the JSON API without reloading the page.
// The page works without this script (the table is server-rendered; reload to refresh).
(function () {
  "use strict";
  var table = document.getElementById("students");
  if (!table) { return; }
  var d = table.dataset;
  var graphs = d.graphs ? d.graphs.split(" ") : [];
  var key = d.sort, desc = d.order !== "asc";

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function time(ms) {
    if (ms === null || ms === undefined) { return "-"; }
    var t = new Date(ms);
    return t.getUTCFullYear() + "-" + pad(t.getUTCMonth() + 1) + "-" + pad(t.getUTCDate()) + " " +
      pad(t.getUTCHours()) + ":" + pad(t.getUTCMinutes()) + ":" + pad(t.getUTCSeconds());
  }
  function num(v) {
    if (v === null || v === undefined) { return "-"; }
    return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }
  function short(u) { return u.length <= 10 ? u : u.slice(0, 8) + "\u2026"; }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    tr.appendChild(td);
    return td;
  }
  function compare(a, b) {
    var x = a[key], y = b[key];
    if (x === null || x === undefined) { return (y === null || y === undefined) ? 0 : 1; }
    if (y === null || y === undefined) { return -1; }
    var r = x < y ? -1 : (x > y ? 1 : 0);
    return desc ? -r : r;
  }
  function render(rows) {
    rows.sort(compare);
    var body = document.createElement("tbody");
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.dataset.user = r.user;
      tr.className = r.status;
      var td = document.createElement("td");
      var a = document.createElement("a");
      a.href = d.studentBase + encodeURIComponent(r.user);
      a.title = r.user;
      a.textContent = short(r.user);
      td.appendChild(a);
      tr.appendChild(td);
      td = document.createElement("td");
      var s = document.createElement("span");
      s.className = "status " + r.status;
      s.textContent = r.status;
      td.appendChild(s);
      if (r.reason) {
        td.appendChild(document.createElement("br"));
        var small = document.createElement("small");
        small.textContent = r.reason;
        td.appendChild(small);
      }
      tr.appendChild(td);
      cell(tr, time(r.first_event));
      cell(tr, time(r.last_event));
      cell(tr, String(r.events), "n");
      cell(tr, r.likely_task || "-", "likely");
      cell(tr, num(r.likely_distance), "n");
      graphs.forEach(function (g) { cell(tr, num(r.tasks[g]), "n"); });
      cell(tr, num(r.indicators.exploration), "n");
      cell(tr, num(r.indicators.enjoyment), "n");
      cell(tr, num(r.indicators.edges), "n");
      cell(tr, r.feedback || "-");
      body.appendChild(tr);
    });
    table.replaceChild(body, table.tBodies[0]);
    document.getElementById("count").textContent = String(rows.length);
    document.getElementById("updated").textContent = time(Date.now());
  }
  function refresh() {
    var q = "?window=" + encodeURIComponent(d.window) + (d.status ? "&status=" + encodeURIComponent(d.status) : "");
    fetch(d.api + q, { headers: { "Accept": "application/json" }, cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(render)
      .catch(function () { document.getElementById("updated").textContent = "(refresh failed, retrying)"; })
      .then(function () { window.setTimeout(refresh, Number(d.refreshMs) || 3000); });
  }
  window.setTimeout(refresh, Number(d.refreshMs) || 3000);
}());
