// Fleet page: a "select all" box for the bulk actions. Without JavaScript the box stays hidden
// and each demo is ticked on its own.
document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("fleet-select-all");
  const form = document.getElementById("fleet-bulk");
  if (!all || !form) return;
  const boxes = () => Array.from(form.querySelectorAll('input[name="demos"]'));
  all.hidden = false;
  all.addEventListener("change", () => {
    for (const box of boxes()) box.checked = all.checked;
  });
  form.addEventListener("change", (event) => {
    if (event.target === all) return;
    const ticked = boxes().filter((box) => box.checked).length;
    all.checked = ticked > 0 && ticked === boxes().length;
    all.indeterminate = ticked > 0 && ticked < boxes().length;
  });
});
