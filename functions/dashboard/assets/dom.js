// Building the page with DOM APIs only. Text always goes in as text (textContent, text nodes,
// attribute values); nothing here ever parses a string as HTML, and the page's Trusted Types
// policy would refuse it if anything tried.

const SVG = 'http://www.w3.org/2000/svg';

/**
 * `h('button', {class: 'primary', onclick}, 'Save')`: an element with attributes, listeners
 * (`on<event>`), properties (`value`, `checked`) and children (nodes or text).
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') element.textContent = String(value);
    else if (name === 'class') element.className = value;
    else if (name === 'value' || name === 'checked') element[name] = value;
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

/** Appends nodes or text (as text nodes) to `parent`. */
export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces `parent`'s children. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

// Stroke icons (24x24), drawn as SVG paths.
const ICONS = {
  check: ['M20 6 9 17l-5-5'],
  x: ['M18 6 6 18', 'm6 6 12 12'],
  checkCircle: ['M22 11.1V12a10 10 0 1 1-5.9-9.1', 'm9 11 3 3L22 4'],
  clock: ['M12 2a10 10 0 1 0 0 20a10 10 0 1 0 0-20', 'M12 6v6l4 2'],
  xCircle: ['M12 2a10 10 0 1 0 0 20a10 10 0 1 0 0-20', 'm15 9-6 6', 'm9 9 6 6'],
  alertCircle: ['M12 2a10 10 0 1 0 0 20a10 10 0 1 0 0-20', 'M12 8v4', 'M12 16h.01'],
  minusCircle: ['M12 2a10 10 0 1 0 0 20a10 10 0 1 0 0-20', 'M8 12h8'],
  download: ['M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4', 'm7 10 5 5 5-5', 'M12 15V3'],
  renew: ['M21 12a9 9 0 1 1-2.64-6.36L21 8', 'M21 3v5h-5'],
  repeat: ['m17 2 4 4-4 4', 'M3 11v-1a4 4 0 0 1 4-4h14', 'm7 22-4-4 4-4', 'M21 13v1a4 4 0 0 1-4 4H3'],
  trash: ['M3 6h18', 'M19 6v14a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2V6', 'M8 6V4a2 2 0 0 1 2-2h4a2 2 0 0 1 2 2v2'],
  copy: ['M9 9h11v11H9z', 'M5 15H4V4h11v1'],
  list: ['M8 6h13', 'M8 12h13', 'M8 18h13', 'M3 6h.01', 'M3 12h.01', 'M3 18h.01'],
  globe: ['M12 2a10 10 0 1 0 0 20a10 10 0 1 0 0-20', 'M2 12h20', 'M12 2a15 15 0 0 1 0 20a15 15 0 0 1 0-20'],
  pencil: ['M17 3a2.8 2.8 0 1 1 4 4L7.5 20.5 2 22l1.5-5.5z'],
  plus: ['M12 5v14', 'M5 12h14'],
  shield: ['M12 22s8-4 8-10V5l-8-3-8 3v7c0 6 8 10 8 10z', 'm9 12 2 2 4-4'],
};

/** An icon, hidden from assistive technology (its button or badge carries the words). */
export function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', 'icon');
  for (const d of ICONS[name] || []) {
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}

/** A coloured badge: `tone` is green, yellow, red, orange, gray or blue. */
export function badge(tone, text, iconName, { animated = false, dataset } = {}) {
  return h('span', { class: `badge badge-${tone}${animated ? ' animated' : ''}`, dataset },
    iconName ? icon(iconName) : null, text);
}

/** ✓ or ✗ with words for screen readers. */
export function yesNo(value, yesText = 'Available', noText = 'Not available') {
  return h('span', { class: value ? 'yes' : 'no', dataset: { value: String(Boolean(value)) } },
    h('span', { 'aria-hidden': 'true', text: value ? '✓' : '✗' }),
    h('span', { class: 'visually-hidden', text: value ? yesText : noText }));
}

/** The em dash the reference shows for "none". */
export function dash(label = 'None') {
  return h('span', { class: 'dash', title: label },
    h('span', { 'aria-hidden': 'true', text: '—' }),
    h('span', { class: 'visually-hidden', text: label }));
}

const pad = (number) => String(number).padStart(2, '0');

/** `2026-01-15 10:30 UTC`: one format everywhere, whatever the browser's locale. */
export function formatTime(iso) {
  if (!iso) return '';
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  return `${at.getUTCFullYear()}-${pad(at.getUTCMonth() + 1)}-${pad(at.getUTCDate())} ${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())} UTC`;
}

/** `2026-01-15`. */
export function formatDate(iso) {
  return formatTime(iso).slice(0, 10);
}

/** "in 3 min", "in 5 h", "in 12 days", or "now" / "3 min ago". */
export function relative(iso, now = Date.now()) {
  const milliseconds = new Date(iso).getTime() - now;
  const ahead = milliseconds >= 0;
  const seconds = Math.abs(milliseconds) / 1000;
  let text;
  if (seconds < 60) return ahead ? 'in less than a minute' : 'just now';
  if (seconds < 3600) text = `${Math.round(seconds / 60)} min`;
  else if (seconds < 86400) text = `${Math.round(seconds / 3600)} h`;
  else {
    const days = Math.floor(seconds / 86400);
    text = `${days} day${days === 1 ? '' : 's'}`;
  }
  return ahead ? `in ${text}` : `${text} ago`;
}

/** The expiry countdown: green over 30 days, yellow 7 to 30, red under 7. */
export function countdown(iso, now = Date.now()) {
  const days = (new Date(iso).getTime() - now) / 86400000;
  const tone = days > 30 ? 'green' : days >= 7 ? 'yellow' : 'red';
  const text = days <= 0 ? 'expired' : relative(iso, now);
  return h('span', { class: `countdown ${tone}`, dataset: { tone } }, text);
}

/** A Copy button for what `read()` returns; says "Copied" for a moment. */
export function copyButton(read, label = 'Copy', describedBy) {
  const text = h('span', { text: label });
  const button = h('button', {
    type: 'button', class: 'small', dataset: { action: 'copy' }, 'aria-describedby': describedBy,
  }, icon('copy'), text);
  button.addEventListener('click', async () => {
    const value = read();
    let copied = false;
    try {
      await navigator.clipboard.writeText(value);
      copied = true;
    } catch {
      copied = copyWithSelection(value);
    }
    text.textContent = copied ? 'Copied' : 'Copy failed: select and copy by hand';
    announce(copied ? 'Copied to the clipboard' : 'Copying failed');
    setTimeout(() => { text.textContent = label; }, 2000);
  });
  return button;
}

// For browsers without the async clipboard (or without permission): a hidden text area.
function copyWithSelection(value) {
  const area = h('textarea', { class: 'visually-hidden', readonly: true, 'aria-hidden': 'true' });
  area.value = value;
  document.body.append(area);
  area.select();
  let done = false;
  try {
    done = document.execCommand('copy');
  } catch {
    done = false;
  }
  area.remove();
  return done;
}

/** Says `message` to screen readers (the polite live region in the page). */
export function announce(message) {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = '';
  setTimeout(() => { region.textContent = message; }, 30);
}

/** An error area: `show(error)` displays the error's message verbatim; `clear()` hides it. */
export function errorArea(extraClass = '') {
  const element = h('p', { class: `error ${extraClass}`.trim(), role: 'alert', dataset: { role: 'error' } });
  return {
    element,
    show(error) {
      element.textContent = error && error.message ? error.message : String(error);
    },
    clear() {
      element.textContent = '';
    },
  };
}

let uniqueCounter = 0;
/** An id unique in the page. */
export function uniqueId(prefix) {
  uniqueCounter += 1;
  return `${prefix}-${uniqueCounter}`;
}

/** A labelled form field: `{field, input}`. */
export function field(label, input, hint) {
  const id = input.id || uniqueId('field');
  input.id = id;
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) input.setAttribute('aria-describedby', hintId);
  const element = h('div', { class: 'field' },
    h('label', { for: id, text: label }),
    input,
    hint ? h('span', { class: 'hint', id: hintId, text: hint }) : null);
  return element;
}

/** A labelled checkbox; disabled ones say why in their hint. */
export function checkbox(label, { name, disabled = false, hint, checked = false } = {}) {
  const input = h('input', { type: 'checkbox', name, id: uniqueId(name || 'check'), disabled, checked });
  const hintId = hint ? `${input.id}-hint` : null;
  if (hintId) input.setAttribute('aria-describedby', hintId);
  const element = h('div', { class: `check${disabled ? ' disabled' : ''}` },
    input,
    h('label', { for: input.id },
      label,
      hint ? h('span', { class: 'hint', id: hintId, text: ` — ${hint}` }) : null));
  return { element, input };
}

/** Sets a button busy (disabled, with a label) while `work` runs. */
export async function busy(button, label, work) {
  const before = [...button.childNodes];
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  button.replaceChildren(document.createTextNode(label));
  try {
    return await work();
  } finally {
    button.replaceChildren(...before);
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/** A table with a labelled head; cells get `data-label` so phones can show them as cards. */
export function table(caption, columns) {
  const body = h('tbody');
  const element = h('div', { class: 'table-wrap' },
    h('table', { class: 'responsive' },
      h('caption', { class: 'visually-hidden', text: caption }),
      h('thead', {}, h('tr', {}, columns.map((column) => h('th', { scope: 'col', text: column })))),
      body));
  return { element, body, columns };
}

/** A row cell carrying its column's label. */
export function cell(label, ...children) {
  return h('td', { 'data-label': label }, ...children);
}

/** Saves `text` as a file named `filename` (a Blob URL, revoked right after). */
export function saveFile(filename, text, type = 'application/x-pem-file') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h('a', { href: url, download: filename, class: 'visually-hidden' });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
