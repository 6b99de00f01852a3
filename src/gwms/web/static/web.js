// Draws the plotly figures each page embeds as <script type="application/json" class="gwms-chart">.
(function () {
  "use strict";
  function draw() {
    if (typeof Plotly === "undefined") { return; }
    document.querySelectorAll("script.gwms-chart").forEach(function (el) {
      var fig = JSON.parse(el.textContent);
      var box = document.createElement("div");
      box.className = "plot";
      el.parentNode.appendChild(box);
      Plotly.newPlot(box, fig.data || [], fig.layout || {}, {displaylogo: false, responsive: true});
    });
    document.body.setAttribute("data-charts-drawn", "1");
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
