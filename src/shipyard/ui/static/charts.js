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

  function draw(el) {
    el.setAttribute("data-drawn", "1");
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
