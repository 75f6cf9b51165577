// Metric charts drawn with uPlot from the server's JSON: min/max per step bucket.
// A chart is <div class="chart" data-src="..." data-kind="run|compare">; this file finds them
// on load and after every htmx swap.
(function () {
  "use strict";
  var COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf"];

  function size(el) {
    return { width: Math.max(300, (el.clientWidth || 600) - 20), height: 220 };
  }

  function runChart(el, doc) {
    var data = [doc.steps, doc.high];
    var series = [{ label: "step" }, { label: doc.exact ? doc.key : "max", stroke: COLOURS[0] }];
    if (!doc.exact) {
      data.push(doc.low);
      series.push({ label: "min", stroke: COLOURS[0], dash: [4, 4] });
    }
    return { data: data, series: series };
  }

  function compareChart(el, doc) {
    var tables = [];
    var series = [{ label: "step" }];
    doc.series.forEach(function (s, i) {
      var colour = COLOURS[i % COLOURS.length];
      var table = [s.steps, s.high];
      series.push({ label: s.name + (s.exact ? "" : " max"), stroke: colour });
      if (!s.exact) {
        table.push(s.low);
        series.push({ label: s.name + " min", stroke: colour, dash: [4, 4] });
      }
      tables.push(table);
    });
    return { data: tables.length ? uPlot.join(tables) : [[]], series: series };
  }

  // A time series given in the page itself (data-series, JSON): x in epoch seconds.
  function seriesChart(el) {
    var doc = JSON.parse(el.getAttribute("data-series"));
    var series = [{ label: "time" }];
    var data = [doc.x];
    doc.series.forEach(function (s, i) {
      series.push({ label: s.label, stroke: COLOURS[i % COLOURS.length], dash: i ? [4, 4] : undefined });
      data.push(s.values);
    });
    var dims = size(el);
    new uPlot({ title: el.getAttribute("data-title"), width: dims.width, height: dims.height,
      series: series }, data, el);
    el.setAttribute("data-ready", "1");
  }

  // Parallel coordinates on a canvas: one vertical axis per param or metric, scaled to its
  // own range, one line per run (data-series: {axes: [...], lines: [{name, values}]}).
  function parallelChart(el) {
    var doc = JSON.parse(el.getAttribute("data-series"));
    var dims = size(el);
    var canvas = document.createElement("canvas");
    var ratio = window.devicePixelRatio || 1;
    canvas.width = dims.width * ratio;
    canvas.height = 300 * ratio;
    canvas.style.width = dims.width + "px";
    canvas.style.height = "300px";
    el.appendChild(canvas);
    var ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    var top = 30, bottom = 270, left = 60, right = dims.width - 60;
    var n = doc.axes.length;
    var xs = doc.axes.map(function (_, i) { return left + (right - left) * i / Math.max(1, n - 1); });
    var ranges = doc.axes.map(function (_, i) {
      var vals = doc.lines.map(function (l) { return l.values[i]; }).filter(function (v) { return v !== null; });
      var lo = Math.min.apply(null, vals), hi = Math.max.apply(null, vals);
      return hi > lo ? [lo, hi] : [lo - 1, hi + 1];
    });
    function y(i, v) { return bottom - (bottom - top) * (v - ranges[i][0]) / (ranges[i][1] - ranges[i][0]); }
    ctx.font = "12px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.strokeStyle = "#999";
    xs.forEach(function (x, i) {
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
      ctx.fillStyle = "#1d2330";
      ctx.fillText(doc.axes[i], x, top - 10);
      ctx.fillStyle = "#5f6b7a";
      ctx.fillText(String(+ranges[i][1].toPrecision(4)), x, top + 12);
      ctx.fillText(String(+ranges[i][0].toPrecision(4)), x, bottom + 16);
    });
    doc.lines.forEach(function (line, k) {
      ctx.strokeStyle = COLOURS[k % COLOURS.length];
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      var drawing = false;
      line.values.forEach(function (v, i) {
        if (v === null) { drawing = false; return; }
        if (drawing) { ctx.lineTo(xs[i], y(i, v)); } else { ctx.moveTo(xs[i], y(i, v)); drawing = true; }
      });
      ctx.stroke();
    });
    el.setAttribute("data-ready", "1");
  }

  function draw(el) {
    el.setAttribute("data-drawn", "1");
    if (el.getAttribute("data-kind") === "parallel") {
      try { parallelChart(el); } catch (error) {
        el.textContent = "could not draw the chart: " + error.message;
        el.setAttribute("data-ready", "error");
      }
      return;
    }
    if (el.getAttribute("data-kind") === "series") {
      try { seriesChart(el); } catch (error) {
        el.textContent = "could not draw the chart: " + error.message;
        el.setAttribute("data-ready", "error");
      }
      return;
    }
    fetch(el.getAttribute("data-src"), { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (doc) {
        var built = el.getAttribute("data-kind") === "compare" ? compareChart(el, doc) : runChart(el, doc);
        var dims = size(el);
        var title = el.getAttribute("data-title") || doc.key;
        var note = doc.exact === false || (doc.series && doc.series.some(function (s) { return !s.exact; }))
          ? " (min/max per step bucket)" : "";
        new uPlot({
          title: title + note,
          width: dims.width,
          height: dims.height,
          scales: { x: { time: false } },
          series: built.series,
        }, built.data, el);
        el.setAttribute("data-ready", "1");
      })
      .catch(function (error) {
        el.textContent = "could not load the chart: " + error.message;
        el.setAttribute("data-ready", "error");
      });
  }

  function drawAll(root) {
    (root || document).querySelectorAll(".chart:not([data-drawn])").forEach(draw);
  }
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawAll(event.target); });
})();
