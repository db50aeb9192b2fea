// Modal dialogs on <dialog>: showModal() makes the rest of the page inert (focus stays inside),
// Escape closes, and focus goes back to what opened the dialog.

import { h, icon, errorArea, uniqueId, busy } from './dom.js';

/**
 * Opens a modal. `body` and `actions` are nodes; `initialFocus` (a node) gets focus first,
 * else the first field or button of the body. Returns `{dialog, close}`.
 */
export function openModal({ title, body, actions = [], wide = false, name, initialFocus, onClose }) {
  const opener = document.activeElement;
  const titleId = uniqueId('modal-title');
  const closeButton = h('button', { type: 'button', class: 'icon-only', 'aria-label': 'Close', dataset: { action: 'close' } }, icon('x'));
  const dialog = h('dialog', { class: `modal${wide ? ' wide' : ''}`, 'aria-labelledby': titleId, dataset: { modal: name || '' } },
    h('div', { class: 'modal-head' }, h('h2', { id: titleId, text: title }), closeButton),
    h('div', { class: 'modal-body' }, body),
    actions.length ? h('div', { class: 'modal-actions' }, actions) : null);
  const close = () => {
    if (dialog.open) dialog.close();
  };
  closeButton.addEventListener('click', close);
  // Tab and Shift+Tab cycle inside the dialog (the browser would otherwise move on to its own
  // toolbar after the last field).
  dialog.addEventListener('keydown', (event) => {
    if (event.key !== 'Tab') return;
    const focusable = [...dialog.querySelectorAll('button, input, select, textarea, a[href], [tabindex]:not([tabindex="-1"])')]
      .filter((element) => !element.disabled && element.offsetParent !== null);
    if (!focusable.length) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  });
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (onClose) onClose();
    if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  const target = initialFocus
    || dialog.querySelector('.modal-body input:not([disabled]), .modal-body select, .modal-body textarea, .modal-body button, .modal-actions button');
  if (target) target.focus();
  return { dialog, close };
}

/**
 * A confirmation: the message, optional extra content (e.g. a checkbox), Cancel and a
 * confirm button. `onConfirm()` runs with the button busy; an API error is shown in the
 * dialog verbatim and the dialog stays open; success closes it.
 */
export function confirmModal({ title, message, extra, confirmLabel, danger = false, name, onConfirm }) {
  const error = errorArea();
  const confirm = h('button', { type: 'button', class: danger ? 'danger' : 'primary', dataset: { action: 'confirm' } }, confirmLabel);
  const cancel = h('button', { type: 'button', dataset: { action: 'cancel' } }, 'Cancel');
  const modal = openModal({
    title,
    name,
    body: [h('p', { text: message }), extra || null, error.element],
    actions: [cancel, confirm],
    initialFocus: cancel,
  });
  cancel.addEventListener('click', modal.close);
  confirm.addEventListener('click', async () => {
    error.clear();
    try {
      await busy(confirm, 'Working…', onConfirm);
      modal.close();
    } catch (failure) {
      error.show(failure);
    }
  });
  return modal;
}
