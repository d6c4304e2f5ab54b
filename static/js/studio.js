/*
 * The template studio's editor, enhanced. Without this file every link and form still works.
 * - The error summary takes focus when the page loads, so it is read out first.
 * - Its links (and the preview's) move focus to the field they name, not only the scroll
 *   position; a YAML field hands that focus on to its code editor (static/js/yaml_editor.js).
 */
(function () {
  "use strict";

  function focusField(id) {
    var target = document.getElementById(id);
    if (!target) return false;
    var box = target.closest(".field") || target;
    box.scrollIntoView({ block: "center" });
    target.focus({ preventScroll: true });
    return true;
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest(".error-summary a[href^='#'], .studio-preview a[href^='#']");
    if (!link) return;
    var id = decodeURIComponent(link.getAttribute("href").slice(1));
    if (focusField(id)) {
      event.preventDefault();
      history.replaceState(null, "", "#" + id);
    }
  });

  function focusSummary() {
    var summary = document.getElementById("error-summary");
    if (summary) summary.focus();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", focusSummary);
  } else {
    focusSummary();
  }
})();
