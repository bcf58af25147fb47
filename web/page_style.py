"""The page's style sheet and its one script (the copy button), inline: the page loads nothing
from anywhere else and works offline."""

PAGE_CSS = """
:root { --ink: #1d2733; --muted: #5b6673; --line: #d8dee6; --accent: #2f6fb0; --bad: #c0392b; --good: #2e7d32; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 "DejaVu Sans", Verdana, Arial, sans-serif; color: var(--ink); background: #f6f8fa; }
header { padding: 10px 22px; background: #1d2733; color: #fff; display: flex; gap: 18px; align-items: baseline; }
header h1 { margin: 0; font-size: 22px; } header p { margin: 0; color: #c9d3de; }
.layout { display: grid; grid-template-columns: 390px minmax(0, 1fr); gap: 18px; padding: 16px 22px; }
form#question { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; align-self: start; }
fieldset { border: 1px solid var(--line); border-radius: 4px; margin: 0 0 10px; padding: 6px 10px 8px; }
legend { font-weight: bold; padding: 0 4px; }
details { margin: 0 0 8px; } summary { cursor: pointer; font-weight: bold; margin: 4px 0; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 4px 10px; }
.row { display: grid; grid-template-columns: 2fr 1fr 1fr; gap: 8px; }
.field { display: flex; flex-direction: column; margin: 3px 0; }
.field label { font-family: "DejaVu Sans Mono", monospace; font-size: 12px; color: var(--muted); }
.field input, .field select { font: inherit; padding: 3px 5px; border: 1px solid #b8c2cc; border-radius: 3px; width: 100%; }
.field.invalid input, .field.invalid select { border: 2px solid var(--bad); background: #fff5f4; }
.field-error, .form-error { color: var(--bad); margin: 2px 0; font-weight: bold; font-size: 13px; }
.help { color: var(--muted); font-size: 11px; }
.actions { display: flex; gap: 8px; margin-top: 8px; }
button { font: inherit; padding: 6px 14px; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent);
  color: #fff; cursor: pointer; } button.secondary { background: #fff; color: var(--accent); }
#answer { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 16px; min-width: 0; }
#answer h2 { margin: 4px 0 8px; } #answer h3 { margin: 18px 0 6px; }
.plan-line { font-size: 16px; font-weight: bold; padding: 8px 10px; border-left: 5px solid var(--good); background: #f1f8f1; }
.plan-line.no-fit { border-left-color: var(--bad); background: #fdf1f0; }
.nothing-fits { color: var(--bad); } .facts, .notes { margin: 6px 0; padding-left: 20px; }
.notes { color: var(--muted); font-size: 12px; }
figure { margin: 10px 0; overflow-x: auto; } figcaption ul { margin: 2px 0; color: var(--muted); }
table#runners-up { border-collapse: collapse; margin: 10px 0; font-size: 13px; }
table#runners-up caption { text-align: left; font-weight: bold; margin-bottom: 4px; }
table#runners-up td, table#runners-up th { border-bottom: 1px solid var(--line); padding: 3px 8px; text-align: left; }
table#runners-up td:nth-child(-n+3) { white-space: nowrap; }
table#runners-up tr.chosen { background: #fdf1f0; font-weight: bold; }
.command { display: flex; gap: 8px; align-items: center; margin-top: 8px; }
.command code { background: #1d2733; color: #e8eef4; padding: 6px 10px; border-radius: 4px; font-size: 12px;
  overflow-x: auto; white-space: nowrap; flex: 1; }
pre#cli-report { background: #f6f8fa; padding: 8px; font-size: 12px; overflow-x: auto; }
@media (max-width: 1000px) { .layout { grid-template-columns: 1fr; } }
"""

# The copy button: the Clipboard API where the page is a secure context (localhost is), else a
# selection and execCommand("copy").
PAGE_SCRIPT = """
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  button.addEventListener("click", function () {
    var text = document.getElementById(button.dataset.copy).textContent;
    var done = function () { button.textContent = "copied"; setTimeout(function () { button.textContent = "copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done); return; }
    var area = document.createElement("textarea"); area.value = text; document.body.appendChild(area);
    area.select(); document.execCommand("copy"); document.body.removeChild(area); done();
  });
});
"""
