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

  // Stored decision-boundary frames (study/boundary_frames.py): base64 of zlib of uint8
  // differences between consecutive frames. The browser inflates them (DecompressionStream) and
  // adds the differences up, mod 256, as boundary_frames.decode_levels does.
  function inflate(text) {
    var bytes = Uint8Array.from(atob(text), function (c) { return c.charCodeAt(0); });
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (buffer) {
      return new Uint8Array(buffer);
    });
  }

  function levels(artifact) {
    if (!artifact.levels) {
      artifact.levels = inflate(artifact.data).then(function (frames) {
        var size = artifact.shape[1] * artifact.shape[2];
        for (var i = size; i < frames.length; i++) frames[i] = (frames[i] + frames[i - size]) & 255;
        return frames;
      });
    }
    return artifact.levels;
  }

  function frameRows(artifact, frames, k, top) {
    var xs = artifact.x, ys = artifact.y, size = xs.length * ys.length, rows = [];
    var hx = (xs[1] - xs[0]) / 2, hy = (ys[1] - ys[0]) / 2;
    for (var i = 0; i < ys.length; i++) {
      for (var j = 0; j < xs.length; j++) {
        rows.push({x: xs[j], y: ys[i], x0: xs[j] - hx, x1: xs[j] + hx, y0: ys[i] - hy,
                   y1: ys[i] + hy, p: frames[k * size + i * xs.length + j] / top});
      }
    }
    return rows;
  }

  function followFrames(figure, view, frames) {
    var shown = 0;
    function update() {
      var key = frames.key.map(function (name) { return view.signal(name); }).join("|");
      var artifact = frames.runs[key], step = view.signal(frames.step), asked = ++shown;
      if (!artifact) return;
      var k = 0;
      artifact.steps.forEach(function (s, i) { if (s <= step) k = i; });
      levels(artifact).then(function (decoded) {
        if (asked !== shown) return;  // a later move of a control has been asked for
        var rows = frameRows(artifact, decoded, k, frames.levels);
        // view.data replaces the dataset's rows (the bundle gives no `vega.changeset`).
        view.data(frames.dataset, rows).runAsync().then(function () {
            figure.dataset.frame = key + "@" + artifact.steps[k];
          });
      });
    }
    frames.key.concat([frames.step]).forEach(function (name) {
      view.addSignalListener(name, update);
    });
    update();
    if (frames.play) addPlay(figure, view, frames.step, frames.play);
  }

  // Play / pause: the step signal moves on every PLAY_MS ms to the last step (from the first
  // again when play is pressed at the end); the slider follows its signal.
  var PLAY_MS = 120;
  function addPlay(figure, view, signal, range) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "play";
    button.textContent = "▶ play";
    var timer = null;
    function stop() { clearInterval(timer); timer = null; button.textContent = "▶ play"; }
    button.addEventListener("click", function () {
      if (timer) return stop();
      if (view.signal(signal) >= range.max) view.signal(signal, range.min).runAsync();
      button.textContent = "❚❚ pause";
      timer = setInterval(function () {
        var next = Math.min(range.max, view.signal(signal) + range.every);
        view.signal(signal, next).runAsync();
        if (next >= range.max) stop();
      }, PLAY_MS);
    });
    var bindings = figure.querySelector(".vega-bindings");  // beside the step slider
    (bindings || figure.querySelector(".chart")).appendChild(button);
  }

  function draw(figure) {
    var payload = JSON.parse(figure.querySelector("script.chart-data").textContent);
    var spec = payload.spec;
    spec.datasets = {};
    Object.keys(payload.tables).forEach(function (name) {
      spec.datasets[name] = rows(payload.tables[name]);
    });
    if (payload.frames) spec.datasets[payload.frames.dataset] = [];
    var holder = figure.querySelector(".chart");
    return vegaEmbed(holder, spec, {renderer: payload.renderer, actions: false})
      .then(function (result) {
        if (payload.frames) followFrames(figure, result.view, payload.frames);
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
