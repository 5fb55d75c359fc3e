// CitySOC run page: polls GET /api/v1/runs/<id> while the run is in progress and updates each
// step's status, attempt, times and output in place.  External file (CSP: no inline scripts);
// step output is attacker-influenced, so it is only ever written with textContent.
"use strict";

(function () {
  function text(el, value) {
    if (el) {
      el.textContent = value === null || value === undefined ? "–" : String(value);
    }
  }

  function time(value) {
    return value ? value.replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC") : "–";
  }

  function render(run) {
    var status = document.getElementById("run-status");
    if (status) {
      status.textContent = run.status;
      status.className = "badge run-" + run.status;
    }
    text(document.getElementById("run-updated"), time(run.updated));
    text(document.getElementById("run-error"), run.error || "–");
    var body = document.getElementById("run-steps");
    if (!body) {
      return;
    }
    run.steps.forEach(function (step) {
      var row = null;
      body.querySelectorAll("tr[data-ref]").forEach(function (candidate) {
        if (candidate.getAttribute("data-ref") === step.ref) {
          row = candidate;
        }
      });
      if (!row) {
        return;  // a step added after the page loaded (loops): shown on reload
      }
      var badge = row.querySelector('[data-field="status"]');
      if (badge) {
        badge.textContent = step.status;
        badge.className = "badge step-" + step.status;
      }
      text(row.querySelector('[data-field="attempt"]'), step.attempt);
      text(row.querySelector('[data-field="started"]'), time(step.started));
      text(row.querySelector('[data-field="finished"]'), time(step.finished));
      var output = step.error ? step.error : (step.output === null ? "" : JSON.stringify(step.output, null, 2));
      var pre = row.querySelector('[data-field="output"]');
      if (pre) {
        pre.textContent = output;
      }
    });
  }

  function poll(box) {
    var url = box.getAttribute("data-url");
    var every = parseInt(box.getAttribute("data-poll-ms"), 10) || 2000;
    function tick() {
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (response) {
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.json();
        })
        .then(function (body) {
          render(body.run);
          if (body.final) {
            box.setAttribute("data-final", "true");
            text(document.getElementById("run-live-note"), "The run has finished.");
          } else {
            setTimeout(tick, every);
          }
        })
        .catch(function () {
          text(document.getElementById("run-live-note"), "Live updates stopped: the console could not be reached.");
        });
    }
    setTimeout(tick, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("run-live");
    if (box && box.getAttribute("data-final") !== "true") {
      poll(box);
    }
  });
})();
