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

  document.addEventListener("DOMContentLoaded", function () {
    autosubmit();
    confirmations();
    localTimes();
  });
})();
