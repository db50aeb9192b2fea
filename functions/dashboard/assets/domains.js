// Domains (AutoSSL, Vector): whitelist a customer hostname with its origin, show the DNS
// records to create ("View DNS Config"), and follow each domain's provisioning step live.

import * as api from './api.js';
import {
  h, replace, badge, errorArea, field, busy, announce, table, cell, copyButton, formatTime,
  relative, icon, dash,
} from './dom.js';
import { openModal, confirmModal } from './modal.js';

/** How each provisioning step looks. */
const STEPS = {
  waiting_ownership: { label: 'Waiting for ownership', tone: 'yellow', icon: 'clock' },
  waiting_dns: { label: 'Waiting for DNS', tone: 'yellow', icon: 'clock' },
  issuing: { label: 'Issuing certificate', tone: 'yellow', icon: 'clock', animated: true },
  active: { label: 'Active', tone: 'green', icon: 'checkCircle' },
  failed: { label: 'Failed', tone: 'red', icon: 'xCircle' },
};

/** Polling: every 2 s while a domain is on its way, every 30 s once all are active. */
const POLL_BUSY_MS = 2000;
const POLL_IDLE_MS = 30000;

const path = (id, rest = '') => `/v1/domains/${encodeURIComponent(id)}${rest}`;

export function domainsPage(root, context) {
  let stopped = false;
  let timer = null;
  let domains = [];
  const rows = new Map();
  const steps = new Map();

  // --- Add a domain --------------------------------------------------------------------------
  const hostname = h('input', {
    type: 'text', name: 'hostname', id: 'domain-hostname', placeholder: 'shop.customer.com',
    autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', required: true,
  });
  const origin = h('input', {
    type: 'text', inputmode: 'url', name: 'origin_url', id: 'domain-origin', placeholder: 'https://origin.example.com',
    autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', required: true,
  });
  const addError = errorArea();
  const addButton = h('button', { type: 'submit', class: 'primary', dataset: { action: 'add-domain' } }, icon('plus'), 'Add domain');
  const addForm = h('form', { class: 'inline', novalidate: true, 'aria-label': 'Add a domain' },
    field('Hostname', hostname), field('Origin URL', origin), addButton);
  addForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    addError.clear();
    try {
      const domain = await busy(addButton, 'Adding…', () => api.post('/v1/domains', {
        hostname: hostname.value.trim(), origin_url: origin.value.trim(),
      }));
      hostname.value = '';
      origin.value = '';
      announce(`${domain.hostname} added`);
      await refresh();
      refreshUsage();
      showDnsConfig(domain);
    } catch (failure) {
      addError.show(failure);
      hostname.focus();
    }
  });

  // --- The list ------------------------------------------------------------------------------
  const usage = h('p', { class: 'muted small', dataset: { field: 'domain-usage' } });
  const notice = errorArea();
  const list = table('Domains', ['Hostname', 'Origin', 'Status', 'Details', 'Actions']);
  const loading = h('tr', {}, h('td', { class: 'empty', colspan: 5, text: 'Loading domains…' }));
  list.body.append(loading);

  replace(root,
    h('div', { class: 'page-head' },
      h('div', {},
        h('h1', { text: 'Domains' }),
        h('p', { class: 'muted', text: 'Whitelist a customer’s hostname with the origin to proxy to. Its certificate is issued on the first HTTPS request once the customer’s DNS points at the edge.' })),
      usage),
    h('section', { class: 'card', 'aria-labelledby': 'add-domain-title' },
      h('h2', { id: 'add-domain-title', text: 'Add a domain' }),
      addForm,
      addError.element),
    notice.element,
    list.element);

  function refreshUsage() {
    context.refreshLimits().then((limits) => {
      usage.textContent = `${limits.domain_count} / ${limits.max_domains} domains on the ${limits.plan} plan`;
    }).catch(() => {});
  }

  function actionButton(action, label, domain, handler, iconName) {
    const button = h('button', {
      type: 'button', class: 'small', dataset: { action }, 'aria-label': `${label}: ${domain.hostname}`,
    }, iconName ? icon(iconName) : null, label);
    button.addEventListener('click', () => handler(domain, button));
    return button;
  }

  function row(domain) {
    const step = STEPS[domain.provisioning_step] || { label: domain.provisioning_step, tone: 'gray' };
    const details = [];
    if (domain.error) details.push(h('div', { class: 'error-text', dataset: { field: 'error' } }, domain.error));
    if (domain.next_attempt_at) {
      details.push(h('div', { dataset: { field: 'next-attempt' } },
        `Next attempt ${formatTime(domain.next_attempt_at)} (${relative(domain.next_attempt_at)})`));
    }
    if (!domain.ownership_verified) details.push(h('div', { text: 'Ownership TXT record not verified yet' }));
    if (domain.provisioning_step === 'waiting_dns' && !domain.error) {
      details.push(h('div', { text: 'Waiting for the customer’s DNS record to point at the edge' }));
    }
    const actions = [
      actionButton('dns', 'View DNS Config', domain, showDnsConfig, 'globe'),
      domain.ownership_verified ? null : actionButton('verify', 'Verify ownership', domain, verify, 'shield'),
      domain.provisioning_step === 'active' ? null : actionButton('nudge', 'Retry now', domain, nudge, 'renew'),
      actionButton('edit', 'Edit origin', domain, editOrigin, 'pencil'),
      actionButton('delete', 'Delete', domain, remove, 'trash'),
    ];
    return h('tr', { dataset: { id: domain.id, step: domain.provisioning_step } },
      cell('Hostname', h('span', { class: 'mono', dataset: { field: 'hostname' } }, domain.hostname)),
      cell('Origin', h('span', { class: 'mono small', dataset: { field: 'origin' } }, domain.origin_url)),
      cell('Status', badge(step.tone, step.label, step.icon, {
        animated: step.animated, dataset: { field: 'step', step: domain.provisioning_step },
      })),
      cell('Details', h('div', { class: 'detail' }, details.length ? details : dash('No details'))),
      cell('Actions', h('div', { class: 'actions' }, actions)));
  }

  // Rows are replaced only when their domain changed, and focus stays on the same action.
  function renderRows() {
    if (!domains.length) {
      rows.clear();
      replace(list.body, h('tr', {}, h('td', { class: 'empty', colspan: 5, text: 'No domains yet. Add one above.' })));
      return;
    }
    const seen = new Set();
    const ordered = domains.map((domain) => {
      seen.add(domain.id);
      const signature = JSON.stringify(domain);
      const existing = rows.get(domain.id);
      if (existing && existing.signature === signature) return existing.element;
      const element = row(domain);
      if (existing && existing.element.contains(document.activeElement)) {
        const action = document.activeElement.dataset.action;
        queueMicrotask(() => {
          const again = element.querySelector(`[data-action="${action}"]`) || element.querySelector('button');
          if (again) again.focus();
        });
      }
      rows.set(domain.id, { signature, element });
      const before = steps.get(domain.id);
      if (before && before !== domain.provisioning_step) {
        announce(`${domain.hostname}: ${(STEPS[domain.provisioning_step] || {}).label || domain.provisioning_step}`);
      }
      steps.set(domain.id, domain.provisioning_step);
      return element;
    });
    for (const id of [...rows.keys()]) {
      if (!seen.has(id)) rows.delete(id);
    }
    replace(list.body, ordered);
  }

  async function refresh() {
    try {
      domains = await api.listAll('/v1/domains', 'domains');
      if (stopped) return;
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
    const waiting = domains.some((domain) => domain.provisioning_step !== 'active');
    timer = setTimeout(() => {
      if (document.hidden) schedule();
      else refresh();
    }, waiting ? POLL_BUSY_MS : POLL_IDLE_MS);
  }

  // --- Actions -------------------------------------------------------------------------------
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

  function verify(domain, button) {
    return act(() => busy(button, 'Checking…', () => api.post(path(domain.id, '/verify'))), `${domain.hostname}: ownership verified`);
  }

  function nudge(domain, button) {
    return act(() => busy(button, 'Retrying…', () => api.post(path(domain.id, '/ssl/nudge'))), `${domain.hostname}: retried`);
  }

  function editOrigin(domain) {
    const input = h('input', { type: 'text', inputmode: 'url', name: 'origin_url', value: domain.origin_url, autocomplete: 'off', spellcheck: 'false' });
    const error = errorArea();
    const save = h('button', { type: 'submit', class: 'primary', dataset: { action: 'save' } }, 'Save origin');
    const cancel = h('button', { type: 'button', dataset: { action: 'cancel' } }, 'Cancel');
    const form = h('form', { novalidate: true }, field('Origin URL', input, 'Where the edge proxies requests for this hostname.'), error.element);
    const modal = openModal({ title: `Edit origin of ${domain.hostname}`, name: 'edit-origin', body: form, actions: [cancel, save], initialFocus: input });
    cancel.addEventListener('click', modal.close);
    save.addEventListener('click', () => form.requestSubmit());
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.clear();
      try {
        await busy(save, 'Saving…', () => api.patch(path(domain.id), { origin_url: input.value.trim() }));
        modal.close();
        announce(`${domain.hostname}: origin saved`);
        await refresh();
      } catch (failure) {
        error.show(failure);
        input.focus();
      }
    });
  }

  function remove(domain) {
    confirmModal({
      title: `Delete ${domain.hostname}?`,
      name: 'delete-domain',
      message: 'The edge stops serving this hostname at once, and its certificate is deleted. This cannot be undone.',
      confirmLabel: 'Delete domain',
      danger: true,
      onConfirm: async () => {
        await api.del(path(domain.id));
        announce(`${domain.hostname} deleted`);
        await refresh();
        refreshUsage();
      },
    });
  }

  function showDnsConfig(domain) {
    const body = h('div', {}, h('p', { class: 'muted', text: 'Loading the DNS records…' }));
    openModal({ title: `DNS configuration for ${domain.hostname}`, name: 'dns', body, wide: true });
    api.get(path(domain.id, '/dns')).then((dns) => {
      replace(body, dnsContent(domain, dns));
      const first = body.querySelector('button');
      if (first) first.focus();
    }).catch((failure) => {
      const error = errorArea();
      error.show(failure);
      replace(body, error.element);
    });
  }

  function recordsTable(caption, records) {
    const records_ = table(caption, ['Type', 'Name', 'Value']);
    records_.element.classList.add('records');
    for (const record of records) {
      records_.body.append(h('tr', { dataset: { recordType: record.type } },
        cell('Type', h('strong', { dataset: { field: 'type' } }, record.type)),
        cell('Name', h('div', { class: 'value' },
          h('span', { class: 'mono', dataset: { field: 'name' } }, record.name),
          copyButton(() => record.name, 'Copy'))),
        cell('Value', h('div', { class: 'value' },
          h('span', { class: 'mono', dataset: { field: 'value' } }, record.value),
          copyButton(() => record.value, 'Copy')))));
    }
    for (const button of records_.element.querySelectorAll('button')) {
      const tr = button.closest('tr');
      const column = button.closest('td').dataset.label;
      button.setAttribute('aria-label', `Copy the ${column.toLowerCase()} of the ${tr.dataset.recordType} record`);
    }
    return records_.element;
  }

  function dnsContent(domain, dns) {
    const parts = [
      h('p', { text: 'Ask the customer to create these records at their DNS provider. Once they point at the edge, the first HTTPS request gets the certificate issued within seconds.' }),
      recordsTable('Records pointing the hostname at the edge', dns.dns_instructions.records),
    ];
    if (dns.dns_instructions.note) {
      parts.push(h('p', { class: 'notice', dataset: { field: 'note' } }, dns.dns_instructions.note));
    }
    if (dns.ownership_verification) {
      const error = errorArea();
      const verifyButton = h('button', { type: 'button', class: 'primary', dataset: { action: 'verify' } }, icon('shield'), 'Verify ownership now');
      const status = h('p', { role: 'status' });
      verifyButton.addEventListener('click', async () => {
        error.clear();
        try {
          await busy(verifyButton, 'Checking…', () => api.post(path(domain.id, '/verify')));
          status.textContent = 'Ownership verified.';
          verifyButton.remove();
          await refresh();
        } catch (failure) {
          error.show(failure);
        }
      });
      parts.push(
        h('h3', { text: 'Ownership verification' }),
        h('p', { text: 'This account requires proof that the customer controls the hostname: create this TXT record too, then verify.' }),
        recordsTable('Ownership record', [dns.ownership_verification]),
        h('div', { class: 'actions' }, verifyButton),
        status,
        error.element);
    }
    return parts;
  }

  refreshUsage();
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
