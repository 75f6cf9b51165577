// Shipyard UI: every state-changing htmx request carries the session's CSRF token.
// No inline scripts anywhere (the Content-Security-Policy forbids them): this file is it.
(function () {
  "use strict";
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });
  // "Select all" on the runs table, and the compare button's count.
  function updateCompare() {
    var picked = document.querySelectorAll('input[name="run"]:checked').length;
    var button = document.getElementById("compare-button");
    if (button) {
      button.disabled = picked < 2 || picked > 20;
      button.textContent = "Compare selected (" + picked + ")";
    }
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target && target.id === "select-all") {
      document.querySelectorAll('input[name="run"]').forEach(function (box) {
        box.checked = target.checked;
      });
    }
    updateCompare();
  });
  document.addEventListener("htmx:afterSettle", updateCompare);
  document.addEventListener("DOMContentLoaded", updateCompare);
})();
