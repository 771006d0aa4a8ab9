// The report's charts: each <figure data-chart> holds its Vega-Lite spec and data tables in a
// <script type="application/json">; this draws them with vegaEmbed (bundled beside this file
// in the same data: URI) and then hides the static SVG figure, which stays for printing and
// for readers without JavaScript. Column tables (see charts/tables.py) become rows here.
(function () {
  "use strict";

  function rows(table) {
    var names = Object.keys(table.columns), out = new Array(table.length);
    for (var i = 0; i < table.length; i++) out[i] = {};
    names.forEach(function (name) {
      var column = table.columns[name];
      if (Array.isArray(column)) {
        for (var i = 0; i < table.length; i++) out[i][name] = column[i];
      } else {
        for (var j = 0; j < table.length; j++) {
          var code = column.codes[j];
          out[j][name] = code < 0 ? null : column.levels[code];
        }
      }
    });
    return out;
  }

  function draw(figure) {
    var payload = JSON.parse(figure.querySelector("script.chart-data").textContent);
    var spec = payload.spec;
    spec.datasets = {};
    Object.keys(payload.tables).forEach(function (name) {
      spec.datasets[name] = rows(payload.tables[name]);
    });
    var holder = figure.querySelector(".chart");
    return window.vegaEmbed(holder, spec, {renderer: payload.renderer, actions: false})
      .then(function (result) {
        figure.classList.add("live");
        figure.chartView = result.view;  // for the page's own controls and the browser test
        figure.dataset.state = "drawn";
        figure.dispatchEvent(new CustomEvent("chart-drawn", {detail: result.view}));
      })
      .catch(function (error) {
        figure.dataset.state = "failed";
        console.error("chart " + holder.id + ": " + error);
      });
  }

  function drawAll() {
    var figures = Array.prototype.slice.call(document.querySelectorAll("figure[data-chart]"));
    Promise.all(figures.map(draw)).then(function () {
      document.body.dataset.charts = "drawn";
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawAll);
  else drawAll();
})();
