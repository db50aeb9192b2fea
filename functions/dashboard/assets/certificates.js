// SSL Certificates (CertaDNS sections 6 and 8): the limits card, "Request Certificate", the
// certificate list with its status badges and expiry countdowns, and the download, renew,
// auto-renew, logs and delete actions.

import * as api from './api.js';
import {
  h, replace, badge, errorArea, field, busy, announce, table, cell, copyButton, formatDate,
  formatTime, countdown, icon, dash, yesNo, checkbox, saveFile, uniqueId,
} from './dom.js';
import { openModal, confirmModal } from './modal.js';

/** The reference's badges: issued green, pending/validating yellow and animated, failed red,
 * expired orange, revoked gray. */
const STATUS = {
  issued: { tone: 'green', icon: 'checkCircle' },
  pending: { tone: 'yellow', icon: 'clock', animated: true },
  validating: { tone: 'yellow', icon: 'clock', animated: true },
  failed: { tone: 'red', icon: 'xCircle' },
  expired: { tone: 'orange', icon: 'alertCircle' },
  revoked: { tone: 'gray', icon: 'minusCircle' },
};
const IN_FLIGHT = new Set(['pending', 'validating']);

const POLL_BUSY_MS = 2000;
const POLL_IDLE_MS = 30000;

const path = (id, rest = '') => `/v1/certificates/${encodeURIComponent(id)}${rest}`;

/** A file name for a certificate's primary name (`*.example.com` -> `wildcard.example.com`). */
const fileBase = (domain) => domain.replace(/^\*\./, 'wildcard.').replace(/[^A-Za-z0-9.-]/g, '_');

/** Every certificate (following next_cursor) and the plan's limits. */
async function loadCertificates() {
  const certificates = [];
  let limits = null;
  let cursor = null;
  for (let page = 0; page < 20; page += 1) {
    const query = `?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const data = await api.get(`/v1/certificates${query}`);
    certificates.push(...data.certificates);
    limits = limits || data.limits;
    cursor = data.next_cursor;
    if (!cursor) break;
  }
  return { certificates, limits };
}

export function certificatesPage(root) {
  let stopped = false;
  let timer = null;
  let state = { certificates: [], limits: null };
  const rows = new Map();

  const requestButton = h('button', { type: 'button', class: 'primary', dataset: { action: 'request' }, disabled: true }, icon('plus'), 'Request Certificate');
  const limitHint = h('p', { class: 'hint', id: uniqueId('limit-hint'), dataset: { field: 'limit-hint' } });
  requestButton.setAttribute('aria-describedby', limitHint.id);
  requestButton.addEventListener('click', () => requestCertificate());

  const usage = h('span', { class: 'value', dataset: { field: 'usage' } }, '…');
  const wildcard = h('span', { class: 'value', dataset: { field: 'wildcard' } }, '…');
  const autoRenew = h('span', { class: 'value', dataset: { field: 'auto-renew' } }, '…');
  const limitsCard = h('section', { class: 'card', 'aria-label': 'Plan limits', dataset: { card: 'limits' } },
    h('div', { class: 'limits' },
      h('div', { class: 'limit' }, h('span', { class: 'label', text: 'Certificates' }), usage),
      h('div', { class: 'limit' }, h('span', { class: 'label', text: 'Wildcard Available' }), wildcard),
      h('div', { class: 'limit' }, h('span', { class: 'label', text: 'Auto-Renewal Available' }), autoRenew)));

  const notice = errorArea();
  const list = table('SSL certificates', ['Domain', 'SANs', 'Status', 'Issued', 'Expires', 'Auto-Renew', 'Actions']);
  list.body.append(h('tr', {}, h('td', { class: 'empty', colspan: 7, text: 'Loading certificates…' })));

  replace(root,
    h('div', { class: 'page-head' },
      h('div', {},
        h('h1', { text: 'SSL Certificates' }),
        h('p', { class: 'muted', text: 'Let’s Encrypt certificates for names under your imported zones, issued over DNS-01.' })),
      h('div', {}, requestButton, limitHint)),
    limitsCard,
    notice.element,
    list.element);

  function renderLimits() {
    const { limits } = state;
    if (!limits) return;
    usage.textContent = `${limits.current_count} / ${limits.max_certificates}`;
    replace(wildcard, yesNo(limits.wildcard_enabled));
    replace(autoRenew, yesNo(limits.auto_renew_enabled));
    const atLimit = limits.current_count >= limits.max_certificates;
    requestButton.disabled = atLimit;
    limitHint.textContent = !atLimit ? ''
      : limits.max_certificates === 0 ? 'Certificates need a paid plan (Plus, Pro or Elite).'
        : 'Certificate limit reached for plan: delete a certificate or upgrade to request another.';
  }

  function actionButton(action, label, certificate, handler, iconName, extra = {}) {
    const button = h('button', {
      type: 'button', class: 'small', dataset: { action }, 'aria-label': `${label}: ${certificate.domain}`, ...extra,
    }, icon(iconName), label);
    button.addEventListener('click', () => handler(certificate, button));
    return button;
  }

  function row(certificate) {
    const status = STATUS[certificate.status] || { tone: 'gray' };
    const issued = certificate.status === 'issued';
    const canToggle = state.limits && state.limits.auto_renew_enabled;
    const sans = certificate.sans || [];
    return h('tr', { dataset: { id: certificate.id, status: certificate.status } },
      cell('Domain', h('span', { class: 'mono', dataset: { field: 'domain' } }, certificate.domain)),
      cell('SANs', sans.length
        ? h('span', { dataset: { field: 'sans', count: String(sans.length) }, title: sans.join(', ') }, String(sans.length),
          h('span', { class: 'visually-hidden', text: `: ${sans.join(', ')}` }))
        : dash('No additional names')),
      cell('Status', h('div', {},
        badge(status.tone, certificate.status, status.icon, {
          animated: status.animated, dataset: { field: 'status', status: certificate.status },
        }),
        certificate.error && !issued
          ? h('div', { class: 'detail error-text', dataset: { field: 'error' } }, certificate.error) : null)),
      cell('Issued', certificate.issued_at
        ? h('span', { title: formatTime(certificate.issued_at), dataset: { field: 'issued' } }, formatDate(certificate.issued_at))
        : dash('Not issued')),
      cell('Expires', certificate.expires_at
        ? h('div', { dataset: { field: 'expires' } },
          h('span', { title: formatTime(certificate.expires_at) }, formatDate(certificate.expires_at)), ' ',
          countdown(certificate.expires_at))
        : dash('Not issued')),
      cell('Auto-Renew', certificate.auto_renew
        ? h('span', { class: 'yes', dataset: { field: 'auto-renew', value: 'true' } }, h('span', { 'aria-hidden': 'true', text: '✓' }), h('span', { class: 'visually-hidden', text: 'On' }))
        : h('span', { dataset: { field: 'auto-renew', value: 'false' } }, dash('Off'))),
      cell('Actions', h('div', { class: 'actions' },
        issued ? actionButton('download', 'Download', certificate, download, 'download') : null,
        actionButton('renew', 'Renew', certificate, renew, 'renew'),
        canToggle ? actionButton('toggle-auto-renew', certificate.auto_renew ? 'Auto-renew on' : 'Auto-renew off', certificate, toggleAutoRenew, 'repeat', {
          'aria-pressed': String(certificate.auto_renew),
          'aria-label': `Auto-renew for ${certificate.domain}`,
        }) : null,
        actionButton('logs', 'Logs', certificate, showLogs, 'list'),
        actionButton('delete', 'Delete', certificate, remove, 'trash'))));
  }

  function renderRows() {
    const { certificates } = state;
    if (!certificates.length) {
      rows.clear();
      replace(list.body, h('tr', {}, h('td', { class: 'empty', colspan: 7, text: 'No certificates yet.' })));
      return;
    }
    // The countdown changes with time, and the toggle with the plan: both are in the signature.
    const hour = Math.floor(Date.now() / 3600000);
    const ordered = certificates.map((certificate) => {
      const signature = JSON.stringify([certificate, hour, state.limits && state.limits.auto_renew_enabled]);
      const existing = rows.get(certificate.id);
      if (existing && existing.signature === signature) return existing.element;
      const element = row(certificate);
      if (existing && existing.element.contains(document.activeElement)) {
        const action = document.activeElement.dataset.action;
        queueMicrotask(() => {
          const again = element.querySelector(`[data-action="${action}"]`) || element.querySelector('button');
          if (again) again.focus();
        });
      }
      if (existing && existing.status !== certificate.status) {
        announce(`${certificate.domain}: ${certificate.status}`);
      }
      rows.set(certificate.id, { signature, element, status: certificate.status });
      return element;
    });
    const ids = new Set(certificates.map((certificate) => certificate.id));
    for (const id of [...rows.keys()]) if (!ids.has(id)) rows.delete(id);
    replace(list.body, ordered);
  }

  async function refresh() {
    try {
      const loaded = await loadCertificates();
      if (stopped) return;
      state = loaded;
      renderLimits();
      renderRows();
    } catch (failure) {
      if (!stopped) notice.show(failure);
    } finally {
      schedule();
    }
  }

  function schedule() {
    if (stopped) return;
    clearTimeout(timer);
    const busyNow = state.certificates.some((certificate) => IN_FLIGHT.has(certificate.status));
    timer = setTimeout(() => {
      if (document.hidden) schedule();
      else refresh();
    }, busyNow ? POLL_BUSY_MS : POLL_IDLE_MS);
  }

  // --- Request ---------------------------------------------------------------------------------
  function requestCertificate() {
    const limits = state.limits || {};
    const zone = h('select', { name: 'zone_id', required: true }, h('option', { value: '', text: 'Loading zones…' }));
    const domain = h('input', { type: 'text', name: 'domain', placeholder: 'app.example.com', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none' });
    const sans = h('input', { type: 'text', name: 'sans', placeholder: 'www.example.com, api.example.com', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none' });
    const wildcardBox = checkbox('Wildcard', {
      name: 'wildcard', disabled: !limits.wildcard_enabled,
      hint: limits.wildcard_enabled ? 'issues *.domain, matching any subdomain' : 'Elite plan only',
    });
    const autoRenewBox = checkbox('Auto-Renew', {
      name: 'auto_renew', disabled: !limits.auto_renew_enabled,
      hint: limits.auto_renew_enabled ? 'renewed automatically before it expires' : 'Pro and Elite plans only',
    });
    const error = errorArea();
    const submit = h('button', { type: 'submit', class: 'primary', dataset: { action: 'submit-request' }, disabled: true }, 'Request Certificate');
    const cancel = h('button', { type: 'button', dataset: { action: 'cancel' } }, 'Cancel');
    const zoneHelp = h('div');
    const form = h('form', { novalidate: true, id: uniqueId('request-form') },
      field('Zone', zone, 'Only your imported zones are listed.'),
      zoneHelp,
      field('Domain', domain, 'Must be under the selected zone.'),
      field('Additional SANs', sans, 'Optional, comma-separated; every name must be under the selected zone.'),
      wildcardBox.element,
      autoRenewBox.element,
      error.element);
    const modal = openModal({ title: 'Request Certificate', name: 'request', body: form, actions: [cancel, submit], initialFocus: zone });
    cancel.addEventListener('click', modal.close);
    submit.addEventListener('click', () => form.requestSubmit());

    api.listAll('/v1/zones', 'zones').then((zones) => {
      replace(zone, zones.map((item) => h('option', { value: item.id, text: item.name })));
      if (!zones.length) {
        replace(zone, h('option', { value: '', text: 'No zones imported' }));
        zone.disabled = true;
        const link = h('a', { href: '#/zones', text: 'Import a zone' });
        replace(zoneHelp, h('p', { class: 'notice' }, 'Certificates are issued for names under a zone you imported. ', link, ' first.'));
        // The disabled dropdown cannot keep the focus: the way forward gets it.
        if (document.activeElement === zone || document.activeElement === document.body) link.focus();
        return;
      }
      submit.disabled = false;
      const suggest = () => {
        const selected = zones.find((item) => item.id === zone.value);
        domain.placeholder = selected ? `app.${selected.name}` : 'app.example.com';
      };
      zone.addEventListener('change', suggest);
      suggest();
    }).catch((failure) => error.show(failure));

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.clear();
      const body = {
        zone_id: zone.value,
        domain: domain.value.trim(),
        sans: sans.value.split(',').map((name) => name.trim()).filter(Boolean),
        wildcard: wildcardBox.input.checked,
        auto_renew: autoRenewBox.input.checked,
      };
      try {
        const created = await busy(submit, 'Requesting…', () => api.post('/v1/certificates', body));
        modal.close();
        announce(`Certificate for ${created.domain} requested: ${created.status}`);
        await refresh();
      } catch (failure) {
        error.show(failure);
      }
    });
  }

  // --- Row actions -------------------------------------------------------------------------------
  async function act(work, done) {
    notice.clear();
    try {
      await work();
      if (done) announce(done);
    } catch (failure) {
      notice.show(failure);
    }
    await refresh();
  }

  function renew(certificate) {
    confirmModal({
      title: `Renew ${certificate.domain}?`,
      name: 'renew',
      message: 'The ACME challenge runs again now; the status shows validating until the new certificate is issued, which replaces the current one.',
      confirmLabel: 'Renew',
      onConfirm: async () => {
        await api.post(path(certificate.id, '/renew'));
        announce(`${certificate.domain}: renewal started`);
        await refresh();
      },
    });
  }

  function toggleAutoRenew(certificate, button) {
    const wanted = !certificate.auto_renew;
    return act(() => busy(button, 'Saving…', () => api.patch(path(certificate.id), { auto_renew: wanted })),
      `${certificate.domain}: auto-renew ${wanted ? 'on' : 'off'}`);
  }

  function remove(certificate) {
    const revoke = checkbox('Revoke with Let\'s Encrypt', {
      name: 'revoke', hint: 'recommended for compromised keys: the CA marks it revoked before it is deleted',
    });
    confirmModal({
      title: `Delete ${certificate.domain}?`,
      name: 'delete-certificate',
      message: 'The certificate and its private key are deleted from EdgeCert. This cannot be undone.',
      extra: revoke.element,
      confirmLabel: 'Delete certificate',
      danger: true,
      onConfirm: async () => {
        await api.del(`${path(certificate.id)}?revoke=${revoke.input.checked ? 'true' : 'false'}`);
        announce(`${certificate.domain} deleted${revoke.input.checked ? ' and revoked' : ''}`);
        await refresh();
      },
    });
  }

  // The key is fetched when this modal opens, and only lives as long as it does.
  function download(certificate) {
    const body = h('div', {}, h('p', { class: 'muted', text: 'Fetching the certificate and its private key…' }));
    const saveCertificate = h('button', { type: 'button', class: 'primary', dataset: { action: 'save-certificate' }, disabled: true }, icon('download'), 'Download Certificate');
    const saveKey = h('button', { type: 'button', class: 'primary', dataset: { action: 'save-key' }, disabled: true }, icon('download'), 'Download Private Key');
    const close = h('button', { type: 'button', dataset: { action: 'cancel' } }, 'Close');
    const modal = openModal({
      title: 'Download Certificate', name: 'download', body, wide: true, actions: [close, saveCertificate, saveKey], initialFocus: close,
    });
    close.addEventListener('click', modal.close);
    api.get(path(certificate.id, '/download')).then((material) => {
      if (!modal.dialog.open) return;
      const fullChain = `${material.certificate_pem.trimEnd()}\n${material.chain_pem.trim() ? `${material.chain_pem.trim()}\n` : ''}`;
      const certificateArea = h('textarea', { readonly: true, id: uniqueId('certificate-pem'), dataset: { field: 'certificate-pem' }, spellcheck: 'false' });
      certificateArea.value = fullChain;
      const keyArea = h('textarea', { readonly: true, id: uniqueId('private-key-pem'), dataset: { field: 'private-key-pem' }, spellcheck: 'false' });
      keyArea.value = material.private_key_pem;
      const base = fileBase(certificate.domain);
      replace(body,
        h('div', { class: 'warning', role: 'note', dataset: { field: 'key-warning' } },
          h('strong', { text: 'Keep the private key secret. ' }),
          `Anyone who holds it can impersonate ${certificate.domain}. Store it securely, never commit it to version control or share it; only the certificate is public.`),
        h('div', { class: 'pem-head' },
          h('label', { for: certificateArea.id, text: 'Certificate (PEM, with its chain)' }),
          copyButton(() => certificateArea.value, 'Copy')),
        certificateArea,
        h('div', { class: 'pem-head' },
          h('label', { for: keyArea.id, text: 'Private key (PEM)' }),
          copyButton(() => keyArea.value, 'Copy')),
        keyArea);
      body.querySelectorAll('[data-action="copy"]')[0].setAttribute('aria-label', 'Copy the certificate');
      body.querySelectorAll('[data-action="copy"]')[1].setAttribute('aria-label', 'Copy the private key');
      saveCertificate.disabled = false;
      saveKey.disabled = false;
      saveCertificate.addEventListener('click', () => saveFile(`${base}.crt`, certificateArea.value));
      saveKey.addEventListener('click', () => saveFile(`${base}.key`, keyArea.value));
    }).catch((failure) => {
      const error = errorArea();
      error.show(failure);
      replace(body, error.element);
    });
  }

  function showLogs(certificate) {
    const body = h('div', {}, h('p', { class: 'muted', text: 'Loading the logs…' }));
    openModal({ title: `Logs of ${certificate.domain}`, name: 'logs', body, wide: true });
    const levels = { info: 'blue', warning: 'yellow', error: 'red' };
    api.get(path(certificate.id, '/logs?limit=200')).then((data) => {
      const events = data.events || [];
      if (!events.length) {
        replace(body, h('p', { class: 'muted', text: 'No events yet.' }));
        return;
      }
      replace(body,
        h('p', { class: 'muted small', text: 'Newest first.' }),
        h('ol', { class: 'logs', 'aria-label': 'Certificate events, newest first' },
          events.map((event) => h('li', { dataset: { step: event.step, level: event.level } },
            h('span', {}, badge(levels[event.level] || 'gray', event.level), ' ', h('code', { text: event.step })),
            h('span', { class: 'when', text: formatTime(event.at) }),
            h('span', { class: 'message', dataset: { field: 'message' } }, event.message,
              event.acme_problem ? h('span', { class: 'muted small' }, ' (', h('code', { text: event.acme_problem }), ')') : null)))));
    }).catch((failure) => {
      const error = errorArea();
      error.show(failure);
      replace(body, error.element);
    });
  }

  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
