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
      var seconds = (now - startedAt) / 1000;
      element.textContent = element.hasAttribute("data-ago")
        ? ago(seconds)
        : formatDuration(seconds);
    });
  }

  // The server's `ago` filter (demos/templatetags/demo_ui.py): "just now" under a minute.
  function ago(seconds) {
    return seconds < 60 ? "just now" : formatDuration(seconds) + " ago";
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

  // --- Local time ----------------------------------------------------------------------------

  // The server writes each moment in UTC (`{% local_time %}`, demos/templatetags/demo_ui.py);
  // here it is rewritten in the zone in use: the one the person chose in their settings
  // (<body data-time-zone>), else this browser's own. Prospect pages name no zone: the browser's.

  function browserZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    } catch (error) {
      return "UTC";
    }
  }

  function isZone(zone) {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: zone });
      return true;
    } catch (error) {
      return false;
    }
  }

  function zoneInUse() {
    var chosen = document.body.getAttribute("data-time-zone");
    return chosen && isZone(chosen) ? chosen : browserZone();
  }

  // The wall clock of `zone` at `date`, as numbers ("hour" 0 to 23).
  function wallClock(date, zone) {
    var parts = {};
    new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
      hourCycle: "h23",
    })
      .formatToParts(date)
      .forEach(function (part) {
        parts[part.type] = Number(part.value);
      });
    return parts;
  }

  // Each English locale knows the short names of its own region's zones ("EST", "CET", "AEST",
  // "IST") and writes the others as an offset ("GMT+1"): the first real name wins.
  var NAME_LOCALES = ["en-US", "en-GB", "en-AU", "en-IN"];

  function zoneName(date, zone) {
    var offset = "";
    for (var index = 0; index < NAME_LOCALES.length; index += 1) {
      var named = new Intl.DateTimeFormat(NAME_LOCALES[index], {
        timeZone: zone,
        timeZoneName: "short",
      })
        .formatToParts(date)
        .filter(function (part) {
          return part.type === "timeZoneName";
        })[0];
      var name = named ? named.value : "";
      if (name && !/^(GMT|UTC)[+\-\u2212]/.test(name)) return name;
      offset = offset || name;
    }
    return offset;
  }

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function twoDigits(number) {
    return (number < 10 ? "0" : "") + number;
  }

  // The server's LOCAL_FORMATS, in `zone`: "3 Dec, 18:44 CET", "18:44 CET", "3 Dec 2026"…
  function formatLocal(date, style, zone) {
    var clock = wallClock(date, zone);
    var day = clock.day + " " + MONTHS[clock.month - 1];
    var time = twoDigits(clock.hour) + ":" + twoDigits(clock.minute);
    var name = zoneName(date, zone);
    if (style === "time") return time + " " + name;
    if (style === "date") return day + " " + clock.year;
    if (style === "full") return day + " " + clock.year + ", " + time + " " + name;
    if (style === "seconds") return day + ", " + time + ":" + twoDigits(clock.second) + " " + name;
    return day + ", " + time + " " + name;
  }

  function setUpLocalTimes(root) {
    var zone = zoneInUse();
    var elements = Array.prototype.slice.call(root.querySelectorAll("time[data-local]"));
    if (root.matches && root.matches("time[data-local]")) elements.unshift(root);
    elements.forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      element.textContent = formatLocal(date, element.getAttribute("data-local"), zone);
      element.title = zone.replace(/_/g, " ") + " time";
    });
  }

  // The moment (a Date) that the wall-clock `value` of a datetime-local input means in `zone`.
  function fromWallClock(value, zone) {
    var found = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(value);
    if (!found) return null;
    var wall = Date.UTC(+found[1], +found[2] - 1, +found[3], +found[4], +found[5], +(found[6] || 0));
    function offsetAt(moment) {
      var clock = wallClock(new Date(moment), zone);
      var seen = Date.UTC(clock.year, clock.month - 1, clock.day, clock.hour, clock.minute, clock.second);
      return seen - Math.floor(moment / 1000) * 1000;
    }
    // The zone's offset at a first guess, then at the moment it gives: right across a change to
    // or from summer time too.
    var guess = wall - offsetAt(wall);
    return new Date(wall - offsetAt(guess));
  }

  // The settings page names this browser's zone, for "Use my browser's zone".
  function showBrowserZone(root) {
    root.querySelectorAll("[data-browser-zone]").forEach(function (element) {
      element.querySelector("[data-browser-zone-name]").textContent = browserZone().replace(/_/g, " ");
      element.hidden = false;
    });
  }

  // A datetime-local input holds the person's local time; its form sends the moment in UTC (and
  // the zone it was read in) in the hidden fields it names, which the server prefers.
  function setUpLocalInputs(root) {
    root.querySelectorAll("input[data-utc-field]").forEach(function (input) {
      if (input.hasAttribute("data-local-ready") || !input.form) return;
      input.setAttribute("data-local-ready", "");
      var zone = zoneInUse();
      var utcField = input.form.elements.namedItem(input.getAttribute("data-utc-field"));
      var zoneField = input.form.elements.namedItem(input.getAttribute("data-zone-field"));
      var label = input.labels && input.labels[0];
      if (label && label.firstChild && label.firstChild.nodeType === Node.TEXT_NODE) {
        label.firstChild.nodeValue = "Time (" + zone.replace(/_/g, " ") + ")";
      }
      function sync() {
        var moment = input.value ? fromWallClock(input.value, zone) : null;
        if (utcField) utcField.value = moment ? moment.toISOString() : "";
        if (zoneField) zoneField.value = zone;
      }
      input.addEventListener("input", sync);
      input.addEventListener("change", sync);
      sync();
    });
  }

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

  // --- Link dialog ---------------------------------------------------------------------------

  // A share link in full comes as an open <dialog>, a section of the page without JavaScript;
  // here it becomes a modal, wide enough for the whole link. On closing, focus goes back to the
  // link's row (the panel around the button that asked for it was replaced).
  function setUpModals(root) {
    root.querySelectorAll("dialog[data-modal-on-load]").forEach(function (dialog) {
      if (typeof dialog.showModal !== "function" || dialog.hasAttribute("data-modal-ready")) return;
      dialog.setAttribute("data-modal-ready", "");
      dialog.close();
      dialog.showModal();
      dialog.addEventListener("close", function () {
        var back = document.getElementById(dialog.getAttribute("data-return-focus") || "");
        if (back) back.focus();
      });
    });
  }

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
    setUpModals(root);
    setUpCountdowns(root);
    setUpClocks(root);
    setUpLocalTimes(root);
    setUpLocalInputs(root);
    showBrowserZone(root);
    announceChanges(root);
  }

  // The duration and local-time rules, for the tests that hold them to the server's.
  window.portal = {
    formatDuration: formatDuration,
    formatLocal: formatLocal,
    fromWallClock: fromWallClock,
  };

  if (window.htmx) {
    // Runs for the page once it is ready and again for every fragment htmx swaps in.
    window.htmx.onLoad(enhance);
  } else {
    document.addEventListener("DOMContentLoaded", function () {
      enhance(document.body);
    });
  }
})();
