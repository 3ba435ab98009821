// canarykeys console: new alerts appear in the feed without a reload. The server sends hits as
// JSON over server-sent events; rows are built with textContent only, because every field of a
// hit (user agent above all) is attacker-controlled.
"use strict";
(function () {
  const status = document.getElementById("live-status");
  const rows = document.getElementById("feed-rows");
  if (!status || !rows || !window.EventSource) return;

  function cell(tr, parts) {
    const td = document.createElement("td");
    parts.forEach(function (p, i) {
      if (i > 0) td.appendChild(document.createElement("br"));
      const el = p.small ? document.createElement("small") : document.createTextNode("");
      el.textContent = p.text;
      td.appendChild(el);
    });
    tr.appendChild(td);
    return td;
  }

  function addRow(h) {
    if (rows.querySelector('tr[data-hit="' + CSS.escape(h.id) + '"]')) return;
    const tr = document.createElement("tr");
    tr.className = "hit new";
    tr.dataset.hit = h.id;
    cell(tr, [{ text: h.received_at }, { text: "event " + h.event_time, small: true }]);
    const tokenTd = document.createElement("td");
    const a = document.createElement("a");
    a.href = "/console/tokens?token=" + encodeURIComponent(h.token_id);
    a.textContent = h.memo || h.token_id;
    tokenTd.appendChild(a);
    tr.appendChild(tokenTd);
    const call = cell(tr, [{ text: h.event_name + " " }]);
    const src = document.createElement("small");
    src.textContent = h.event_source;
    call.appendChild(src);
    const source = [{ text: h.source_ip }];
    if (h.country) source.push({ text: h.country, small: true });
    (h.labels || []).forEach(function (l) { source.push({ text: l, small: true }); });
    cell(tr, source);
    cell(tr, [{ text: h.user_agent }]).className = "ua";
    cell(tr, [{ text: h.path }]);
    rows.insertBefore(tr, rows.firstChild);
    const none = document.getElementById("no-alerts");
    if (none) none.remove();
  }

  const source = new EventSource(status.dataset.stream);
  source.addEventListener("hits", function (e) {
    // Oldest first from the server: prepending each leaves the newest on top.
    JSON.parse(e.data).forEach(addRow);
  });
  source.onerror = function () { status.textContent = "Live updates interrupted; reconnecting…"; };
  source.onopen = function () { status.textContent = "New alerts appear here as they arrive."; };
})();
