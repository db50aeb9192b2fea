// Zones: import a DNS zone (verified through its provider before it is stored), list, delete.
// Certificates are issued over DNS-01 for names under these zones.

import * as api from './api.js';
import { h, replace, badge, errorArea, field, busy, announce, table, cell, formatDate, icon } from './dom.js';
import { confirmModal } from './modal.js';

/** DNS providers a deployment may offer; the API says which it knows. */
const PROVIDERS = ['route53', 'challtestsrv'];

export function zonesPage(root) {
  let stopped = false;

  const name = h('input', { type: 'text', name: 'name', id: 'zone-name', placeholder: 'example.com', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none' });
  const providerList = h('datalist', { id: 'zone-providers' }, PROVIDERS.map((provider) => h('option', { value: provider })));
  const provider = h('input', { type: 'text', name: 'provider', id: 'zone-provider', list: 'zone-providers', value: 'route53', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none' });
  const providerZoneId = h('input', { type: 'text', name: 'provider_zone_id', id: 'zone-provider-id', placeholder: 'Z0123456789ABCDEFGHIJ', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none' });
  const error = errorArea();
  const status = h('p', { role: 'status', class: 'muted small' });
  const submit = h('button', { type: 'submit', class: 'primary', dataset: { action: 'import-zone' } }, icon('plus'), 'Import zone');
  const form = h('form', { class: 'inline', novalidate: true, 'aria-label': 'Import a zone' },
    field('Zone', name),
    field('DNS provider', provider),
    field('Provider zone id', providerZoneId),
    providerList,
    submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.clear();
    status.textContent = 'Verifying: a TXT record is written through the provider and read back from DNS…';
    try {
      const zone = await busy(submit, 'Verifying…', () => api.post('/v1/zones', {
        name: name.value.trim(), provider: provider.value.trim(), provider_zone_id: providerZoneId.value.trim(),
      }));
      name.value = '';
      providerZoneId.value = '';
      status.textContent = `${zone.name} imported and verified.`;
      announce(status.textContent);
      await refresh();
    } catch (failure) {
      status.textContent = '';
      error.show(failure);
      name.focus();
    }
  });

  const notice = errorArea();
  const list = table('Zones', ['Zone', 'Provider', 'Provider zone id', 'Verified', 'Imported', 'Actions']);
  list.body.append(h('tr', {}, h('td', { class: 'empty', colspan: 6, text: 'Loading zones…' })));

  replace(root,
    h('div', { class: 'page-head' },
      h('div', {},
        h('h1', { text: 'Zones' }),
        h('p', { class: 'muted', text: 'DNS zones you control. Certificates are issued over DNS-01 for names under them: EdgeCert writes the _acme-challenge records through the zone’s provider.' }))),
    h('section', { class: 'card', 'aria-labelledby': 'import-zone-title' },
      h('h2', { id: 'import-zone-title', text: 'Import a zone' }),
      form,
      status,
      error.element),
    notice.element,
    list.element);

  function row(zone) {
    const remove = h('button', { type: 'button', class: 'small', dataset: { action: 'delete' }, 'aria-label': `Delete: ${zone.name}` }, icon('trash'), 'Delete');
    remove.addEventListener('click', () => confirmModal({
      title: `Delete ${zone.name}?`,
      name: 'delete-zone',
      message: 'Certificates can no longer be requested or renewed for names under this zone until it is imported again.',
      confirmLabel: 'Delete zone',
      danger: true,
      onConfirm: async () => {
        await api.del(`/v1/zones/${encodeURIComponent(zone.id)}`);
        announce(`${zone.name} deleted`);
        await refresh();
      },
    }));
    return h('tr', { dataset: { id: zone.id } },
      cell('Zone', h('span', { class: 'mono', dataset: { field: 'name' } }, zone.name)),
      cell('Provider', h('span', { text: zone.provider })),
      cell('Provider zone id', h('span', { class: 'mono small', text: zone.provider_zone_id })),
      cell('Verified', zone.verified ? badge('green', 'verified', 'checkCircle') : badge('red', 'not verified', 'xCircle')),
      cell('Imported', h('span', { text: formatDate(zone.created_at) })),
      cell('Actions', h('div', { class: 'actions' }, remove)));
  }

  async function refresh() {
    try {
      const zones = await api.listAll('/v1/zones', 'zones');
      if (stopped) return;
      notice.clear();
      replace(list.body, zones.length
        ? zones.map(row)
        : h('tr', {}, h('td', { class: 'empty', colspan: 6, text: 'No zones yet. Import one above.' })));
    } catch (failure) {
      if (!stopped) notice.show(failure);
    }
  }

  refresh();
  return () => {
    stopped = true;
  };
}
