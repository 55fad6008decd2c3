// The console's only script besides htmx: confirmation dialogs for hx-confirm, select-all and
// the bulk buttons' count, and a message when a request fails without the console's answer.
(function () {
  "use strict";

  function flash(kind, message) {
    var box = document.getElementById("flash");
    if (!box) return;
    box.className = "flash " + kind;
    var text = document.createElement("p");
    text.textContent = message;
    box.replaceChildren(text);
  }

  // hx-confirm opens the page's <dialog> rather than the browser's confirm().
  document.addEventListener("htmx:confirm", function (event) {
    var question = event.detail.question;
    var dialog = document.getElementById("confirm-dialog");
    if (!question || !dialog || typeof dialog.showModal !== "function") return;
    event.preventDefault();
    document.getElementById("confirm-message").textContent = question;
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      function () {
        if (dialog.returnValue === "confirm") event.detail.issueRequest(true);
      },
      { once: true }
    );
    dialog.showModal();
    document.getElementById("confirm-ok").focus();
  });

  // Select-all, and how many rows the bulk button acts on.
  function refreshBulk() {
    var results = document.getElementById("results");
    if (!results) return;
    var checked = results.querySelectorAll(".row-select:checked").length;
    results.querySelectorAll("[data-bulk]").forEach(function (button) {
      button.disabled = checked === 0;
      var count = button.querySelector("[data-count]");
      if (count) count.textContent = String(checked);
    });
  }
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!(target instanceof HTMLInputElement)) return;
    if (target.classList.contains("select-all")) {
      document.querySelectorAll("#results .row-select").forEach(function (box) {
        box.checked = target.checked;
      });
    }
    if (target.classList.contains("select-all") || target.classList.contains("row-select")) {
      refreshBulk();
    }
  });
  document.addEventListener("htmx:afterSettle", refreshBulk);

  // An error answer that is not the console's HTML (a proxy's page, the API's JSON) is not
  // swapped in: its message goes to the flash area instead.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status < 400) return;
    var type = xhr.getResponseHeader("Content-Type") || "";
    if (type.indexOf("text/html") !== -1) return;
    event.detail.shouldSwap = false;
    var message = "The request failed (HTTP " + xhr.status + ").";
    try {
      message = JSON.parse(xhr.responseText).error.message || message;
    } catch (ignored) {
      // not the API's envelope
    }
    flash("error", message);
  });

  function unreachable() {
    flash("error", "The server could not be reached: check the connection and try again.");
  }
  document.addEventListener("htmx:sendError", unreachable);
  document.addEventListener("htmx:timeout", unreachable);
})();
