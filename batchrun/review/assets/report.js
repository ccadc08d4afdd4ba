// The report page: a contact sheet (or a table of replies) drawn by virtual scrolling over the line
// chunks in data/, reject marks kept in localStorage and saved as the marks file.
(function () {
  "use strict";
  var meta = BR.meta, $ = function (id) { return document.getElementById(id); };
  var LINE_H = 168, CELL_W = 132, LABEL_W = 220, OVERSCAN = 3;
  var lines = [], view = [], focus = {line: 0, cell: 0}, marks = loadMarks();
  var filters = {status: "", matrix: {}, search: "", suspiciousFirst: false};
  var isText = meta.kind === "text";

  function loadMarks() {
    try { return JSON.parse(localStorage.getItem(marksKey()) || "{}"); } catch (e) { return {}; }
  }
  function marksKey() { return "batchrun.marks." + meta.job; }
  function storeMarks() {
    localStorage.setItem(marksKey(), JSON.stringify(marks));
    $("mark-count").textContent = Object.keys(marks).length;
  }

  // ---------------------------------------------------------------- data arriving
  function takeChunks() {
    lines = [];
    for (var i = 0; i < BR.chunks.length; i++) {
      if (!BR.chunks[i]) continue;
      BR.chunks[i].forEach(function (l) { l.k = i; });  // the chunk of details that holds its rows
      lines = lines.concat(BR.chunks[i]);
    }
    var have = BR.chunks.filter(Boolean).length;
    $("loading").textContent = have < meta.chunkCount ? "loading " + have + "/" + meta.chunkCount : "";
  }
  function loadScript(src, done) {
    var s = document.createElement("script");
    s.src = src; s.onload = done; document.head.appendChild(s);
  }
  function chunkName(kind, i) { return "data/" + kind + "-" + String(i).padStart(4, "0") + ".js"; }
  function loadRest(i) {
    if (i >= meta.chunkCount) return;
    loadScript(chunkName("lines", i), function () { setTimeout(function () { loadRest(i + 1); }, 0); });
  }
  BR.listeners.push(function () { takeChunks(); applyFilters(); });

  // ---------------------------------------------------------------- filtering
  function cellMatches(c) {
    if (filters.status === "suspicious") { if (!c.f || !c.f.length) return false; }
    else if (filters.status === "rejected") { if (!marks[c.id]) return false; }
    else if (filters.status && c.s !== filters.status) return false;
    var combo = meta.combos[c.k];
    for (var j = 0; j < meta.matrixColumns.length; j++) {
      var want = filters.matrix[meta.matrixColumns[j]];
      if (want !== undefined && want !== "" && String(combo[j]) !== want) return false;
    }
    return true;
  }
  function lineMatches(line) {
    if (!filters.search) return true;
    return line.in.join(" ").toLowerCase().indexOf(filters.search) >= 0;
  }
  function visibleCombos() {
    return meta.combos.map(function (c, k) { return k; }).filter(function (k) {
      return meta.matrixColumns.every(function (name, j) {
        var want = filters.matrix[name];
        return want === undefined || want === "" || String(meta.combos[k][j]) === want;
      });
    });
  }
  function applyFilters() {
    view = [];
    var cells = 0;
    lines.forEach(function (line) {
      if (!lineMatches(line)) return;
      var kept = line.c.filter(cellMatches);
      if (!kept.length) return;
      cells += kept.length;
      if (isText) { kept.forEach(function (c) { view.push({line: line, cells: [c], flagged: c.f && c.f.length}); }); }
      else view.push({line: line, cells: kept, flagged: kept.some(function (c) { return c.f && c.f.length; })});
    });
    if (filters.suspiciousFirst) view = view.filter(function (v) { return v.flagged; }).concat(view.filter(function (v) { return !v.flagged; }));
    $("count").textContent = cells + " cells in " + view.length + (isText ? " replies" : " rows") +
      (lines.length < meta.lines ? " (of " + lines.length + " rows loaded)" : "");
    $("count").dataset.cells = cells;
    focus.line = Math.min(focus.line, Math.max(view.length - 1, 0));
    drawHead(); $("spacer").style.height = (view.length * LINE_H) + "px"; draw(true);
  }

  // ---------------------------------------------------------------- drawing
  function comboLabel(k) { return meta.combos[k].join(" · ") || "result"; }
  function comboWidth() { return meta.maxVariants * CELL_W + 8; }
  function drawHead() {
    var head = $("sheet-head"), html = '<div style="width:' + LABEL_W + 'px">' + esc(meta.inputColumns.join(", ") || "row") + "</div>";
    if (isText) html += '<div style="flex:1">reply</div>';
    else visibleCombos().forEach(function (k) { html += '<div style="width:' + comboWidth() + 'px">' + esc(comboLabel(k)) + "</div>"; });
    head.innerHTML = html;
  }
  var drawn = {first: -1, last: -1};
  function draw(force) {
    var sc = $("scroller"), first = Math.max(0, Math.floor(sc.scrollTop / LINE_H) - OVERSCAN);
    var last = Math.min(view.length, Math.ceil((sc.scrollTop + sc.clientHeight) / LINE_H) + OVERSCAN);
    if (!force && first === drawn.first && last === drawn.last) return;
    drawn = {first: first, last: last};
    var combos = visibleCombos(), html = "";
    for (var i = first; i < last; i++) html += isText ? textLineHtml(view[i], i) : lineHtml(view[i], i, combos);
    $("spacer").innerHTML = html;
    $("sheet-head").scrollLeft = sc.scrollLeft;
  }
  function labelHtml(line) {
    var parts = line.in.map(function (v, j) { return j === 0 ? "<b>" + esc(v) + "</b>" : esc(v); });
    return '<div class="label">' + parts.join("<br>") + "</div>";
  }
  function lineHtml(entry, i, combos) {
    var byCombo = {};
    entry.cells.forEach(function (c) { (byCombo[c.k] = byCombo[c.k] || []).push(c); });
    var html = '<div class="line" style="top:' + (i * LINE_H) + "px;width:" + (LABEL_W + combos.length * comboWidth()) + 'px">' + labelHtml(entry.line);
    combos.forEach(function (k) {
      html += '<div class="combo" style="width:' + comboWidth() + 'px">';
      (byCombo[k] || []).forEach(function (c) { html += cellHtml(c, i, entry.cells.indexOf(c)); });
      html += "</div>";
    });
    return html + "</div>";
  }
  function textLineHtml(entry, i) {
    var c = entry.cells[0], combo = meta.combos[c.k].join(" · ");
    return '<div class="textline" style="top:' + (i * LINE_H) + 'px">' + labelHtml({in: entry.line.in.concat(combo ? [combo] : [])}) +
      cellHtml(c, i, 0) + "</div>";
  }
  function cellHtml(c, i, j) {
    var cls = "cell s-" + c.s + (marks[c.id] ? " rejected" : "") + (c.f && c.f.length ? " flagged" : "") +
      (i === focus.line && j === focus.cell ? " focus" : "");
    var cap = (meta.maxVariants > 1 ? "v" + c.v + " " : "") + (c.f && c.f.length ? c.f.join("; ") : c.s) +
      (c.e ? " · redone, " + c.e + " earlier" : "");
    var body;
    if (isText) body = "<pre>" + esc(c.x || c.r || c.s) + "</pre>";
    else if (c.t) body = '<img loading="lazy" decoding="async" alt="" src="thumbs/' + c.h + '.webp">';
    else body = '<div class="reason"><b>' + esc(c.s) + "</b>" + esc(c.r || (c.h ? "no thumbnail: image unreadable" : "")) + "</div>";
    var flag = c.f && c.f.length ? '<span class="flag" title="' + esc(c.f.join("; ")) + '">!</span>' : "";
    return '<div class="' + cls + '" data-row="' + esc(c.id) + '" data-i="' + i + '" data-j="' + j + '" title="' + esc(c.r || c.s) + '">' +
      body + flag + '<div class="cap">' + esc(cap) + "</div></div>";
  }
  function esc(v) {
    return String(v === null || v === undefined ? "" : v).replace(/[&<>"]/g, function (ch) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[ch];
    });
  }

  // ---------------------------------------------------------------- focus, marks, detail
  function focusedCell() { var e = view[focus.line]; return e && e.cells[focus.cell]; }
  function moveFocus(dl, dc) {
    if (!view.length) return;
    focus.line = Math.max(0, Math.min(view.length - 1, focus.line + dl));
    focus.cell = Math.max(0, Math.min(view[focus.line].cells.length - 1, focus.cell + dc));
    var sc = $("scroller"), top = focus.line * LINE_H;
    if (top < sc.scrollTop) sc.scrollTop = top;
    else if (top + LINE_H > sc.scrollTop + sc.clientHeight) sc.scrollTop = top + LINE_H - sc.clientHeight;
    draw(true);
  }
  function toggleMark(c) {
    if (!c || !c.h) return;  // only an image can be rejected
    if (marks[c.id]) delete marks[c.id];
    else marks[c.id] = {image_sha256: c.h, note: ""};
    storeMarks(); draw(true);
    if (!$("detail").hidden) openDetail(c);
  }
  function saveMarks() {
    var rejected = Object.keys(marks).sort().map(function (id) {
      return {row_id: id, image_sha256: marks[id].image_sha256 || null, note: marks[id].note || ""};
    });
    var doc = {version: 1, job: meta.job, rejected: rejected};
    var a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2) + "\n"], {type: "application/json"}));
    a.download = meta.job + "-marks.json";
    document.body.appendChild(a); a.click(); a.remove();
  }
  function openDetail(c) {
    var entry = view[focus.line], chunk = entry ? entry.line.k : 0;
    if (!BR.details[chunk]) { loadScript(chunkName("detail", chunk), function () { openDetail(c); }); return; }
    var d = BR.details[chunk][c.id] || {};
    var rows = [["status", c.s + (c.r ? ": " + c.r : "")], ["model", d.model], ["finish reason", d.finish],
      ["tokens", d.tokens], ["cost", d.cost], ["tier", d.tier], ["latency", d.latency], ["attempts", d.attempts],
      ["size", d.size]];
    Object.keys(d.vars || {}).forEach(function (k) { rows.push([k, d.vars[k]]); });
    var html = (d.img && !isText ? '<img class="full" alt="" src="' + esc(d.img) + '">' : "") + '<div class="facts">' +
      (c.f && c.f.length ? c.f.map(function (f) { return '<span class="badge warn">' + esc(f) + "</span> "; }).join("") : "") +
      (marks[c.id] ? '<span class="badge warn">rejected</span>' : "") +
      "<h3>Prompt</h3><pre class=\"prompt\">" + esc(d.prompt || "") + "</pre>" +
      (d.text ? "<h3>Reply</h3><pre class=\"reply\">" + esc(formatReply(d.text)) + "</pre>" : "") +
      "<table>" + rows.filter(function (r) { return r[1] !== undefined && r[1] !== null && r[1] !== ""; })
        .map(function (r) { return "<tr><td>" + esc(r[0]) + "</td><td>" + esc(r[1]) + "</td></tr>"; }).join("") + "</table>" +
      earlierHtml(d.earlier) +
      (c.h ? '<p><button type="button" id="detail-reject">' + (marks[c.id] ? "Unreject" : "Reject") + " (r)</button> " +
        (marks[c.id] ? '<input id="detail-note" placeholder="note" value="' + esc(marks[c.id].note) + '">' : "") + "</p>" : "") +
      '<p class="muted">Esc closes</p></div>';
    var panel = $("detail").querySelector(".panel");
    panel.innerHTML = html; $("detail").hidden = false;
    if ($("detail-reject")) $("detail-reject").onclick = function () { toggleMark(c); };
    if ($("detail-note")) $("detail-note").oninput = function (e) { marks[c.id].note = e.target.value; storeMarks(); };
  }
  function earlierHtml(earlier) {
    if (!earlier || !earlier.length) return "";
    return '<h3>Earlier versions</h3><div class="earlier">' + earlier.map(function (v) {
      var img = v.thumb ? '<a href="' + esc(v.img) + '"><img alt="" src="' + esc(v.thumb) + '"></a>' : "";
      return '<figure>' + img + "<figcaption>version " + esc(v.version) + ", " + esc(v.status || "no result") +
        (v.note ? ": " + esc(v.note) : "") + "</figcaption></figure>";
    }).join("") + "</div>";
  }
  function formatReply(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
  }

  // ---------------------------------------------------------------- controls and keys
  function fillControls() {
    var statuses = [["", "all"], ["suspicious", "suspicious"], ["rejected", "rejected"]].concat(meta.statuses.map(function (s) { return [s, s]; }));
    $("filter-status").innerHTML = statuses.map(function (s) { return '<option value="' + s[0] + '">' + s[1] + "</option>"; }).join("");
    $("matrix-filters").innerHTML = meta.matrixColumns.map(function (name, j) {
      var values = [];
      meta.combos.forEach(function (c) { if (values.indexOf(String(c[j])) < 0) values.push(String(c[j])); });
      return '<label>' + esc(name) + ' <select data-matrix="' + esc(name) + '"><option value="">all</option>' +
        values.map(function (v) { return '<option value="' + esc(v) + '">' + esc(v) + "</option>"; }).join("") + "</select></label> ";
    }).join("");
  }
  function wire() {
    $("filter-status").onchange = function (e) { filters.status = e.target.value; applyFilters(); };
    $("matrix-filters").onchange = function (e) { filters.matrix[e.target.dataset.matrix] = e.target.value; applyFilters(); };
    $("search").oninput = function (e) { filters.search = e.target.value.toLowerCase(); applyFilters(); };
    $("suspicious-first").onchange = function (e) { filters.suspiciousFirst = e.target.checked; applyFilters(); };
    $("scroller").onscroll = function () { draw(false); };
    $("toggle-summary").onclick = function () { $("summary").hidden = !$("summary").hidden; draw(true); };
    $("save-marks").onclick = saveMarks;
    $("show-help").onclick = function () { $("help").hidden = false; };
    $("spacer").onclick = function (e) {
      var el = e.target.closest(".cell"); if (!el) return;
      focus = {line: +el.dataset.i, cell: +el.dataset.j}; draw(true); openDetail(focusedCell());
    };
    Array.prototype.forEach.call(document.querySelectorAll(".overlay"), function (o) {
      o.onclick = function (e) { if (e.target === o) o.hidden = true; };
    });
    document.addEventListener("keydown", onKey);
    window.addEventListener("resize", function () { draw(true); });
  }
  function onKey(e) {
    if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") { if (e.key === "Escape") e.target.blur(); return; }
    var moves = {ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0]};
    if (moves[e.key]) { e.preventDefault(); moveFocus(moves[e.key][0], moves[e.key][1]); }
    else if (e.key === "r") toggleMark(focusedCell());
    else if (e.key === "Enter" && focusedCell()) openDetail(focusedCell());
    else if (e.key === "Escape") { $("detail").hidden = true; $("help").hidden = true; }
    else if (e.key === "?") $("help").hidden = !$("help").hidden;
  }

  takeChunks(); fillControls(); wire(); storeMarks(); applyFilters();
  requestAnimationFrame(function () {
    BR.firstSheetMs = performance.now();
    document.body.dataset.ready = "1";
    loadRest(1);
  });
})();
