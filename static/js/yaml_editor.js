/*
 * The YAML code editor. Every <textarea data-yaml-editor> becomes a CodeMirror editor with line
 * numbers, highlighting and the field's YAML error marked at its line; without JavaScript (or if
 * the editor library did not load) it stays a plain textarea, and the form works the same.
 *
 * The textarea remains the form field: every edit is copied back into it at once (and announced
 * with an `input` event), so a submit or an htmx request that serialises the form sends what
 * the editor shows. The server marks an error with data-yaml-error-line (1-based) and,
 * optionally, data-yaml-error-column and data-yaml-error-message on the textarea.
 *
 * Editors are set up when the page loads, in content htmx swaps in (htmx:load) and in rows the
 * Django admin adds to a formset (formset:added). The library is the vendored bundle
 * static/vendor/codemirror/codemirror-yaml.min.js, which sets the global `CodeMirror`.
 */
(function () {
  "use strict";

  var CM = window.CodeMirror;
  if (!CM) return;

  var SELECTOR = "textarea[data-yaml-editor]";
  var editors = new WeakMap(); // textarea -> EditorView

  // --- Highlighting: stable class names, coloured by static/css/yaml_editor.css --------------

  var t = CM.tags;
  var yamlHighlighter = CM.tagHighlighter([
    { tag: t.definition(t.propertyName), class: "yaml-key" },
    { tag: t.string, class: "yaml-string" },
    { tag: t.special(t.string), class: "yaml-block-header" },
    { tag: t.lineComment, class: "yaml-comment" },
    { tag: [t.labelName, t.typeName], class: "yaml-tag" },
    { tag: [t.meta, t.keyword, t.attributeValue], class: "yaml-meta" },
    { tag: t.separator, class: "yaml-punctuation" },
    { tag: [t.squareBracket, t.brace], class: "yaml-punctuation" },
  ]);

  // --- The reported error: line highlight, gutter marker and the message under the line ------

  function parsePositiveInt(text) {
    var number = parseInt(text || "", 10);
    return number > 0 ? number : null;
  }

  function errorFrom(textarea) {
    var line = parsePositiveInt(textarea.getAttribute("data-yaml-error-line"));
    if (!line) return null;
    return {
      line: line,
      column: parsePositiveInt(textarea.getAttribute("data-yaml-error-column")),
      message: textarea.getAttribute("data-yaml-error-message") || "",
    };
  }

  var ErrorMarker = class extends CM.GutterMarker {
    toDOM() {
      var marker = document.createElement("span");
      marker.className = "yaml-error-marker";
      marker.textContent = "!";
      marker.setAttribute("aria-hidden", "true");
      return marker;
    }
  };
  var errorMarker = new ErrorMarker();

  // Keeps the gutter as wide as a marker on every line; CodeMirror hides it.
  var MarkerSpace = class extends CM.GutterMarker {
    toDOM() {
      var space = document.createElement("span");
      space.className = "yaml-error-marker-space";
      return space;
    }
  };

  var ErrorMessage = class extends CM.WidgetType {
    constructor(text) {
      super();
      this.text = text;
    }
    eq(other) {
      return other.text === this.text;
    }
    toDOM() {
      var box = document.createElement("div");
      box.className = "yaml-error-message";
      box.textContent = this.text;
      return box;
    }
  };

  // The error stays on the line it was reported for while lines above it are added or removed;
  // it shows what the server found in the text as submitted.
  function errorField(error) {
    return CM.StateField.define({
      create: function (state) {
        // A line past the end (the text was cut since) marks the last line.
        return state.doc.line(Math.min(error.line, state.doc.lines)).from;
      },
      update: function (lineStart, transaction) {
        return transaction.changes.mapPos(lineStart);
      },
      // Computed from the state, not a view plugin: only these may hold block widgets.
      provide: function (field) {
        return CM.EditorView.decorations.compute(["doc", field], function (state) {
          return errorDecorations(state.doc, state.field(field), error);
        });
      },
    });
  }

  function errorDecorations(doc, lineStart, error) {
    var line = doc.lineAt(lineStart);
    var ranges = [CM.Decoration.line({ class: "yaml-error-line" }).range(line.from)];
    var column = error.column ? line.from + error.column - 1 : null;
    if (column !== null && column < line.to) {
      ranges.push(CM.Decoration.mark({ class: "yaml-error-at" }).range(column, column + 1));
    }
    if (error.message) {
      var widget = CM.Decoration.widget({
        widget: new ErrorMessage(error.message),
        block: true,
        side: 1,
      });
      ranges.push(widget.range(line.to));
    }
    return CM.Decoration.set(ranges, true);
  }

  function errorGutter(field) {
    return CM.gutter({
      class: "yaml-error-gutter",
      markers: function (view) {
        var line = view.state.doc.lineAt(view.state.field(field));
        return CM.RangeSet.of([errorMarker.range(line.from)]);
      },
      initialSpacer: function () {
        return new MarkerSpace();
      },
    });
  }

  // --- Typing over a selection ----------------------------------------------------------------

  // When typed text replaces a selection that starts in a highlighted token, Chromium keeps the
  // token's look by wrapping the new text in a style attribute. The CSP refuses that (and logs a
  // violation) and CodeMirror redraws the line anyway, so that one case is applied here instead
  // of by the browser. Compositions (input methods) are left to the browser and CodeMirror.
  function typeOverSelection(event, view) {
    if (event.inputType !== "insertText" || event.isComposing || typeof event.data !== "string") {
      return false;
    }
    var selected = view.state.selection.ranges.some(function (range) {
      return !range.empty;
    });
    if (view.state.readOnly || !selected) return false;
    event.preventDefault();
    view.dispatch(view.state.replaceSelection(event.data), {
      scrollIntoView: true,
      userEvent: "input.type",
    });
    return true;
  }

  // --- Building an editor ---------------------------------------------------------------------

  function labelOf(textarea) {
    if (!textarea.id) return null;
    var label = document.querySelector('label[for="' + CSS.escape(textarea.id) + '"]');
    if (label && !label.id) label.id = textarea.id + "-label";
    return label;
  }

  function contentAttributes(textarea, label, hint) {
    var attributes = { spellcheck: "false", autocapitalize: "off", autocorrect: "off" };
    // In the tab order as an editable area already is, said outright so that checkers (and a
    // read-only editor, whose long lines scroll) count the scrolling box as reachable by keyboard.
    if (!textarea.disabled) attributes.tabindex = "0";
    if (label) attributes["aria-labelledby"] = label.id;
    else if (textarea.hasAttribute("aria-label")) {
      attributes["aria-label"] = textarea.getAttribute("aria-label");
    }
    var described = [textarea.getAttribute("aria-describedby"), hint && hint.id].filter(Boolean);
    if (described.length) attributes["aria-describedby"] = described.join(" ");
    var invalid = textarea.getAttribute("aria-invalid") === "true";
    if (invalid || textarea.hasAttribute("data-yaml-error-line")) {
      attributes["aria-invalid"] = "true";
    }
    if (textarea.readOnly || textarea.disabled) attributes["aria-readonly"] = "true";
    if (textarea.disabled) attributes["aria-disabled"] = "true";
    return attributes;
  }

  // CodeMirror's advice: taking Tab for indentation is fine when there is a documented way out.
  // Its own is Escape then Tab (or Ctrl-M to switch Tab back to moving focus); the hint says so.
  function keyboardHint(textarea) {
    var hint = document.createElement("p");
    hint.className = "yaml-editor-hint";
    hint.id = (textarea.id || "yaml-editor") + "-keys";
    hint.textContent = "Tab indents. To leave the editor with the keyboard, press Esc, then Tab.";
    return hint;
  }

  function build(textarea) {
    var editable = !textarea.readOnly && !textarea.disabled;
    var hint = editable ? keyboardHint(textarea) : null;
    var label = labelOf(textarea);
    var error = errorFrom(textarea);
    var changedSinceFocus = false;

    var extensions = [
      CM.lineNumbers(),
      CM.highlightSpecialChars(),
      CM.history(),
      CM.drawSelection(),
      CM.indentOnInput(),
      CM.bracketMatching(),
      CM.highlightActiveLine(),
      CM.highlightActiveLineGutter(),
      CM.indentUnit.of("  "),
      CM.EditorState.tabSize.of(2),
      CM.yaml(),
      CM.syntaxHighlighting(yamlHighlighter),
      CM.keymap.of([CM.indentWithTab].concat(CM.defaultKeymap, CM.historyKeymap)),
      CM.EditorState.readOnly.of(!editable),
      CM.EditorView.editable.of(!textarea.disabled),
      CM.EditorView.contentAttributes.of(contentAttributes(textarea, label, hint)),
      CM.EditorView.editorAttributes.of({
        class: "yaml-editor" + (textarea.disabled ? " yaml-editor--disabled" : ""),
      }),
      CM.EditorView.updateListener.of(function (update) {
        if (!update.docChanged) return;
        textarea.value = update.state.doc.toString();
        changedSinceFocus = true;
        textarea.dispatchEvent(new Event("input", { bubbles: true }));
      }),
      CM.EditorView.domEventHandlers({
        beforeinput: typeOverSelection,
        focus: function () {
          changedSinceFocus = false;
        },
        blur: function () {
          if (changedSinceFocus) textarea.dispatchEvent(new Event("change", { bubbles: true }));
          changedSinceFocus = false;
        },
      }),
    ];
    var field = null;
    if (error) {
      field = errorField(error);
      extensions.push(field, errorGutter(field));
    }

    var view = new CM.EditorView({
      state: CM.EditorState.create({ doc: textarea.value, extensions: extensions }),
    });
    var rows = parsePositiveInt(textarea.getAttribute("rows"));
    if (rows) view.dom.style.setProperty("--yaml-editor-rows", String(rows));
    textarea.after(view.dom);
    if (hint) view.dom.after(hint);

    // The textarea stays in the form, out of sight and out of the tab order, but focusable: a
    // label click, an error summary's link (#id_field) or a script that focuses it lands here
    // and is handed on to the editor, at the reported error if there is one.
    textarea.classList.add("yaml-editor-source");
    textarea.setAttribute("tabindex", "-1");
    textarea.setAttribute("aria-hidden", "true");
    textarea.addEventListener("focus", function () {
      reveal(view, field);
    });
    if (textarea.form) {
      textarea.form.addEventListener("reset", function () {
        // The form puts the textarea back first; the editor follows on the next tick.
        window.setTimeout(function () {
          var whole = { from: 0, to: view.state.doc.length, insert: textarea.value };
          view.dispatch({ changes: whole });
        }, 0);
      });
    }
    editors.set(textarea, view);
    if (textarea.id && window.location.hash === "#" + textarea.id) reveal(view, field);
  }

  function reveal(view, field) {
    var effects = [];
    var selection;
    if (field) {
      var position = view.state.field(field);
      selection = { anchor: position };
      effects.push(CM.EditorView.scrollIntoView(position, { y: "center" }));
    }
    view.dispatch({ selection: selection, effects: effects });
    view.focus();
  }

  function upgradeWithin(root) {
    if (!root || !root.querySelectorAll) return;
    var textareas = Array.prototype.slice.call(root.querySelectorAll(SELECTOR));
    if (root.matches && root.matches(SELECTOR)) textareas.unshift(root);
    textareas.forEach(function (textarea) {
      // The admin's blank formset row is a template that gets copied: it stays a textarea, and
      // each copy is set up when it is added (formset:added).
      if (editors.has(textarea) || textarea.closest(".empty-form")) return;
      if ((textarea.name || "").indexOf("__prefix__") !== -1) return;
      build(textarea);
    });
  }

  document.addEventListener("htmx:load", function (event) {
    upgradeWithin(event.target);
  });
  document.addEventListener("formset:added", function (event) {
    upgradeWithin(event.target);
  });
  window.addEventListener("hashchange", function () {
    var target = document.getElementById(window.location.hash.slice(1));
    if (target && editors.has(target)) target.focus();
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      upgradeWithin(document);
    });
  } else {
    upgradeWithin(document);
  }
})();
