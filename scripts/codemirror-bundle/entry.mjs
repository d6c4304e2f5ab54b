// The parts of CodeMirror 6 the portal's YAML editor uses (static/js/yaml_editor.js), bundled
// into one script that sets the global `CodeMirror`. build.sh turns this file into
// static/vendor/codemirror/codemirror-yaml.min.js; SOURCE.md there says which versions.

import { StyleModule } from "style-mod";

// The portal's Content-Security-Policy allows only stylesheets from its own origin, so the
// <style> element style-mod puts into a document's <head> is refused and the editor would be
// unstyled. A constructed stylesheet adopted by the document is CSSOM, which the policy does
// not govern, so on documents the same rules go there instead. Other roots (shadow roots) and
// browsers without constructed stylesheets keep style-mod's own way.
const mountWithStyleElement = StyleModule.mount;
const adoptedSheets = new WeakMap();

function adoptedSheetFor(document) {
  let state = adoptedSheets.get(document);
  if (!state) {
    state = { sheet: new document.defaultView.CSSStyleSheet(), modules: [] };
    adoptedSheets.set(document, state);
    document.adoptedStyleSheets = [state.sheet, ...document.adoptedStyleSheets];
  }
  return state;
}

StyleModule.mount = function mount(root, modules, options) {
  const isDocument = root.nodeType === 9;
  if (!isDocument || !("adoptedStyleSheets" in root) || !root.defaultView?.CSSStyleSheet) {
    mountWithStyleElement.call(StyleModule, root, modules, options);
    return;
  }
  const state = adoptedSheetFor(root);
  // Later modules win, as with style-mod: each new module goes right after the one listed
  // before it in this call, so the given order holds within the sheet.
  let insertAt = 0;
  let changed = false;
  for (const module of Array.isArray(modules) ? modules : [modules]) {
    const known = state.modules.indexOf(module);
    if (known >= insertAt) {
      insertAt = known + 1;
      continue;
    }
    if (known >= 0) {
      // Listed earlier than this call wants it: moved to its place.
      state.modules.splice(known, 1);
      insertAt -= 1;
    }
    state.modules.splice(insertAt, 0, module);
    insertAt += 1;
    changed = true;
  }
  if (changed) {
    state.sheet.replaceSync(state.modules.map((module) => module.getRules()).join("\n"));
  }
};

export {
  EditorState,
  StateEffect,
  StateField,
  RangeSet,
} from "@codemirror/state";
export {
  Decoration,
  EditorView,
  GutterMarker,
  WidgetType,
  drawSelection,
  gutter,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  keymap,
  lineNumbers,
} from "@codemirror/view";
export {
  defaultKeymap,
  history,
  historyKeymap,
  indentWithTab,
} from "@codemirror/commands";
export {
  bracketMatching,
  indentOnInput,
  indentUnit,
  syntaxHighlighting,
} from "@codemirror/language";
export { tagHighlighter, tags } from "@lezer/highlight";
export { yaml } from "@codemirror/lang-yaml";
