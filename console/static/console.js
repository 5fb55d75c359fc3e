// CitySOC console: small progressive enhancements.  Every page works without this file;
// it is loaded as an external script because the Content-Security-Policy forbids inline code.
"use strict";

(function () {
  // Filter selects submit their form on change (the Filter button stays for keyboard and no-JS use).
  function autosubmit() {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () {
        if (select.form) {
          select.form.submit();
        }
      });
    });
  }

  // Forms with data-confirm ask before they change an incident.
  function confirmations() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) {
          event.preventDefault();
        }
      });
    });
  }

  // Times are rendered in UTC; the tooltip gives the analyst's local time.
  function localTimes() {
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        el.title = when.toLocaleString() + " (local time)";
      }
    });
  }

  // The dashboard's live panel: counters and the source health map from a JSON endpoint every few
  // seconds, the charts (server-side SVG) every few polls.  Text goes in with textContent only, and the
  // SVG is parsed as an XML document (never innerHTML), so nothing in the data can become markup or code.
  var LIVE_SECONDS = 5;
  var CHART_EVERY = 6;

  function renderSources(list, sources) {
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    sources.forEach(function (s) {
      var item = document.createElement("li");
      item.className = "source source-" + (["ok", "quiet", "silent"].indexOf(s.state) >= 0 ? s.state : "quiet");
      var name = document.createElement("span");
      name.className = "name";
      name.textContent = s.name;
      var state = document.createElement("span");
      state.className = "state";
      state.textContent = s.state;
      var info = document.createElement("small");
      info.textContent = s.events + " events · last " + (s.last_seen || "never");
      item.appendChild(name);
      item.appendChild(state);
      item.appendChild(info);
      item.title = s.name + ": " + s.state;
      list.appendChild(item);
    });
  }

  function refreshCharts(panel) {
    var template = panel.getAttribute("data-chart-url");
    document.querySelectorAll("[data-chart]").forEach(function (box) {
      var url = template.replace("NAME", encodeURIComponent(box.getAttribute("data-chart")));
      fetch(url, { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
        .then(function (text) {
          var doc = new DOMParser().parseFromString(text, "image/svg+xml");
          var svg = doc.documentElement;
          if (svg && svg.nodeName === "svg" && !doc.querySelector("parsererror")) {
            box.replaceChildren(document.importNode(svg, true));
          }
        })
        .catch(function () { /* keep the last chart; the next round tries again */ });
    });
  }

  function live() {
    var panel = document.getElementById("live");
    if (!panel) {
      return;
    }
    var url = panel.getAttribute("data-live-url");
    var round = 0;
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
        .then(function (data) {
          ["open_incidents", "sla_breached", "new_last_hour", "events_last_5m"].forEach(function (key) {
            var el = panel.querySelector('[data-live="' + key + '"]');
            if (el && key in data) {
              el.textContent = String(data[key]);
            }
          });
          var updated = panel.querySelector('[data-live="updated"]');
          if (updated) {
            updated.textContent = "updated " + data.now;
          }
          var list = document.querySelector('[data-live="sources"]');
          if (list && Array.isArray(data.sources)) {
            renderSources(list, data.sources);
          }
          panel.setAttribute("data-live-ok", "1");
        })
        .catch(function () {
          panel.setAttribute("data-live-ok", "0");
        });
      round += 1;
      if (round % CHART_EVERY === 0) {
        refreshCharts(panel);
      }
    }
    poll();
    window.setInterval(poll, LIVE_SECONDS * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    autosubmit();
    confirmations();
    localTimes();
    live();
  });
})();
