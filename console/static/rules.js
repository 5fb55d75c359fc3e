// CitySOC Sigma editor: validates the rule while it is typed, through POST /api/v1/rules/validate.
// External file (the Content-Security-Policy forbids inline scripts).  Rule text and messages are
// shown with textContent only: a pasted rule can never become markup.
"use strict";

(function () {
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function show(box, problems, ok) {
    while (box.firstChild) {
      box.removeChild(box.firstChild);
    }
    var head = document.createElement("p");
    head.className = ok ? "live-ok" : "live-error";
    head.textContent = ok ? "Valid rule." : "The rule has errors.";
    box.appendChild(head);
    if (!problems.length) {
      return;
    }
    var list = document.createElement("ul");
    list.className = "problems";
    problems.forEach(function (p) {
      var item = document.createElement("li");
      item.className = "problem-" + p.severity;
      item.textContent = (p.line ? "line " + p.line + ": " : "") + p.severity + ": " + p.message;
      list.appendChild(item);
    });
    box.appendChild(list);
  }

  function liveValidation(form) {
    var text = form.querySelector("textarea[name=text]");
    var box = document.getElementById("live-problems");
    var url = form.getAttribute("data-validate-url");
    var timer = null;
    var seq = 0;
    if (!text || !box || !url) {
      return;
    }
    function validate() {
      if (!text.value.trim()) {
        return;
      }
      var mine = ++seq;
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": csrfToken()},
        body: JSON.stringify({text: text.value})
      }).then(function (response) {
        return response.json().then(function (body) {
          return {status: response.status, body: body};
        });
      }).then(function (answer) {
        if (mine !== seq) {
          return;  // an older answer arriving late
        }
        if (answer.status === 200) {
          show(box, answer.body.problems || [], answer.body.ok);
        } else {
          var message = answer.body && answer.body.error ? answer.body.error.message : "validation failed";
          show(box, [{line: null, severity: "error", message: message}], false);
        }
      }).catch(function () {
        box.textContent = "The console could not be reached to validate the rule.";
      });
    }
    text.addEventListener("input", function () {
      if (timer) {
        clearTimeout(timer);
      }
      timer = setTimeout(validate, 600);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("rule-editor");
    if (form) {
      liveValidation(form);
    }
  });
})();
