// gwms log monitor: line permalinks (#L12, #L12-L20) highlight and scroll; nothing else needs script.
(function () {
  "use strict";
  function pane() { return document.getElementById("pane"); }

  function parse(hash) {
    var m = /^#L(\d+)(?:-L?(\d+))?$/.exec(hash || "");
    if (!m) return null;
    var a = parseInt(m[1], 10), b = m[2] ? parseInt(m[2], 10) : a;
    return a <= b ? [a, b] : [b, a];
  }

  function highlight() {
    var p = pane();
    if (!p) return;
    var old = p.querySelectorAll("tr.hl");
    for (var i = 0; i < old.length; i++) old[i].classList.remove("hl");
    var range = parse(window.location.hash);
    if (!range) return;
    var first = parseInt(p.dataset.first || "1", 10);
    var last = parseInt(p.dataset.last || "0", 10);
    var size = parseInt(p.dataset.window || "5000", 10);
    var total = parseInt(p.dataset.total || "0", 10);
    if ((range[0] < first || range[0] > last) && range[0] <= total) {
      // the line is on another page of this section: load that page, keep the anchor
      var url = new URL(window.location.href);
      var start = Math.floor((range[0] - 1) / size) * size + 1;
      if (start > 1) url.searchParams.set("from", String(start)); else url.searchParams.delete("from");
      window.location.replace(url.toString());
      return;
    }
    var target = null;
    for (var n = range[0]; n <= range[1] && n <= last; n++) {
      var row = document.getElementById("L" + n);
      if (row) { row.classList.add("hl"); target = target || row; }
    }
    if (target) target.scrollIntoView({ block: "center" });
  }

  function onClick(ev) {
    // shift-click a line number to select the range from the highlighted line
    var a = ev.target.closest && ev.target.closest("td.n a");
    if (!a || !ev.shiftKey) return;
    var range = parse(window.location.hash);
    var n = parseInt(a.textContent, 10);
    if (!range || isNaN(n)) return;
    ev.preventDefault();
    var lo = Math.min(range[0], n), hi = Math.max(range[0], n);
    history.replaceState(null, "", lo === hi ? "#L" + lo : "#L" + lo + "-L" + hi);
    highlight();
  }

  window.addEventListener("hashchange", highlight);
  document.addEventListener("DOMContentLoaded", function () {
    highlight();
    document.addEventListener("click", onClick);
  });
})();
