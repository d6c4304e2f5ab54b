/*
 * Progressive enhancement for the demo portal. Every page works without this file; with it:
 * copy buttons, live countdowns, a styled confirmation dialog, screen-reader announcements of
 * status changes, feedback when a background request fails, and no double submits.
 * It is a file (never inline code) because the Content-Security-Policy forbids inline scripts.
 */
(function () {
  "use strict";

  // --- Screen-reader announcements and messages ---------------------------------------------

  function announce(text) {
    var announcer = document.getElementById("announcer");
    if (!announcer) return;
    // Clearing first makes a repeated sentence count as a change.
    announcer.textContent = "";
    window.setTimeout(function () {
      announcer.textContent = text;
    }, 50);
  }

  // The last status each live element showed, so only changes are read out, not every poll.
  var lastStatus = {};

  function announceChanges(root) {
    var elements = Array.prototype.slice.call(root.querySelectorAll("[data-announce]"));
    if (root.matches && root.matches("[data-announce]")) elements.unshift(root);
    elements.forEach(function (element) {
      var owner = element.closest("[id]");
      var key = owner ? owner.id : "page";
      var text = element.getAttribute("data-announce");
      if (!(key in lastStatus)) {
        lastStatus[key] = text; // what the page showed when it loaded: nothing changed yet
      } else if (lastStatus[key] !== text) {
        lastStatus[key] = text;
        announce(text);
      }
    });
  }

  function showMessage(text, level) {
    var container = document.getElementById("messages");
    if (!container) return;
    var message = container.querySelector("[data-script-message]");
    if (!message) {
      message = document.createElement("p");
      message.setAttribute("data-script-message", "");
      message.setAttribute("role", "alert");
      container.appendChild(message);
    }
    message.className = "alert alert--" + level;
    message.textContent = text;
  }

  function clearMessage() {
    var message = document.querySelector("#messages [data-script-message]");
    if (message) message.remove();
  }

  // --- Copy to clipboard ---------------------------------------------------------------------

  function textOf(element) {
    return (element.tagName === "INPUT" ? element.value : element.textContent).trim();
  }

  function copyText(text, source) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP pages have no clipboard API: select the text and use the older command.
    var helper = document.createElement("textarea");
    helper.value = text;
    helper.setAttribute("readonly", "");
    helper.className = "visually-hidden";
    (source.closest("dialog") || document.body).appendChild(helper);
    helper.select();
    var copied = document.execCommand("copy");
    helper.remove();
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function setUpCopyButtons(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
      if (button.hasAttribute("data-copy-ready")) return;
      button.setAttribute("data-copy-ready", "");
      var label = button.innerHTML;
      button.addEventListener("click", function () {
        var source = document.getElementById(button.getAttribute("data-copy"));
        if (!source) return;
        copyText(textOf(source), source).then(
          function () {
            button.textContent = "Copied";
            announce("Copied to the clipboard");
          },
          function () {
            button.textContent = "Select and copy";
          }
        );
        window.setTimeout(function () {
          button.innerHTML = label;
        }, 2000);
      });
    });
  }

  // --- Durations -----------------------------------------------------------------------------

  // [seconds, singular, plural], largest first.
  var UNITS = [
    [86400, "day", "days"],
    [3600, "h", "h"],
    [60, "min", "min"],
    [1, "s", "s"],
  ];

  // The server's rule (demos/durations.py, format_duration), so a figure the browser counts on
  // reads as the server wrote it: whole seconds, cut, never rounded up; the largest unit that
  // fits, then the next smaller one unless it is zero: "3 min 5 s", "1 h 1 min", "3 days".
  function formatDuration(seconds) {
    var left = Math.max(Math.floor(seconds), 0);
    var index = 0;
    while (index < UNITS.length - 1 && left < UNITS[index][0]) index += 1;
    var parts = [];
    UNITS.slice(index, index + 2).forEach(function (unit) {
      var count = Math.floor(left / unit[0]);
      left -= count * unit[0];
      if (count || !parts.length) parts.push(count + " " + (count === 1 ? unit[1] : unit[2]));
    });
    return parts.join(" ");
  }

  // --- Countdown to expiry -------------------------------------------------------------------

  var countdowns = new Set();
  var expiryRefreshes = 0;

  function refreshAfterExpiry(panel) {
    // The scheduler ends the demo within moments of its expiry: ask the server again, a little
    // later each time, until the panel shows what happened.
    var delay = Math.min(3000 * Math.pow(2, expiryRefreshes), 60000);
    expiryRefreshes += 1;
    window.setTimeout(function () {
      if (panel.isConnected && window.htmx) window.htmx.trigger(panel, "demo-expired");
    }, delay);
  }

  function tick() {
    countdowns.forEach(function (element) {
      if (!element.isConnected) {
        countdowns.delete(element);
        return;
      }
      var left = Math.round((Date.parse(element.getAttribute("datetime")) - Date.now()) / 1000);
      if (left > 0) {
        element.textContent = formatDuration(left);
        return;
      }
      countdowns.delete(element);
      var holder = element.parentElement;
      holder.textContent = element.getAttribute("data-expired-text") || "Time is up";
      holder.classList.add("is-expired");
      var panel = holder.closest("[hx-trigger='demo-expired']");
      if (panel) refreshAfterExpiry(panel);
    });
  }

  function setUpCountdowns(root) {
    root.querySelectorAll("time[data-countdown]").forEach(function (element) {
      countdowns.add(element);
    });
    tick();
  }

  // --- Durations that run on ------------------------------------------------------------------

  // How long a demo has been starting, and how long its current step has taken. The server
  // renders the figure once; the browser counts on from it, so a poll that finds nothing new
  // need not send the panel again just to move a clock (it answers "204 No Content").
  var clocks = new Map();

  function tickClocks() {
    var now = Date.now();
    clocks.forEach(function (startedAt, element) {
      if (!element.isConnected) {
        clocks.delete(element);
        return;
      }
      element.textContent = formatDuration((now - startedAt) / 1000);
    });
  }

  function setUpClocks(root) {
    var now = Date.now();
    root.querySelectorAll("[data-elapsed]").forEach(function (element) {
      var seconds = parseFloat(element.getAttribute("data-elapsed"));
      // Counted from this browser's own clock, so a clock that differs from the server's
      // does not matter.
      if (!isNaN(seconds)) clocks.set(element, now - seconds * 1000);
    });
  }

  window.setInterval(function () {
    tick();
    tickClocks();
  }, 1000);

  // --- Confirmation dialog for htmx actions --------------------------------------------------

  // Asks `question` in the page's dialog and calls `proceed` if the person confirms. False when
  // the browser has no <dialog>: the caller then goes ahead (or lets the browser ask) itself.
  function ask(question, label, proceed) {
    var dialog = document.getElementById("confirm-dialog");
    if (!dialog || typeof dialog.showModal !== "function") return false;
    dialog.querySelector("#confirm-dialog-question").textContent = question;
    dialog.querySelector("[data-confirm-accept]").textContent = label || "Confirm";
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      function () {
        if (dialog.returnValue === "confirm") proceed();
      },
      { once: true }
    );
    dialog.showModal();
    return true;
  }

  document.addEventListener("htmx:confirm", function (event) {
    var question = event.detail.question;
    // Without a question there is nothing to ask; without <dialog> support htmx asks itself.
    if (!question) return;
    var label = event.detail.elt.getAttribute("data-confirm-label");
    if (ask(question, label, function () { event.detail.issueRequest(true); })) {
      event.preventDefault();
    }
  });

  // A plain form (no htmx) that changes something for others asks first too: `data-confirm`
  // holds the question. Without JavaScript the form goes straight through.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-confirm]") || form.hasAttribute("data-confirmed")) return;
    var question = form.getAttribute("data-confirm");
    var label = form.getAttribute("data-confirm-label");
    var submitter = event.submitter;
    if (ask(question, label, function () {
      form.setAttribute("data-confirmed", "");
      form.requestSubmit(submitter || undefined);
      form.removeAttribute("data-confirmed");
    })) {
      event.preventDefault();
    }
  });

  // --- Feedback on failed background requests ----------------------------------------------

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    if (status === 404) {
      showMessage("This demo is no longer available to you. Reload the page.", "error");
    } else if (status === 403) {
      showMessage("Your account is not allowed to do that.", "error");
    } else {
      showMessage("Something went wrong (error " + status + "). Reload the page and try again.", "error");
    }
  });

  document.addEventListener("htmx:sendError", function () {
    showMessage("The portal cannot be reached. Check your connection: this page keeps trying.", "warning");
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful) {
      var message = document.querySelector("#messages [data-script-message].alert--warning");
      if (message) clearMessage();
    }
  });

  // --- No double submits ---------------------------------------------------------------------

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("[data-submit-once]")) return;
    if (form.hasAttribute("data-submitted")) {
      event.preventDefault();
      return;
    }
    form.setAttribute("data-submitted", "");
    form.querySelectorAll("button[type='submit']").forEach(function (button) {
      button.setAttribute("aria-disabled", "true");
      button.classList.add("is-busy");
    });
  });

  // A page restored from the back/forward cache must be usable again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-submitted]").forEach(function (form) {
      form.removeAttribute("data-submitted");
      form.querySelectorAll("button[aria-disabled]").forEach(function (button) {
        button.removeAttribute("aria-disabled");
        button.classList.remove("is-busy");
      });
    });
  });

  // --- User menu: close on Escape or a click elsewhere ---------------------------------------

  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.user-menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.user-menu[open]").forEach(function (menu) {
      menu.removeAttribute("open");
      menu.querySelector("summary").focus();
    });
  });

  // --- Wiring --------------------------------------------------------------------------------

  function enhance(root) {
    setUpCopyButtons(root);
    setUpCountdowns(root);
    setUpClocks(root);
    announceChanges(root);
  }

  // The duration rule, for the tests that hold it to the server's.
  window.portal = { formatDuration: formatDuration };

  if (window.htmx) {
    // Runs for the page once it is ready and again for every fragment htmx swaps in.
    window.htmx.onLoad(enhance);
  } else {
    document.addEventListener("DOMContentLoaded", function () {
      enhance(document.body);
    });
  }
})();
